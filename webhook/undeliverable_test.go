package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
)

// recorder is an Observer and a slog.Handler that keeps what it hears and
// lets a test wait for a condition without sleeping.
type recorder struct {
	mu       sync.Mutex
	changed  chan struct{}
	outcomes map[Outcome]int
	retries  int
	kinds    map[DeadLetterKind]int
	filters  int
	messages []string
	attrs    []map[string]string // of each message
}

func newRecorder() *recorder {
	return &recorder{changed: make(chan struct{}), outcomes: map[Outcome]int{}, kinds: map[DeadLetterKind]int{}}
}

func (r *recorder) note(f func()) {
	r.mu.Lock()
	f()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) Delivery(_ string, o Outcome, _ int, _ time.Duration) {
	r.note(func() { r.outcomes[o]++ })
}
func (r *recorder) RetryScheduled(string, int, time.Duration) { r.note(func() { r.retries++ }) }
func (r *recorder) DeadLettered(_ string, k DeadLetterKind)   { r.note(func() { r.kinds[k]++ }) }
func (r *recorder) FilterFailed(string)                       { r.note(func() { r.filters++ }) }
func (r *recorder) EventConsumed(int, int)                    {}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	attrs := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	r.note(func() { r.messages, r.attrs = append(r.messages, rec.Message), append(r.attrs, attrs) })
	return nil
}

// until waits for cond, read under the recorder's lock.
func (r *recorder) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		ok, ch := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// undeliverableBridge runs a bridge over a memory broker with two
// subscriptions to one endpoint, a sink answering 200 to everything: "good"
// for every event, and "broken" for events named "broken", whose header
// value, slipped in after validation, net/http would refuse. The circuit
// opens at the first failure it counts.
func undeliverableBridge(t *testing.T) (*Bridge, *memory.Broker, *httpsink.Sink, *recorder) {
	t.Helper()
	s := httpsink.New(t, nil)
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "bridge", Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	b, err := New(Config{
		Subscriber: sub, Publisher: broker, Observer: rec, Logger: slog.New(rec),
		Circuit: CircuitConfig{Failures: 1, Cooldown: time.Hour},
		Retry:   RetryPolicy{Schedule: []time.Duration{10 * time.Millisecond}},
		Subscriptions: []Subscription{
			{ID: "good", Topic: "*", URL: s.URL + "/good"},
			{ID: "broken", Topic: "broken", URL: s.URL + "/broken", Headers: map[string]string{"X-Note": "fine"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.table.Load().byID["broken"].sub.Headers = map[string]string{"X-Note": "line\nbreak"}
	done := make(chan struct{})
	go func() { defer close(done); b.Run(context.Background()) }()
	t.Cleanup(func() { _ = b.Close(); <-done; _ = sub.Close() })
	return b, broker, s, rec
}

// Events that cannot become a request, fed among valid ones, are each
// dead-lettered once as undeliverable without an attempt; the valid ones
// all arrive on their first attempt, nothing is deferred or retried, and
// the endpoint's circuit, which opens at one counted failure, never opens.
func TestNothingUndeliverableIsTried(t *testing.T) {
	b, broker, s, rec := undeliverableBridge(t)
	ctx := context.Background()
	long := strings.Repeat("n", MaxNameLen+1)
	var (
		bad       = map[pubsub.ID]string{} // id: the field its dead letter must name
		goodCount int
	)
	for i := range 30 {
		valid := pubsub.NewEvent(ctx, "ok", []byte(`{}`))
		if err := broker.Emit(ctx, valid); err != nil {
			t.Fatal(err)
		}
		goodCount++
		ev := pubsub.NewEvent(ctx, "ok", []byte(`{}`))
		switch i % 5 {
		case 0: // Validate refuses it: only Handle can be given it
			ev.ID = pubsub.ID(fmt.Sprintf("bad\nid-%d", i))
			bad[ev.ID] = "ID"
			if err := b.Handle(ctx, ev); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			continue
		case 1:
			ev.Name = pubsub.Name("bad\x7fname")
			bad[ev.ID] = "name"
			if err := b.Handle(ctx, ev); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			continue
		case 2: // too long for a header: the backend carries it
			ev.Name = pubsub.Name(long)
			bad[ev.ID] = "name"
		case 3:
			ev.Meta.CorrelationID = strings.Repeat("c", MaxCorrelationIDLen+1)
			bad[ev.ID] = "correlation_id"
		case 4: // fine for "good", unsendable for "broken"
			ev.Name = "broken"
			bad[ev.ID] = "X-Note"
			goodCount++
		}
		if err := broker.Emit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	rec.until(t, "every delivery and dead letter", func() bool {
		return rec.outcomes[Delivered] == goodCount && rec.kinds[KindUndeliverable] == len(bad)
	})
	// A marker behind them all: nothing else is on its way.
	if err := broker.Emit(ctx, pubsub.NewEvent(ctx, "ok", nil)); err != nil {
		t.Fatal(err)
	}
	hits := s.WaitFor(t, goodCount+1, 10*time.Second)
	if len(hits) != goodCount+1 {
		t.Errorf("%d requests, want %d: one per valid delivery", len(hits), goodCount+1)
	}
	for _, h := range hits {
		if h.Path != "/good" || h.Header.Get(HeaderAttempt) != "1" {
			t.Errorf("request to %s with attempt %s", h.Path, h.Header.Get(HeaderAttempt))
		}
	}
	rec.mu.Lock()
	if rec.outcomes[Deferred] != 0 || rec.outcomes[Failed] != 0 || rec.retries != 0 || len(rec.kinds) != 1 {
		t.Errorf("outcomes %v, %d retries, dead letters %v: want only deliveries and undeliverable ones", rec.outcomes, rec.retries, rec.kinds)
	}
	for _, m := range rec.messages {
		if strings.Contains(m, "circuit") {
			t.Errorf("logged %q: nothing may touch the circuit", m)
		}
	}
	rec.mu.Unlock()

	dls, _, err := b.DeadLetters().List(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != len(bad) {
		t.Errorf("%d dead letters, want %d", len(dls), len(bad))
	}
	seen := map[pubsub.ID]bool{}
	for _, dl := range dls {
		field, ok := bad[dl.Event.ID]
		switch {
		case !ok:
			t.Errorf("dead letter for %q, a valid event", dl.Event.ID)
		case seen[dl.Event.ID]:
			t.Errorf("%q dead-lettered twice", dl.Event.ID)
		case dl.Kind != KindUndeliverable || dl.Attempts != 0 || dl.LastStatus != 0:
			t.Errorf("dead letter %+v, want kind undeliverable after 0 attempts", dl)
		case !strings.Contains(dl.LastError, field):
			t.Errorf("dead letter of %q says %q, which does not name %s", dl.Event.ID, dl.LastError, field)
		}
		seen[dl.Event.ID] = true
	}
}

// A half-open circuit's probe that could not be sent is given back, and
// counts neither as a failure nor as a success; the next delivery probes.
func TestUnsentProbeLeavesTheCircuitAlone(t *testing.T) {
	b, _, s, rec := undeliverableBridge(t)
	ctx := context.Background()
	ep := b.endpoints.get(endpointKey(s.URL))
	past := time.Now().Add(-time.Second)
	ep.mu.Lock()
	ep.failures, ep.openUntil = 3, past // open, its cooldown over: the next delivery probes
	ep.mu.Unlock()

	// One subscription at a time, so that the unsendable delivery is the
	// one that finds the circuit half-open.
	rt := b.table.Load().byID["broken"]
	broken := pubsub.NewEvent(ctx, "broken", nil)
	if err := b.deliver(ctx, rt, broken, b.headersOf(broken), 0); err != nil {
		t.Fatal(err)
	}
	ep.mu.Lock()
	probing, failures, until := ep.probing, ep.failures, ep.openUntil
	ep.mu.Unlock()
	if probing || failures != 3 || !until.Equal(past) {
		t.Errorf("after an unsent probe: probing %v, failures %d, open until %v; want the probe released and nothing counted", probing, failures, until)
	}
	ok := pubsub.NewEvent(ctx, "ok", nil)
	if err := b.deliver(ctx, b.table.Load().byID["good"], ok, b.headersOf(ok), 0); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Hits()); n != 1 {
		t.Fatalf("%d requests, want the next delivery sent as the probe", n)
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if !ep.openUntil.IsZero() || ep.failures != 0 {
		t.Errorf("the probe succeeded but the circuit is open until %v with %d failures", ep.openUntil, ep.failures)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.kinds[KindUndeliverable] != 1 {
		t.Errorf("dead letters %v, want one undeliverable", rec.kinds)
	}
}

// A retry whose event cannot be sent (stored by a version that tried it)
// is dead-lettered at once with the attempts made so far, never sent.
func TestRetryOfAnUndeliverableEventIsNotSent(t *testing.T) {
	b, _, s, rec := undeliverableBridge(t)
	ctx := context.Background()
	for i, bad := range []pubsub.Event{
		{ID: "bad\nid", Name: "ok"},
		{ID: "long-name", Name: pubsub.Name(strings.Repeat("n", MaxNameLen+1))},
	} {
		rev, err := retry{SubscriptionID: "good", Attempts: 2, LastStatus: 503, Event: bad}.event()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Handle(ctx, rev); err != nil {
			t.Fatal(err)
		}
		dls, _, err := b.DeadLetters().List(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) != i+1 {
			t.Fatalf("%d dead letters, want %d", len(dls), i+1)
		}
		if dl := dls[i]; dl.Kind != KindUndeliverable || dl.Attempts != 2 || dl.SubscriptionID != "good" || dl.Event.ID != bad.ID {
			t.Errorf("dead letter %+v, want kind undeliverable for good after 2 attempts", dl)
		}
	}
	if n := len(s.Hits()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.kinds[KindUndeliverable] != 2 || rec.outcomes[Failed]+rec.outcomes[Deferred] != 0 {
		t.Errorf("dead letters %v, outcomes %v", rec.kinds, rec.outcomes)
	}
}
