package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// Raising a subscription's rate limit (PUT, or a config reload) must let
// deliveries go at the new rate. The in-memory limiter does; on Redis the
// GCRA's theoretical arrival time, computed at the old (slow) rate, is
// kept, so after one delivery at one an hour the raised limit of 100/s
// refuses everything for an hour. The two limiters of one interface
// disagree by an hour.
func TestAdversary3RedisLimitRaisedTakesEffect(t *testing.T) {
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = client.Close() })
	slow := webhook.RateLimit{PerSecond: webhook.MinRatePerSecond, Burst: 1}
	fast := webhook.RateLimit{PerSecond: 100, Burst: 10}
	ctx := context.Background()
	limiters := map[string]webhook.RateLimiter{
		"memory": &webhook.MemoryRateLimiter{},
		"redis":  webhook.RedisRateLimiter{Client: client, Prefix: "adv3:"},
	}
	for name, l := range limiters {
		// The bridge names the configured limit in the key it asks under
		// (webhook.RateLimiter's doc), so a raised limit is a new key.
		if w, err := l.Allow(ctx, "subscription:s@slow", slow); err != nil || w != 0 {
			t.Fatalf("%s: first delivery at the slow limit: wait %s, err %v", name, w, err)
		}
		w, err := l.Allow(ctx, "subscription:s@fast", fast)
		if err != nil {
			t.Fatal(err)
		}
		if w > time.Second {
			t.Errorf("%s limiter: after the limit was raised from one an hour to 100/s, the next delivery must wait %s", name, w)
		}
	}
}

// failingLimiter fails its first n calls, then asks next.
type failingLimiter struct {
	mu      sync.Mutex
	n       int
	calls   int
	okSince time.Time
	next    webhook.RateLimiter
}

func (f *failingLimiter) Allow(ctx context.Context, key string, l webhook.RateLimit) (time.Duration, error) {
	f.mu.Lock()
	f.calls++
	if f.calls <= f.n {
		f.mu.Unlock()
		return 0, errors.New("limiter's redis unreachable")
	}
	if f.okSince.IsZero() {
		f.okSince = time.Now()
	}
	f.mu.Unlock()
	return f.next.Allow(ctx, key, l)
}

// While the limiter fails, nothing is sent unchecked, no attempt is spent
// (max_attempts 1 must not dead-letter) and the delivery is not lost.
func TestAdversary3LimiterDownNeverSendsNorLoses(t *testing.T) {
	s := newSink(t, nil)
	lim := &failingLimiter{n: 2, next: &webhook.MemoryRateLimiter{}}
	h := newHarness(t, webhook.Config{RateLimiter: lim, Subscriptions: []webhook.Subscription{{
		ID: "lim", Topic: "t", URL: s.URL + "/lim", MaxAttempts: 1, RateLimit: &webhook.RateLimit{PerSecond: 100},
	}}})
	h.emit(t, pubsub.Event{ID: "down-1", Name: "t", Payload: []byte(`{}`)})
	got := s.waitFor(t, 1)[0]
	lim.mu.Lock()
	okSince := lim.okSince
	lim.mu.Unlock()
	if okSince.IsZero() || got.At.Before(okSince) {
		t.Errorf("delivery sent at %s before the limiter ever allowed it (%s)", got.At, okSince)
	}
	if a := got.Header.Get(webhook.HeaderAttempt); a != "1" {
		t.Errorf("delivery after limiter failures is attempt %s, want 1", a)
	}
	if dls := allDeadLetters(t, h.dead); len(dls) != 0 {
		t.Errorf("dead letters after limiter failures: %+v", dls)
	}
}

// An endpoint's limit binds "the deliveries to one endpoint of every
// subscription together". The same address written as an IPv4-mapped
// IPv6 literal is a different endpoint key, so a subscription (one made
// through the admin API, say) escapes the limit the receiver is owed.
func TestAdversary3EndpointLimitNotEvadedBySpelling(t *testing.T) {
	s := newSink(t, nil)
	port := s.URL[strings.LastIndex(s.URL, ":")+1:]
	h := newHarness(t, webhook.Config{
		RateLimiter:    &webhook.MemoryRateLimiter{},
		EndpointLimits: map[string]webhook.RateLimit{s.URL: {PerSecond: webhook.MinRatePerSecond, Burst: 1}},
		Subscriptions: []webhook.Subscription{
			{ID: "plain", Topic: "a", URL: s.URL + "/a"},
			{ID: "mapped", Topic: "b", URL: "http://[::ffff:127.0.0.1]:" + port + "/b"},
		},
	})
	h.emit(t, pubsub.Event{ID: "a1", Name: "a", Payload: []byte(`{}`)})
	h.until(t, "a1 delivered", func() bool { return h.obs.count("plain", webhook.Delivered) == 1 })
	h.emit(t, pubsub.Event{ID: "b1", Name: "b", Payload: []byte(`{}`)})
	h.until(t, "b1 settled", func() bool {
		return h.obs.count("mapped", webhook.Delivered)+h.obs.count("mapped", webhook.RateLimited)+h.obs.count("mapped", webhook.Failed) > 0
	})
	if n := len(s.snapshot()); n > 1 {
		t.Errorf("endpoint limited to one an hour (burst 1) received %d deliveries: 127.0.0.1 and [::ffff:127.0.0.1] are counted apart", n)
	}
}

// "Should Redis not answer the limiter (within 1s), the delivery is
// deferred a second": a Redis that accepts the command and does not
// answer (CLIENT PAUSE) must cost the limiter call at most its Timeout.
func TestAdversary3RedisLimiterBoundedWhenRedisHangs(t *testing.T) {
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = admin.Close() })
	opts, err := goredis.ParseURL("redis://" + srv.Addr) // as webhook-bridge builds its client
	if err != nil {
		t.Fatal(err)
	}
	client := goredis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	lim := webhook.RedisRateLimiter{Client: client, Prefix: "adv3:"}
	ctx := context.Background()
	if _, err := lim.Allow(ctx, "k", webhook.RateLimit{PerSecond: 100}); err != nil {
		t.Fatal(err) // connection made, script loaded
	}
	if err := admin.Do(ctx, "CLIENT", "PAUSE", "2500", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = lim.Allow(ctx, "k", webhook.RateLimit{PerSecond: 100})
	took := time.Since(start)
	if err == nil {
		t.Logf("Allow answered after the pause, %s", took)
	}
	if took > 1500*time.Millisecond {
		t.Errorf("limiter call took %s against a Redis that does not answer; its Timeout (1s) is not enforced (err %v)", took, err)
	}
}

// A limit raised through SetSubscriptions (an admin API PUT) must let a
// backlog go at the new pace. The bridge's own spreading of refused
// deliveries (spreadNext, by limiter key) remembers the old interval: a
// delivery refused once at one an hour pushes every later refusal for
// the key an hour or more out, even under the in-memory limiter.
func TestAdversary3RaisedLimitBacklogGoesAtNewPace(t *testing.T) {
	s := newSink(t, nil)
	sub := webhook.Subscription{ID: "slow", Topic: "t", URL: s.URL + "/slow", RateLimit: &webhook.RateLimit{PerSecond: webhook.MinRatePerSecond, Burst: 1}}
	h := newHarness(t, webhook.Config{RateLimiter: &webhook.MemoryRateLimiter{}, Subscriptions: []webhook.Subscription{sub}})
	h.emit(t, pubsub.Event{ID: "e1", Name: "t", Payload: []byte(`{}`)})
	h.until(t, "e1 delivered", func() bool { return h.obs.count("slow", webhook.Delivered) == 1 })
	h.emit(t, pubsub.Event{ID: "e2", Name: "t", Payload: []byte(`{}`)})
	h.until(t, "e2 refused", func() bool { return h.obs.count("slow", webhook.RateLimited) == 1 })

	sub.RateLimit = &webhook.RateLimit{PerSecond: 50, Burst: 1}
	if err := h.bridge.SetSubscriptions([]webhook.Subscription{sub}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []pubsub.ID{"e3", "e4", "e5", "e6"} {
		h.emit(t, pubsub.Event{ID: id, Name: "t", Payload: []byte(`{}`)})
	}
	// four deliveries at 50/s, burst 1: well inside 3s
	deadline := time.After(3 * time.Second)
	for {
		ch := h.obs.changes()
		if h.obs.count("slow", webhook.Delivered) >= 5 {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("after raising the limit to 50/s, %d of e3..e6 delivered in 3s; the refused ones were sent back an hour or more out",
				h.obs.count("slow", webhook.Delivered)-1)
		}
	}
}

// After 429s the rate "is halved for the Retry-After period, then climbs
// back to the configured limit in a straight line over as long again".
// A backlog refused while the rate was low is spread at the low rate's
// interval (spreadNext) and keeps that pace long after the climb: the
// back-off does not restore.
func TestAdversary3BacklogAfter429sRestores(t *testing.T) {
	s := newSink(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n <= 4 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	h := newHarness(t, webhook.Config{RateLimiter: &webhook.MemoryRateLimiter{}, Circuit: webhook.CircuitConfig{Failures: 1000}, Subscriptions: []webhook.Subscription{{
		ID: "tm", Topic: "t", URL: s.URL + "/tm", MaxAttempts: 20, RateLimit: &webhook.RateLimit{PerSecond: 20, Burst: 1},
	}}})
	for i := range 4 {
		h.emit(t, pubsub.Event{ID: pubsub.ID(fmt.Sprintf("a%d", i)), Name: "t", Payload: []byte(`{}`)})
	}
	h.until(t, "four 429s", func() bool { return h.obs.count("tm", webhook.Failed) >= 4 })
	start := time.Now()
	for i := range 10 {
		h.emit(t, pubsub.Event{ID: pubsub.ID(fmt.Sprintf("b%d", i)), Name: "t", Payload: []byte(`{}`)})
	}
	// Retry-After 1s: held 1s, climbing back over 1s; then 14 deliveries
	// at 20/s take under a second. 5s is generous.
	deadline := time.After(5 * time.Second)
	for {
		ch := h.obs.changes()
		if h.obs.count("tm", webhook.Delivered) >= 14 {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s after the last 429 (Retry-After 1s), %d of 14 delivered at a limit of 20/s", time.Since(start).Round(time.Millisecond), h.obs.count("tm", webhook.Delivered))
		}
	}
}
