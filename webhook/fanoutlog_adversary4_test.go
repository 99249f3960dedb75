package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// failingFanoutLog is a MemoryFanoutLog whose first failAdds writes fail.
type failingFanoutLog struct {
	webhook.MemoryFanoutLog
	failAdds atomic.Int64
	mu       sync.Mutex
	adds     [][]string
}

func (l *failingFanoutLog) Add(ctx context.Context, ev pubsub.Event, subs ...string) error {
	l.mu.Lock()
	l.adds = append(l.adds, slices.Clone(subs))
	l.mu.Unlock()
	if l.failAdds.Add(-1) >= 0 {
		return errors.New("redis: i/o timeout")
	}
	return l.MemoryFanoutLog.Add(ctx, ev, subs...)
}

// failRetriesOf fails every delayed emit of a retry for one subscription.
type failRetriesOf struct {
	pubsub.DelayedPublisher
	sub string
}

func (f failRetriesOf) EmitAt(ctx context.Context, at time.Time, evs ...pubsub.Event) error {
	for _, ev := range evs {
		if sub, _, _, ok := webhook.UnwrapRetry(ev); ok && sub == f.sub {
			return errors.New("redis went away")
		}
	}
	return f.DelayedPublisher.EmitAt(ctx, at, evs...)
}

// fanoutBridge is a bridge over a memory broker nobody reads, the test
// handing events to Handle itself.
func fanoutBridge(t *testing.T, cfg webhook.Config, pub func(pubsub.DelayedPublisher) pubsub.DelayedPublisher) *webhook.Bridge {
	t.Helper()
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	idle, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idle.Close() })
	cfg.Subscriber, cfg.Publisher = idle, pub(broker)
	cfg.Retry = webhook.RetryPolicy{Schedule: []time.Duration{time.Hour}}
	b, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Four deliveries settle at once; the fifth takes most of a second and
// then fails, its retry not scheduled, so Handle returns an error. The
// fan-out log's first write (at 250ms, holding the four) fails once, a
// blip; the log works again long before the error. Handed over again, the
// event should go to the fifth only, as the log was writable when the
// handling failed. But the four, taken from the pending list for the
// failed write, are never written again: they are delivered twice.
func TestFanoutLogWriteThatFailsOnceIsTriedAgain(t *testing.T) {
	ok := newSink(t, nil)
	slow := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		time.Sleep(700 * time.Millisecond)
		w.WriteHeader(http.StatusInternalServerError)
	})
	var subs []webhook.Subscription
	for _, id := range []string{"a", "b", "c", "d"} {
		subs = append(subs, webhook.Subscription{ID: id, Topic: "t", URL: ok.URL + "/" + id})
	}
	subs = append(subs, webhook.Subscription{ID: "slow", Topic: "t", URL: slow.URL})
	log := &failingFanoutLog{}
	log.failAdds.Store(1)
	b := fanoutBridge(t, webhook.Config{Subscriptions: subs, FanoutLog: log}, func(p pubsub.DelayedPublisher) pubsub.DelayedPublisher {
		return failRetriesOf{DelayedPublisher: p, sub: "slow"}
	})
	ctx := context.Background()
	ev := pubsub.NewEvent(ctx, "t", []byte(`{}`))
	if err := b.Handle(ctx, ev); err == nil {
		t.Fatal("Handle succeeded though slow's retry could not be scheduled")
	}
	if n := len(ok.snapshot()); n != 4 {
		t.Fatalf("%d deliveries to the four, want 4", n)
	}
	settled, _ := log.Settled(ctx, ev)
	log.mu.Lock()
	t.Logf("writes tried: %q; the log holds %q", log.adds, settled)
	log.mu.Unlock()
	ev.Meta.Attempts = 1
	if err := b.Handle(ctx, ev); err == nil {
		t.Fatal("the second handling succeeded though slow's retry still cannot be scheduled")
	}
	if n := len(ok.snapshot()); n != 4 {
		t.Errorf("the four settled subscriptions got %d deliveries in all, want 4: a fan-out log write that failed once "+
			"is never tried again, though the log was writable when the handling failed", n)
	}
}

// The fan-out log in Redis, broken: its key holds a string (WRONGTYPE), or
// Redis is gone. Nothing is lost: the event, handed over again, goes to
// every subscription it matches (some twice), and the handling succeeds.
func TestRedisFanoutLogBrokenLosesNothing(t *testing.T) {
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = client.Close() })
	for _, broken := range []string{"wrong type", "redis down"} {
		t.Run(broken, func(t *testing.T) {
			ok := newSink(t, func(_ int, r *http.Request, w http.ResponseWriter) {
				if r.URL.Path == "/fails" {
					w.WriteHeader(http.StatusInternalServerError)
				}
			})
			var subs []webhook.Subscription
			for _, id := range []string{"a", "b", "c", "fails"} {
				subs = append(subs, webhook.Subscription{ID: id, Topic: "t", URL: ok.URL + "/" + id})
			}
			var fail atomic.Bool
			fail.Store(true)
			log := webhook.RedisFanoutLog{Client: client, Prefix: "fanout:" + broken + ":"}
			b := fanoutBridge(t, webhook.Config{Subscriptions: subs, FanoutLog: log}, func(p pubsub.DelayedPublisher) pubsub.DelayedPublisher {
				return &onceFailing{DelayedPublisher: p, fail: &fail}
			})
			ctx := context.Background()
			ev := pubsub.NewEvent(ctx, "t", []byte(`{}`))
			switch broken {
			case "wrong type":
				// Every key the log could use for this event holds a string.
				for _, k := range fanoutKeys(ctx, t, client, log, ev) {
					if err := client.Set(ctx, k, "garbage", 0).Err(); err != nil {
						t.Fatal(err)
					}
				}
			case "redis down":
				srv.Kill()
				t.Cleanup(func() {
					if err := srv.Restart(); err != nil {
						t.Error(err)
					}
				})
			}
			if err := b.Handle(ctx, ev); err == nil {
				t.Fatal("Handle succeeded though a retry could not be scheduled")
			}
			fail.Store(false)
			ev.Meta.Attempts = 1
			start := time.Now()
			if err := b.Handle(ctx, ev); err != nil {
				t.Fatalf("handed over again: %v", err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("the second handling took %s with the log broken", took)
			}
			got := map[string]int{}
			for _, h := range ok.snapshot() {
				got[h.Path]++
			}
			for _, id := range []string{"a", "b", "c", "fails"} {
				if got["/"+id] == 0 {
					t.Errorf("%s never reached (%v)", id, got)
				}
			}
		})
	}
}

// fanoutKeys returns the key RedisFanoutLog uses for ev: the one an
// Add makes on a healthy Redis.
func fanoutKeys(ctx context.Context, t *testing.T, client *goredis.Client, log webhook.RedisFanoutLog, ev pubsub.Event) []string {
	t.Helper()
	if err := log.Add(ctx, ev, "probe"); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, log.Prefix+"*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v %v", keys, err)
	}
	return keys
}

// onceFailing fails every delayed emit while fail is set.
type onceFailing struct {
	pubsub.DelayedPublisher
	fail *atomic.Bool
}

func (o *onceFailing) EmitAt(ctx context.Context, at time.Time, evs ...pubsub.Event) error {
	if o.fail.Load() {
		return fmt.Errorf("redis went away")
	}
	return o.DelayedPublisher.EmitAt(ctx, at, evs...)
}

// recordingPublisher records the retries and deferrals emitted, by
// subscription.
type recordingPublisher struct {
	pubsub.DelayedPublisher
	mu  sync.Mutex
	per map[string]int
}

func (r *recordingPublisher) EmitAt(ctx context.Context, at time.Time, evs ...pubsub.Event) error {
	r.mu.Lock()
	for _, ev := range evs {
		if sub, _, _, ok := webhook.UnwrapRetry(ev); ok {
			if r.per == nil {
				r.per = map[string]int{}
			}
			r.per[sub]++
		}
	}
	r.mu.Unlock()
	return r.DelayedPublisher.EmitAt(ctx, at, evs...)
}

// A circuit that opens mid-fan-out, and rate limits that hold most of an
// event's deliveries back: every delivery is settled once (sent, or one
// retry or deferral emitted for it), nothing dead-lettered, Handle
// succeeds.
func TestCircuitAndRateLimitMidFanOut(t *testing.T) {
	for _, tc := range []string{"circuit opens", "endpoint rate limit", "subscription rate limits"} {
		t.Run(tc, func(t *testing.T) {
			status := http.StatusOK
			if tc == "circuit opens" {
				status = http.StatusInternalServerError
			}
			s := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(status) })
			var subs []webhook.Subscription
			const n = 60
			for i := range n {
				sub := webhook.Subscription{ID: fmt.Sprintf("s%d", i), Topic: "t", URL: fmt.Sprintf("%s/s%d", s.URL, i)}
				if tc == "subscription rate limits" {
					sub.RateLimit = &webhook.RateLimit{PerSecond: 0.5, Burst: 1}
				}
				subs = append(subs, sub)
			}
			cfg := webhook.Config{Subscriptions: subs, PerEndpoint: 4, RateLimiter: &webhook.MemoryRateLimiter{}}
			if tc == "endpoint rate limit" {
				cfg.EndpointLimits = map[string]webhook.RateLimit{s.URL: {PerSecond: 5, Burst: 3}}
			}
			rec := &recordingPublisher{}
			dead := &webhook.MemoryDeadLetters{}
			cfg.DeadLetters = dead
			b := fanoutBridge(t, cfg, func(p pubsub.DelayedPublisher) pubsub.DelayedPublisher { rec.DelayedPublisher = p; return rec })
			ctx := context.Background()
			ev := pubsub.NewEvent(ctx, "t", []byte(`{}`))
			if err := b.Handle(ctx, ev); err != nil {
				t.Fatal(err)
			}
			sent := map[string]int{}
			for _, h := range s.snapshot() {
				sent[h.Path]++
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for i := range n {
				id := fmt.Sprintf("s%d", i)
				ok := sent["/"+id]
				if status != http.StatusOK {
					ok = 0
				}
				if got := ok + rec.per[id]; got != 1 {
					t.Errorf("%s: %d sent fine, %d retries or deferrals emitted, want one of them", id, ok, rec.per[id])
				}
			}
			if dls := allDeadLetters(t, dead); len(dls) > 0 {
				t.Errorf("%d dead letters", len(dls))
			}
			t.Logf("%d requests, %d retries or deferrals", len(s.snapshot()), len(rec.per))
		})
	}
}

// gatedPublisher blocks every delayed emit until open is closed, then
// fails them while fail is set.
type gatedPublisher struct {
	pubsub.DelayedPublisher
	open chan struct{}
	fail atomic.Bool
}

func (g *gatedPublisher) EmitAt(ctx context.Context, at time.Time, evs ...pubsub.Event) error {
	<-g.open
	if g.fail.Load() {
		return errors.New("publisher down")
	}
	return g.DelayedPublisher.EmitAt(ctx, at, evs...)
}

// The publisher blocks, then fails, while events for a hanging endpoint
// (deferrals), a failing one (retries) and a quick one are handled from
// many goroutines with two workers: once it answers, every Handle returns
// (an error: each event had a retry or deferral refused, so its backend
// hands it over again), InFlight is 0.
func TestPublisherBlocksThenFails(t *testing.T) {
	release := make(chan struct{})
	hang := newSink(t, func(int, *http.Request, http.ResponseWriter) { <-release })
	failing := newSink(t, status(http.StatusInternalServerError))
	quick := newSink(t, nil)
	subs := []webhook.Subscription{
		{ID: "hang", Topic: "t", URL: hang.URL, Timeout: webhook.Duration(2 * time.Second)},
		{ID: "fail", Topic: "t", URL: failing.URL},
		{ID: "quick", Topic: "t", URL: quick.URL},
	}
	g := &gatedPublisher{open: make(chan struct{})}
	g.fail.Store(true)
	b := fanoutBridge(t, webhook.Config{Subscriptions: subs, MaxInFlight: 2, PerEndpoint: 1, SlotWait: 20 * time.Millisecond},
		func(p pubsub.DelayedPublisher) pubsub.DelayedPublisher { g.DelayedPublisher = p; return g })
	t.Cleanup(func() { close(release) })
	ctx := context.Background()
	var wg sync.WaitGroup
	var errs atomic.Int64
	const events = 30
	for range events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Handle(ctx, pubsub.NewEvent(ctx, "t", []byte(`{}`))); err != nil {
				errs.Add(1)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	close(g.open)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(8 * time.Second):
		t.Fatalf("Handle calls still running 8s after the publisher answered; in flight: %d", b.InFlight())
	}
	if n := b.InFlight(); n != 0 {
		t.Errorf("InFlight = %d", n)
	}
	t.Logf("%d of %d Handle calls failed; quick got %d", errs.Load(), events, len(quick.snapshot()))
	if errs.Load() != events {
		t.Errorf("%d Handle calls failed, want all %d: every event had a retry or deferral the publisher refused", errs.Load(), events)
	}
}
