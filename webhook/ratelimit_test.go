package webhook_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
)

// Two replicas on one Redis share an endpoint's limit of 20/s, burst 5:
// they send at most 25 deliveries in any second (the endpoint sees at
// most 30 arrive in one, allowing for arrival jitter), every
// event arrives on its first attempt (waiting spends none), nothing is
// dead-lettered, and an unlimited endpoint fed by the same events gets
// them all at full speed meanwhile.
func TestRateLimitAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 20s: 400 deliveries at 20/s")
	}
	const (
		events    = 400
		perSecond = 20
		burst     = 5
	)
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = client.Close() })

	limited, free := newSink(t, nil), newSink(t, nil)
	subs := []webhook.Subscription{
		{ID: "limited", Topic: "rl.test", URL: limited.URL + "/hook"},
		{ID: "free", Topic: "rl.test", URL: free.URL + "/hook"},
	}
	limiter := webhook.RedisRateLimiter{Client: client, Prefix: redis.HelperKey("rl", "webhook") + ":"}
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Route: func(pubsub.Name) string { return "rl" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	obs := &countingObserver{}
	var (
		dead []*webhook.MemoryDeadLetters
		wg   sync.WaitGroup
	)
	for i := range 2 {
		sub, err := redis.NewSubscriber(ctx, client, redis.SubscriberConfig{Streams: []string{"rl"}, Group: "bridge",
			Consumer: fmt.Sprintf("replica-%d", i), Concurrency: 16, Start: redis.StartBeginning,
			Block: 50 * time.Millisecond, DelayedPoll: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		d := &webhook.MemoryDeadLetters{}
		dead = append(dead, d)
		b, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: pub, Subscriptions: subs, DeadLetters: d, Observer: obs,
			RateLimiter:    limiter,
			EndpointLimits: map[string]webhook.RateLimit{limited.URL: {PerSecond: perSecond, Burst: burst}},
			Retry:          webhook.RetryPolicy{Schedule: []time.Duration{100 * time.Millisecond}, MaxAttempts: 3}})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { b.Run(ctx) })
		t.Cleanup(func() { _ = sub.Close() })
		defer func() { _ = b.Close() }()
	}

	batch := make([]pubsub.Event, events)
	for i := range batch {
		batch[i] = pubsub.NewEvent(ctx, "rl.test", []byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	start := time.Now()
	if err := pub.Emit(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	free.WaitFor(t, events, wait)
	freeTook := time.Since(start)
	hits := limited.WaitFor(t, events, 24*time.Second)
	limitedTook := time.Since(start)
	t.Logf("unlimited endpoint: %d deliveries in %s; limited: %d in %s", events, freeTook, events, limitedTook)

	if freeTook > limitedTook/3 {
		t.Errorf("the unlimited endpoint took %s, the limited one %s: the limited one held it up", freeTook, limitedTook)
	}
	// The limit is what the receiver measures: arrivals in any window of
	// one second, starting at each arrival.
	at := make([]time.Time, len(hits))
	ids := map[string]bool{}
	for i, h := range hits {
		at[i] = h.At
		ids[h.Header.Get("Webhook-Id")] = true
		if a := h.Header.Get(webhook.HeaderAttempt); a != "1" {
			t.Errorf("delivery %s arrived as attempt %s: waiting for the limit spent an attempt", h.Header.Get("Webhook-Id"), a)
		}
	}
	if len(ids) != events {
		t.Errorf("%d distinct events reached the limited endpoint in %d deliveries, want %d", len(ids), len(hits), events)
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	most, from, j := 0, time.Time{}, 0
	for i := range at {
		for j < len(at) && at[j].Sub(at[i]) < time.Second {
			j++
		}
		if j-i > most {
			most, from = j-i, at[i]
		}
	}
	t.Logf("most deliveries to the limited endpoint in one second: %d, from %s after the emit", most, from.Sub(start))
	// The limiter admits at most perSecond+burst in any second; arrivals
	// in a second came from admissions in that second plus the spread of
	// the time from admission to arrival, which on two loaded cores
	// reaches a quarter of a second. Both replicas unlimited would be 50.
	if most > perSecond+burst+perSecond/4 {
		t.Errorf("the limited endpoint saw %d deliveries within one second, want at most %d (%d admitted, and %d for arrival jitter)",
			most, perSecond+burst+perSecond/4, perSecond+burst, perSecond/4)
	}
	if n := len(free.snapshot()); n != events {
		t.Errorf("the unlimited endpoint saw %d deliveries, want %d", n, events)
	}
	for i, d := range dead {
		if n, _ := d.Len(context.Background()); n != 0 {
			all, _, _ := d.List(context.Background(), "", 10)
			t.Errorf("replica %d dead-lettered %d deliveries: %+v", i, n, all)
		}
	}
	if limited, failed, free := obs.count("limited", webhook.RateLimited), obs.count("limited", webhook.Failed), obs.count("free", webhook.RateLimited); limited == 0 || failed != 0 || free != 0 {
		t.Errorf("outcomes: limited: %d rate_limited, %d failed; free: %d rate_limited; want rate_limited deferrals for the limited one only, and no failure", limited, failed, free)
	}
	cancel()
	wg.Wait()
}

// A subscription's rate_limit is enforced on its own, in memory too, and
// its deliveries are deferred rather than failed.
func TestSubscriptionRateLimitInMemory(t *testing.T) {
	s := newSink(t, nil)
	h := newHarness(t, webhook.Config{RateLimiter: &webhook.MemoryRateLimiter{},
		Subscriptions: []webhook.Subscription{{ID: "slow", Topic: "*", URL: s.URL, RateLimit: &webhook.RateLimit{PerSecond: 20, Burst: 2}}}})
	for i := range 10 {
		h.emit(t, pubsub.NewEvent(context.Background(), "t", []byte(fmt.Sprintf(`{"n":%d}`, i))))
	}
	hits := s.waitFor(t, 10)
	for _, hit := range hits {
		if a := hit.Header.Get(webhook.HeaderAttempt); a != "1" {
			t.Errorf("attempt %s, want 1", a)
		}
	}
	// 10 deliveries with a burst of 2 at 20/s need at least 8 intervals
	// of 50ms (less some arrival jitter).
	if took := hits[len(hits)-1].At.Sub(hits[0].At); took < 300*time.Millisecond {
		t.Errorf("10 deliveries took %s, faster than 20/s with a burst of 2 allows", took)
	}
	if n := h.obs.count("slow", webhook.RateLimited); n == 0 {
		t.Error("no delivery was counted as rate_limited")
	}
}

func TestRateLimitValidate(t *testing.T) {
	base := webhook.Subscription{ID: "s", Topic: "t", URL: "http://x/"}
	for _, tc := range []struct {
		limit webhook.RateLimit
		want  string
	}{
		{webhook.RateLimit{}, `subscription "s": rate_limit: per_second 0 is outside`},
		{webhook.RateLimit{PerSecond: -1}, "per_second -1 is outside"},
		{webhook.RateLimit{PerSecond: 2e6}, "per_second 2e+06 is outside"},
		{webhook.RateLimit{PerSecond: 10, Burst: -1}, `subscription "s": rate_limit: burst -1 is outside`},
		{webhook.RateLimit{PerSecond: 10, Burst: 2_000_000}, "burst 2000000 is outside"},
	} {
		s := base
		s.RateLimit = &tc.limit
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.limit, err, tc.want)
		}
	}
	s := base
	s.RateLimit = &webhook.RateLimit{PerSecond: 0.5}
	if err := s.Validate(); err != nil {
		t.Errorf("one every 2s: %v", err)
	}
	_, err := webhook.New(webhook.Config{Subscriber: nopSubscriber{}, Publisher: delayedNop{},
		EndpointLimits: map[string]webhook.RateLimit{"not a url": {PerSecond: 1}}})
	if err == nil || !strings.Contains(err.Error(), "EndpointLimits") {
		t.Errorf("bad endpoint key: %v", err)
	}
	_, err = webhook.New(webhook.Config{Subscriber: nopSubscriber{}, Publisher: delayedNop{},
		EndpointLimits: map[string]webhook.RateLimit{"http://x": {PerSecond: 0}}})
	if err == nil || !strings.Contains(err.Error(), `EndpointLimits["http://x"]: per_second 0`) {
		t.Errorf("bad endpoint limit: %v", err)
	}
}

type nopSubscriber struct{}

func (nopSubscriber) Consume(context.Context, pubsub.Handler, pubsub.ErrorHandler) {}
func (nopSubscriber) Close() error                                                 { return nil }

type delayedNop struct{}

func (delayedNop) Emit(context.Context, ...pubsub.Event) error              { return nil }
func (delayedNop) EmitAt(context.Context, time.Time, ...pubsub.Event) error { return nil }
func (delayedNop) Close() error                                             { return nil }
