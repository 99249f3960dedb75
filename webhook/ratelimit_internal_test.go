package webhook

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// A 429 halves the rate for its Retry-After period, then the rate climbs
// back in a straight line over as long again; 429s in a row compound,
// down to minThrottle, and a 429 during the climb halves what is in force.
func TestThrottleAfter429(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	var th throttle
	if f := th.at(t0); f != 1 {
		t.Fatalf("no 429 yet: factor %v, want 1", f)
	}
	th.tooMany(t0, 10*time.Second)
	for _, tc := range []struct {
		after time.Duration
		want  float64
	}{
		{0, 0.5}, {9 * time.Second, 0.5}, {10 * time.Second, 0.5}, {15 * time.Second, 0.75}, {20 * time.Second, 1}, {time.Hour, 1},
	} {
		if f := th.at(t0.Add(tc.after)); math.Abs(f-tc.want) > 1e-9 {
			t.Errorf("%s after one 429 (Retry-After 10s): factor %v, want %v", tc.after, f, tc.want)
		}
	}
	// A second 429 halfway up the climb halves 0.75.
	th.tooMany(t0.Add(15*time.Second), 0)
	if f := th.at(t0.Add(15 * time.Second)); math.Abs(f-0.375) > 1e-9 {
		t.Errorf("429 during the climb: factor %v, want 0.375", f)
	}
	// Without Retry-After the hold is a second.
	if f := th.at(t0.Add(16 * time.Second)); math.Abs(f-0.375) > 1e-9 {
		t.Errorf("hold without Retry-After: %v, want 0.375 until the second is over", f)
	}
	if f := th.at(t0.Add(17 * time.Second)); f != 1 {
		t.Errorf("after hold and climb: %v, want 1", f)
	}
	for range 20 {
		th.tooMany(t0.Add(20*time.Second), time.Minute)
	}
	if f := th.at(t0.Add(20 * time.Second)); f != minThrottle {
		t.Errorf("after many 429s: %v, want the floor %v", f, minThrottle)
	}
	l := RateLimit{PerSecond: 20, Burst: 5}
	if got := l.scaled(0.5); got != (RateLimit{PerSecond: 10, Burst: 2}) {
		t.Errorf("halved: %+v", got)
	}
	if got := l.scaled(minThrottle); got.Burst != 1 || got.PerSecond != 20*minThrottle {
		t.Errorf("at the floor: %+v, want burst 1", got)
	}
}

// Through the bridge: a limited endpoint's 429 with Retry-After halves
// the rate its deliveries are asked at, for that endpoint only, and the
// 429 itself is retried after its Retry-After as any failure is.
func TestBridge429LowersTheLimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	rec := &recordingLimiter{}
	pub := &capturePublisher{}
	b, err := New(Config{Subscriber: nopSub{}, Publisher: pub, RateLimiter: rec,
		EndpointLimits: map[string]RateLimit{srv.URL: {PerSecond: 20, Burst: 4}},
		Subscriptions: []Subscription{
			{ID: "a", Topic: "*", URL: srv.URL + "/a"},
			{ID: "other", Topic: "*", URL: "http://other.invalid/", RateLimit: &RateLimit{PerSecond: 8}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev := pubsub.Event{ID: "e1", Name: "t", Payload: []byte(`{}`)}
	rt := b.table.Load().byID["a"]
	if err := b.deliver(ctx, rt, ev, b.headersOf(ev), 0); err != nil {
		t.Fatal(err)
	}
	if got := rec.last("endpoint:" + EndpointKey(srv.URL) + RateLimit{PerSecond: 20, Burst: 4}.keySuffix()); got != (RateLimit{PerSecond: 20, Burst: 4}) {
		t.Fatalf("first delivery asked at %+v, want the configured limit", got)
	}
	if len(pub.at) != 1 || time.Until(pub.at[0]) < 25*time.Second {
		t.Fatalf("the 429 was not retried after its Retry-After: %v", pub.at)
	}
	if err := b.deliver(ctx, rt, ev, b.headersOf(ev), 1); err != nil {
		t.Fatal(err)
	}
	if got := rec.last("endpoint:" + EndpointKey(srv.URL) + RateLimit{PerSecond: 20, Burst: 4}.keySuffix()); got != (RateLimit{PerSecond: 10, Burst: 2}) {
		t.Errorf("after a 429 the limit asked is %+v, want it halved", got)
	}
	// Another endpoint is not slowed.
	ep := b.endpoints.get(EndpointKey("http://other.invalid/"))
	if f := ep.throttleAt(time.Now()); f != 1 {
		t.Errorf("another endpoint's factor is %v", f)
	}
}

type recordingLimiter struct{ limits map[string]RateLimit }

func (r *recordingLimiter) Allow(_ context.Context, key string, l RateLimit) (time.Duration, error) {
	if r.limits == nil {
		r.limits = map[string]RateLimit{}
	}
	r.limits[key] = l
	return 0, nil
}

func (r *recordingLimiter) last(key string) RateLimit { return r.limits[key] }

type nopSub struct{}

func (nopSub) Consume(context.Context, pubsub.Handler, pubsub.ErrorHandler) {}
func (nopSub) Close() error                                                 { return nil }

type capturePublisher struct{ at []time.Time }

func (p *capturePublisher) Emit(context.Context, ...pubsub.Event) error { return nil }
func (p *capturePublisher) EmitAt(_ context.Context, at time.Time, _ ...pubsub.Event) error {
	p.at = append(p.at, at)
	return nil
}
func (p *capturePublisher) Close() error { return nil }

// MemoryRateLimiter spends a budget and says how long until the next
// delivery; a lower limit for the same key applies at once.
func TestMemoryRateLimiter(t *testing.T) {
	var m MemoryRateLimiter
	ctx := context.Background()
	l := RateLimit{PerSecond: 10, Burst: 3}
	for i := range 3 {
		if w, err := m.Allow(ctx, "k", l); w != 0 || err != nil {
			t.Fatalf("delivery %d of the burst: wait %s, %v", i+1, w, err)
		}
	}
	w, _ := m.Allow(ctx, "k", l)
	if w <= 0 || w > 100*time.Millisecond {
		t.Errorf("over the burst: wait %s, want up to one interval (100ms)", w)
	}
	if w, _ := m.Allow(ctx, "other", l); w != 0 {
		t.Errorf("another key shares the budget: wait %s", w)
	}
	w, _ = m.Allow(ctx, "k", l.scaled(0.5))
	if w <= 100*time.Millisecond || w > 200*time.Millisecond {
		t.Errorf("at half the rate: wait %s, want up to 200ms", w)
	}
}
