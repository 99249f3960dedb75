package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// concurrencySink counts requests per path and the most in flight at
// once, in all and per endpoint.
type concurrencySink struct {
	sink
	mu          sync.Mutex
	inFlight    int
	maxInFlight int
}

func newConcurrencySink(t *testing.T, took time.Duration) *concurrencySink {
	c := &concurrencySink{}
	c.sink = newSink(t, func(int, *http.Request, http.ResponseWriter) {
		c.mu.Lock()
		c.inFlight++
		c.maxInFlight = max(c.maxInFlight, c.inFlight)
		c.mu.Unlock()
		time.Sleep(took) // the receiver's own work
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	})
	return c
}

// One event matching 1,000 subscriptions spread over 10 endpoints: every
// subscription gets it once; no endpoint ever has more than PerEndpoint
// requests in flight, nor all of them more than MaxInFlight; the bridge
// does not start a goroutine per delivery; and nothing is deferred, as
// the endpoints keep answering.
func TestFanOutIsBoundedAndQueued(t *testing.T) {
	const subs, endpoints, perEndpoint, maxInFlight = 1000, 10, 4, 24
	sinks := make([]*concurrencySink, endpoints)
	for i := range sinks {
		sinks[i] = newConcurrencySink(t, time.Millisecond)
	}
	var list []webhook.Subscription
	for i := range subs {
		list = append(list, webhook.Subscription{ID: fmt.Sprintf("s%d", i), Topic: "order.*", URL: fmt.Sprintf("%s/s%d", sinks[i%endpoints].URL, i)})
	}
	h := newHarness(t, webhook.Config{PerEndpoint: perEndpoint, MaxInFlight: maxInFlight, Subscriptions: list})
	before := runtime.NumGoroutine()
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if n := int64(runtime.NumGoroutine()); n > peak.Load() {
					peak.Store(n)
				}
			}
		}
	}()
	h.emit(t, pubsub.NewEvent(context.Background(), "order.created", []byte(`{}`)))
	for _, s := range sinks {
		s.waitFor(t, subs/endpoints)
	}
	close(stop)
	<-sampled
	seen := map[string]int{}
	for _, s := range sinks {
		for _, hit := range s.snapshot() {
			seen[hit.Path]++
		}
		s.mu.Lock()
		most := s.maxInFlight
		s.mu.Unlock()
		if most > perEndpoint {
			t.Errorf("an endpoint had %d requests in flight, PerEndpoint is %d", most, perEndpoint)
		}
	}
	for i := range subs {
		if n := seen[fmt.Sprintf("/s%d", i)]; n != 1 {
			t.Errorf("subscription s%d got %d deliveries, want 1", i, n)
		}
	}
	deferred := 0
	for i := range subs {
		deferred += h.obs.count(fmt.Sprintf("s%d", i), webhook.Deferred)
	}
	if d := deferred; d != 0 {
		t.Errorf("%d deliveries deferred, want none: every endpoint kept answering", d)
	}
	// The servers' and connections' goroutines come with the requests in
	// flight, at most maxInFlight of them; a goroutine per delivery would
	// add a thousand.
	if grew := int(peak.Load()) - before; grew > 10*maxInFlight {
		t.Errorf("goroutines grew by %d during the fan-out, want well under the %d deliveries", grew, subs)
	}
	h.until(t, "no delivery in flight", func() bool { return h.bridge.InFlight() == 0 })
}

// flakyRetries fails the delayed emits of retries for one subscription,
// once.
type flakyRetries struct {
	pubsub.DelayedPublisher
	failed atomic.Bool
}

func (f *flakyRetries) EmitAt(ctx context.Context, at time.Time, evs ...pubsub.Event) error {
	for _, ev := range evs {
		if sub, _, _, ok := webhook.UnwrapRetry(ev); ok && sub == "c" && f.failed.CompareAndSwap(false, true) {
			return errors.New("redis went away")
		}
	}
	return f.DelayedPublisher.EmitAt(ctx, at, evs...)
}

// An event whose handling fails because one subscription's retry could
// not be scheduled is handed over again by its backend, and then goes to
// that subscription only: the four others, delivered, are not sent again.
func TestHandedOverAgainGoesOnlyWhereItHasNot(t *testing.T) {
	failC := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
	ok := newSink(t, nil)
	var subs []webhook.Subscription
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		url := ok.URL + "/" + id
		if id == "c" {
			url = failC.URL
		}
		subs = append(subs, webhook.Subscription{ID: id, Topic: "t", URL: url})
	}
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	idle, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "idle"}) // the test calls Handle itself
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idle.Close() })
	flaky := &flakyRetries{DelayedPublisher: broker}
	b, err := webhook.New(webhook.Config{Subscriber: idle, Publisher: flaky, Subscriptions: subs,
		Retry: webhook.RetryPolicy{Schedule: []time.Duration{time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev := pubsub.NewEvent(ctx, "t", []byte(`{}`))
	if err := b.Handle(ctx, ev); err == nil {
		t.Fatal("Handle succeeded though c's retry could not be scheduled")
	}
	ok.waitFor(t, 4)
	failC.waitFor(t, 1)
	ev.Meta.Attempts = 1 // as a backend hands it over again
	if err := b.Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if n := len(failC.snapshot()); n != 2 {
		t.Errorf("c got %d deliveries, want 2: it was not settled", n)
	}
	if n := len(ok.snapshot()); n != 4 {
		t.Errorf("the four delivered subscriptions got %d deliveries in all, want 4: handed over again, the event went where it had gone", n)
	}
}

// A topic ending in ".*" takes every event whose name starts with what is
// before the "*" and goes on; "*" anywhere else is refused, naming the
// subscription.
func TestTopicPrefixPatterns(t *testing.T) {
	s := newSink(t, nil)
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{
		{ID: "orders", Topic: "order.*", URL: s.URL + "/orders"},
		{ID: "refunds", Topic: "order.refund.*", URL: s.URL + "/refunds"},
		{ID: "exact", Topic: "order.created", URL: s.URL + "/exact"},
		{ID: "all", Topic: "*", URL: s.URL + "/all"},
	}})
	want := map[string][]string{
		"order.created":          {"/orders", "/exact", "/all"},
		"order.refund.issued":    {"/orders", "/refunds", "/all"},
		"order.refund.issued.v2": {"/orders", "/refunds", "/all"},
		"order":                  {"/all"},
		"order.":                 {"/all"},
		"orders.created":         {"/all"},
		"order.refund":           {"/orders", "/all"},
	}
	total := 0
	for name, paths := range want {
		h.emit(t, pubsub.Event{ID: pubsub.ID(name), Name: pubsub.Name(name), Payload: []byte(`{}`)})
		total += len(paths)
	}
	hits := s.waitFor(t, total)
	got := map[string]map[string]int{}
	for _, hit := range hits {
		name := hit.Header.Get("Ce-Type")
		if got[name] == nil {
			got[name] = map[string]int{}
		}
		got[name][hit.Path]++
	}
	for name, paths := range want {
		if len(got[name]) != len(paths) {
			t.Errorf("%s went to %v, want %v", name, got[name], paths)
		}
		for _, p := range paths {
			if got[name][p] != 1 {
				t.Errorf("%s reached %s %d times, want once", name, p, got[name][p])
			}
		}
	}
	for _, bad := range []string{"or*der", "order.*.created", ".*", "order*", "**"} {
		err := h.bridge.SetSubscriptions([]webhook.Subscription{{ID: "p", Topic: bad, URL: s.URL}})
		if err == nil {
			t.Errorf("topic %q accepted", bad)
		} else if !strings.Contains(err.Error(), `subscription "p": topic`) {
			t.Errorf("topic %q: %v, want it named", bad, err)
		}
	}
}
