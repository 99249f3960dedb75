package pubsubtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"go.opentelemetry.io/otel/trace"
)

func testRoundTrip(t *testing.T, f *fixture) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	created := time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.UTC)
	want := []pubsub.Event{
		{ID: "id-json", Name: "order.created", Payload: []byte(`{"id": 7, "total": "9.90"}`),
			Meta: pubsub.Meta{CreatedAtUTC: created, CorrelationID: "corr-1", Attempts: 2, IsDryRun: true}},
		{ID: "id-binary", Name: "blob", Payload: binary,
			Meta: pubsub.Meta{CreatedAtUTC: created.Add(time.Nanosecond)}},
		{ID: "id-empty", Name: "name with spaces/ünïcode:*", Payload: []byte{},
			Meta: pubsub.Meta{CreatedAtUTC: created, CorrelationID: "c ✓"}},
		pubsub.NewEvent(context.Background(), "made.by.NewEvent", []byte("x")),
	}
	rec := NewRecorder()
	f.consume(f.sub(SubscriberConfig{}), rec.Handle, nil)
	f.emit(want...)
	got := rec.WaitForN(t, len(want), f.timeout)

	byID := make(map[pubsub.ID]pubsub.Event)
	for _, ev := range got {
		byID[ev.ID] = ev
	}
	for _, w := range want {
		g, ok := byID[w.ID]
		if !ok {
			t.Errorf("event %s not delivered", w.ID)
			continue
		}
		if g.Name != w.Name {
			t.Errorf("%s: Name = %q, want %q", w.ID, g.Name, w.Name)
		}
		if !bytes.Equal(g.Payload, w.Payload) {
			t.Errorf("%s: Payload = %q, want %q", w.ID, g.Payload, w.Payload)
		}
		if !g.Meta.CreatedAtUTC.Equal(w.Meta.CreatedAtUTC) || g.Meta.CreatedAtUTC.Location() != time.UTC {
			t.Errorf("%s: CreatedAtUTC = %v, want %v in UTC", w.ID, g.Meta.CreatedAtUTC, w.Meta.CreatedAtUTC)
		}
		if g.Meta.CorrelationID != w.Meta.CorrelationID || g.Meta.Attempts != w.Meta.Attempts || g.Meta.IsDryRun != w.Meta.IsDryRun {
			t.Errorf("%s: Meta = %+v, want %+v", w.ID, g.Meta, w.Meta)
		}
	}
}

func testGroupSplits(t *testing.T, f *fixture) {
	want := events("split", 100)
	rec := NewRecorder()
	f.consume(f.sub(SubscriberConfig{Group: "shared"}), rec.Handle, nil)
	f.consume(f.sub(SubscriberConfig{Group: "shared"}), rec.Handle, nil)
	f.emit(want...)
	rec.WaitForN(t, len(want), f.timeout)

	// A marker through the same group, after everything else, shows that
	// no late duplicate is on its way from the other subscriber.
	marker := pubsub.NewEvent(context.Background(), "split", []byte("marker"))
	f.emit(marker)
	rec.WaitForEvent(t, func(ev pubsub.Event) bool { return ev.ID == marker.ID }, f.timeout)
	exactlyOnce(t, append(want, marker), rec.Events())
}

func testGroupsGetCopies(t *testing.T, f *fixture) {
	want := events("copy", 50)
	a, b := NewRecorder(), NewRecorder()
	f.consume(f.sub(SubscriberConfig{Group: "a"}), a.Handle, nil)
	f.consume(f.sub(SubscriberConfig{Group: "b"}), b.Handle, nil)
	f.emit(want...)
	exactlyOnce(t, want, a.WaitForN(t, len(want), f.timeout))
	exactlyOnce(t, want, b.WaitForN(t, len(want), f.timeout))
}

func testNameSubset(t *testing.T, f *fixture) {
	only, all := NewRecorder(), NewRecorder()
	f.consume(f.sub(SubscriberConfig{Group: "only", Names: []pubsub.Name{"wanted", "also.wanted"}}), only.Handle, nil)
	f.consume(f.sub(SubscriberConfig{Group: "all"}), all.Handle, nil)

	evs := []pubsub.Event{
		pubsub.NewEvent(context.Background(), "unwanted", nil),
		pubsub.NewEvent(context.Background(), "wanted", nil),
		pubsub.NewEvent(context.Background(), "wanted.not", nil),
		pubsub.NewEvent(context.Background(), "also.wanted", nil),
	}
	f.emit(evs...)
	all.WaitForN(t, len(evs), f.timeout)
	// The last event is wanted, so once it is in, everything the subset
	// subscriber was going to get from the batch is in too.
	only.WaitForEvent(t, func(ev pubsub.Event) bool { return ev.ID == evs[3].ID }, f.timeout)
	marker := pubsub.NewEvent(context.Background(), "wanted", []byte("marker"))
	f.emit(marker)
	only.WaitForEvent(t, func(ev pubsub.Event) bool { return ev.ID == marker.ID }, f.timeout)
	exactlyOnce(t, []pubsub.Event{evs[1], evs[3], marker}, only.Events())
}

func testRedelivery(t *testing.T, f *fixture) {
	rec := NewRecorder()
	var calls atomic.Int32
	h := rec.HandleWith(func(ctx context.Context, ev pubsub.Event) error {
		if calls.Add(1) == 1 {
			return errors.New("first delivery fails")
		}
		return nil
	})
	f.consume(f.sub(SubscriberConfig{}), h, nil)
	ev := pubsub.NewEvent(context.Background(), "retry.me", []byte(`{"n":1}`))
	ev.Meta.Attempts = 1 // a value set by the emitter carries on from there
	f.emit(ev)
	got := rec.WaitForN(t, 2, f.timeout)
	if got[0].ID != ev.ID || got[1].ID != ev.ID {
		t.Fatalf("deliveries are of %s and %s, want %s twice", got[0].ID, got[1].ID, ev.ID)
	}
	if got[0].Meta.Attempts != 1 || got[1].Meta.Attempts != 2 {
		t.Errorf("Attempts on the two deliveries = %d, %d, want 1, 2", got[0].Meta.Attempts, got[1].Meta.Attempts)
	}
	if !bytes.Equal(got[1].Payload, ev.Payload) || got[1].Name != ev.Name {
		t.Errorf("redelivered event = %s %q, want %s %q", got[1].Name, got[1].Payload, ev.Name, ev.Payload)
	}
}

// deadLetterRun emits one event to a subscriber configured by cfg (with
// a group of its own) whose handler always fails with fail, waits for it
// to be dead-lettered, and returns the deliveries and what the
// ErrorHandler got.
func deadLetterRun(t *testing.T, f *fixture, cfg SubscriberConfig, fail pubsub.Handler) (ev pubsub.Event, deliveries []pubsub.Event, reported []error) {
	t.Helper()
	rec := NewRecorder()
	var mu sync.Mutex
	dead := make(chan struct{})
	eh := func(_ context.Context, err error, e *pubsub.Event) {
		mu.Lock()
		defer mu.Unlock()
		if e == nil || e.ID != ev.ID {
			t.Errorf("ErrorHandler got event %v with %v, want event %s", e, err, ev.ID)
			return
		}
		reported = append(reported, err)
		if len(reported) == 1 {
			close(dead)
		}
	}
	ev = pubsub.NewEvent(context.Background(), "doomed", []byte("payload"))
	marker := pubsub.NewEvent(context.Background(), "doomed", []byte("marker"))
	h := rec.HandleWith(func(ctx context.Context, e pubsub.Event) error {
		if e.ID == marker.ID {
			return nil
		}
		return fail(ctx, e)
	})
	cfg.Group = "dead-letter-run"
	f.consume(f.sub(cfg), h, eh)
	f.emit(ev)
	f.wait(dead, "the ErrorHandler to report the dead letter")
	// A marker behind it, handled, shows that no further redelivery of
	// the dead event is queued before it.
	f.emit(marker)
	rec.WaitForEvent(t, func(e pubsub.Event) bool { return e.ID == marker.ID }, f.timeout)
	for _, d := range rec.Events() {
		if d.ID == ev.ID {
			deliveries = append(deliveries, d)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return ev, deliveries, append([]error(nil), reported...)
}

func checkDeadLettered(t *testing.T, f *fixture, ev pubsub.Event, reported []error, attempts int, cause error) {
	t.Helper()
	if len(reported) != 1 {
		t.Fatalf("ErrorHandler called %d times for the dead event, want once", len(reported))
	}
	var dle *pubsub.DeadLetterError
	if !errors.Is(reported[0], pubsub.ErrDeadLetter) || !errors.As(reported[0], &dle) {
		t.Fatalf("ErrorHandler got %v, want a *pubsub.DeadLetterError", reported[0])
	}
	if dle.Attempts != attempts {
		t.Errorf("DeadLetterError.Attempts = %d, want %d", dle.Attempts, attempts)
	}
	if cause != nil && !errors.Is(reported[0], cause) {
		t.Errorf("dead-letter error %v does not wrap the handler's error %v", reported[0], cause)
	}
	dls, err := f.b.DeadLetters()
	if err != nil {
		t.Fatalf("DeadLetters: %v", err)
	}
	found := 0
	for _, dl := range dls {
		if dl.Event.ID == ev.ID {
			found++
			if dl.Reason == "" {
				t.Errorf("dead letter of %s has no reason", ev.ID)
			}
			if !bytes.Equal(dl.Event.Payload, ev.Payload) || dl.Event.Name != ev.Name {
				t.Errorf("dead letter holds %s %q, want %s %q", dl.Event.Name, dl.Event.Payload, ev.Name, ev.Payload)
			}
		}
	}
	if found != 1 {
		t.Errorf("event %s is %d times in the dead letters, want once", ev.ID, found)
	}
}

var errAlways = errors.New("handler always fails")

func testDeadLetter(t *testing.T, f *fixture) {
	ev, deliveries, reported := deadLetterRun(t, f, SubscriberConfig{MaxAttempts: 3}, func(context.Context, pubsub.Event) error { return errAlways })
	if len(deliveries) != 3 {
		t.Fatalf("handler called %d times, want MaxAttempts = 3", len(deliveries))
	}
	for i, d := range deliveries {
		if d.Meta.Attempts != i {
			t.Errorf("delivery %d has Attempts %d, want %d", i+1, d.Meta.Attempts, i)
		}
	}
	checkDeadLettered(t, f, ev, reported, 3, errAlways)
}

func testPermanent(t *testing.T, f *fixture) {
	permanent := fmt.Errorf("payload can never be handled: %w", pubsub.ErrPermanent)
	ev, deliveries, reported := deadLetterRun(t, f, SubscriberConfig{MaxAttempts: 5}, func(context.Context, pubsub.Event) error { return permanent })
	if len(deliveries) != 1 {
		t.Fatalf("handler called %d times, want once: a permanent error is not retried", len(deliveries))
	}
	checkDeadLettered(t, f, ev, reported, 1, pubsub.ErrPermanent)
}

func testPanic(t *testing.T, f *fixture) {
	rec := NewRecorder()
	var calls atomic.Int32
	h := rec.HandleWith(func(ctx context.Context, ev pubsub.Event) error {
		if calls.Add(1) == 1 {
			panic("handler bug")
		}
		return nil
	})
	f.consume(f.sub(SubscriberConfig{}), h, nil)
	ev := pubsub.NewEvent(context.Background(), "panics", nil)
	f.emit(ev)
	got := rec.WaitForN(t, 2, f.timeout)
	if got[1].ID != ev.ID || got[1].Meta.Attempts != 1 {
		t.Errorf("after a panic, redelivery is %s with Attempts %d, want %s with 1", got[1].ID, got[1].Meta.Attempts, ev.ID)
	}

	// A handler that always panics ends in the dead letters with a
	// *PanicError as the reason.
	ev2, _, reported := deadLetterRun(t, f, SubscriberConfig{MaxAttempts: 2}, func(context.Context, pubsub.Event) error { panic(errAlways) })
	checkDeadLettered(t, f, ev2, reported, 2, errAlways)
	var pe *pubsub.PanicError
	if !errors.As(reported[0], &pe) {
		t.Errorf("dead-letter error %v does not hold a *pubsub.PanicError", reported[0])
	}
}

func testHandlerContext(t *testing.T, f *fixture) {
	got := make(chan context.Context, 1)
	f.consume(f.sub(SubscriberConfig{}), func(ctx context.Context, ev pubsub.Event) error {
		got <- ctx
		return nil
	}, nil)
	ctx := pubsub.WithDryRun(pubsub.WithCorrelationID(context.Background(), "flow-42"), true)
	f.emit(pubsub.NewEvent(ctx, "ctx", nil))
	var hctx context.Context
	select {
	case hctx = <-got:
	case <-time.After(f.timeout):
		t.Fatal("event not delivered")
	}
	next := pubsub.NewEvent(hctx, "follow.up", nil)
	if next.Meta.CorrelationID != "flow-42" || !next.Meta.IsDryRun {
		t.Errorf("event made in the handler has correlation %q, dry run %v; want flow-42, true", next.Meta.CorrelationID, next.Meta.IsDryRun)
	}
}

// testHandlerTrace: no TracerProvider is set (the suite sets none), and
// the trace context of the emitting context still reaches the handler, as
// the remote parent of whatever it does.
func testHandlerTrace(t *testing.T, f *fixture) {
	f.need(TraceContext)
	got := make(chan trace.SpanContext, 1)
	f.consume(f.sub(SubscriberConfig{}), func(ctx context.Context, ev pubsub.Event) error {
		got <- trace.SpanContextFromContext(ctx)
		return nil
	}, nil)
	ts, err := trace.ParseTraceState("vendor=a1")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
		TraceState: ts,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	if err := f.b.Publisher.Emit(ctx, pubsub.NewEvent(ctx, "traced", nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if h.TraceID() != sc.TraceID() || h.SpanID() != sc.SpanID() || !h.IsSampled() || h.TraceState().Get("vendor") != "a1" {
			t.Errorf("handler context holds trace %s span %s sampled %v state %q; want %s %s true \"vendor=a1\"",
				h.TraceID(), h.SpanID(), h.IsSampled(), h.TraceState(), sc.TraceID(), sc.SpanID())
		}
	case <-time.After(f.timeout):
		t.Fatal("event not delivered")
	}
}

func testConcurrentEmitters(t *testing.T, f *fixture) {
	const emitters, each = 8, 100
	rec := NewRecorder()
	f.consume(f.sub(SubscriberConfig{Concurrency: 4}), rec.Handle, nil)
	var want []pubsub.Event
	batches := make([][]pubsub.Event, emitters)
	for i := range batches {
		batches[i] = events(pubsub.Name(fmt.Sprintf("emitter.%d", i)), each)
		want = append(want, batches[i]...)
	}
	var wg sync.WaitGroup
	for i := range batches {
		wg.Go(func() {
			for j, ev := range batches[i] {
				var err error
				if j%2 == 0 {
					err = f.b.Publisher.Emit(context.Background(), ev)
				} else {
					err = f.b.Publisher.Emit(context.Background(), ev, pubsub.Event{}) // refused whole
					if errors.Is(err, pubsub.ErrInvalidEvent) {
						err = f.b.Publisher.Emit(context.Background(), ev)
					}
				}
				if err != nil {
					t.Errorf("Emit: %v", err)
				}
			}
		})
	}
	wg.Wait()
	rec.WaitForN(t, len(want), f.timeout)
	marker := pubsub.NewEvent(context.Background(), "marker", nil)
	f.emit(marker)
	rec.WaitForEvent(t, func(ev pubsub.Event) bool { return ev.ID == marker.ID }, f.timeout)
	exactlyOnce(t, append(want, marker), rec.Events())
}

func testOrder(t *testing.T, f *fixture) {
	rec := NewRecorder()
	f.consume(f.sub(SubscriberConfig{Concurrency: 1}), rec.Handle, nil)
	batch := events("ordered", 100)
	singles := events("ordered", 100)
	f.emit(batch...)
	for _, ev := range singles {
		f.emit(ev)
	}
	want := append(batch, singles...)
	got := rec.WaitForN(t, len(want), f.timeout)
	for i := range want {
		if got[i].ID != want[i].ID {
			t.Fatalf("delivery %d is %s (payload %s), want %s (payload %s): order not kept", i, got[i].ID, got[i].Payload, want[i].ID, want[i].Payload)
		}
	}
}

func testGroupKeepsEvents(t *testing.T, f *fixture) {
	// The group exists once its first subscriber does; events emitted
	// while no one consumes wait for the next subscriber of the group.
	first := f.sub(SubscriberConfig{Group: "durable"})
	want := events("kept", 20)
	f.emit(want...)
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	rec := NewRecorder()
	f.consume(f.sub(SubscriberConfig{Group: "durable"}), rec.Handle, nil)
	exactlyOnce(t, want, rec.WaitForN(t, len(want), f.timeout))
}

func testDelayedEmit(t *testing.T, f *fixture) {
	f.need(DelayedEmit)
	dp, ok := f.b.Publisher.(pubsub.DelayedPublisher)
	if !ok {
		t.Fatalf("publisher %T is not a pubsub.DelayedPublisher; declare Lacks[DelayedEmit] if the backend has no delayed emit", f.b.Publisher)
	}
	type receipt struct {
		ev pubsub.Event
		at time.Time
	}
	got := make(chan receipt, 4)
	f.consume(f.sub(SubscriberConfig{}), func(ctx context.Context, ev pubsub.Event) error {
		got <- receipt{ev, time.Now()}
		return nil
	}, nil)

	const delay = 300 * time.Millisecond
	delayed := pubsub.NewEvent(context.Background(), "later", []byte("delayed"))
	now := pubsub.NewEvent(context.Background(), "now", []byte("now"))
	due := time.Now().Add(delay)
	if err := dp.EmitAt(context.Background(), due, delayed); err != nil {
		t.Fatalf("EmitAt: %v", err)
	}
	past := pubsub.NewEvent(context.Background(), "past", []byte("past"))
	if err := dp.EmitAt(context.Background(), time.Now().Add(-time.Hour), past); err != nil {
		t.Fatalf("EmitAt in the past: %v", err)
	}
	f.emit(now)

	var order []pubsub.ID
	for len(order) < 3 {
		select {
		case r := <-got:
			order = append(order, r.ev.ID)
			if r.ev.ID == delayed.ID {
				if r.at.Before(due) {
					t.Errorf("delayed event delivered %s before its time", due.Sub(r.at))
				}
				if !bytes.Equal(r.ev.Payload, delayed.Payload) || r.ev.Name != delayed.Name {
					t.Errorf("delayed event arrived as %s %q", r.ev.Name, r.ev.Payload)
				}
			}
		case <-time.After(f.timeout):
			t.Fatalf("got %d of 3 events within %s", len(order), f.timeout)
		}
	}
	if order[2] != delayed.ID {
		t.Errorf("delivery order %v: the delayed event %s should come last", order, delayed.ID)
	}
	if err := dp.EmitAt(context.Background(), due, pubsub.Event{ID: "x"}); !errors.Is(err, pubsub.ErrInvalidEvent) {
		t.Errorf("EmitAt of an event without a name = %v, want ErrInvalidEvent", err)
	}
}
