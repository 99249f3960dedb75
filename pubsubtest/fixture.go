package pubsubtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// fixture is one test's backend with the suite's helpers around it.
type fixture struct {
	t       *testing.T
	h       Harness
	b       Backend
	timeout time.Duration
}

func newFixture(t *testing.T, h Harness) *fixture {
	t.Helper()
	timeout := h.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	b := h.Setup(t)
	if b.Publisher == nil || b.NewSubscriber == nil || b.DeadLetters == nil {
		t.Fatal("pubsubtest: Harness.Setup returned a Backend without Publisher, NewSubscriber or DeadLetters")
	}
	return &fixture{t: t, h: h, b: b, timeout: timeout}
}

func (f *fixture) need(c Capability) {
	f.t.Helper()
	if reason, ok := f.h.Lacks[c]; ok {
		f.t.Skipf("backend lacks %s: %s", c, reason)
	}
}

// sub returns a subscriber with the suite's defaults filled in; it is
// closed when the test ends.
func (f *fixture) sub(cfg SubscriberConfig) pubsub.Subscriber {
	f.t.Helper()
	if cfg.Group == "" {
		cfg.Group = "conformance"
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = 10 * time.Millisecond
	}
	s, err := f.b.NewSubscriber(cfg)
	if err != nil {
		f.t.Fatalf("NewSubscriber(%+v): %v", cfg, err)
	}
	f.t.Cleanup(func() {
		if err := s.Close(); err != nil {
			f.t.Errorf("Subscriber.Close: %v", err)
		}
	})
	return s
}

// consume runs s.Consume in a goroutine until the returned stop is called
// (or the test ends); stop waits for Consume to return.
func (f *fixture) consume(s pubsub.Subscriber, h pubsub.Handler, eh pubsub.ErrorHandler) (stop func()) {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		s.Consume(ctx, h, eh)
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-returned:
		case <-time.After(f.timeout):
			f.t.Errorf("Consume did not return within %s of its context being cancelled", f.timeout)
		}
	}
	f.t.Cleanup(stop)
	return stop
}

func (f *fixture) emit(events ...pubsub.Event) {
	f.t.Helper()
	if err := f.b.Publisher.Emit(context.Background(), events...); err != nil {
		f.t.Fatalf("Emit of %d event(s): %v", len(events), err)
	}
}

// wait fails the test when ch is not closed within the timeout.
func (f *fixture) wait(ch <-chan struct{}, what string) {
	f.t.Helper()
	select {
	case <-ch:
	case <-time.After(f.timeout):
		f.t.Fatalf("timed out after %s waiting for %s", f.timeout, what)
	}
}

// events returns n events named name with payloads "0", "1", …
func events(name pubsub.Name, n int) []pubsub.Event {
	evs := make([]pubsub.Event, n)
	for i := range evs {
		evs[i] = pubsub.NewEvent(context.Background(), name, []byte(fmt.Sprint(i)))
	}
	return evs
}

// countIDs counts deliveries per event ID.
func countIDs(evs []pubsub.Event) map[pubsub.ID]int {
	m := make(map[pubsub.ID]int, len(evs))
	for _, ev := range evs {
		m[ev.ID]++
	}
	return m
}

// exactlyOnce fails the test unless got holds every event of want once.
func exactlyOnce(t *testing.T, want, got []pubsub.Event) {
	t.Helper()
	counts := countIDs(got)
	for _, ev := range want {
		if n := counts[ev.ID]; n != 1 {
			t.Errorf("event %s (%s) delivered %d times, want once", ev.ID, ev.Payload, n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d deliveries, want %d", len(got), len(want))
	}
}
