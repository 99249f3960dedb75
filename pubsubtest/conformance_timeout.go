package pubsubtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// hungTimeout is the HandlerTimeout of the tests with handlers that
// ignore their context: short, so they run fast.
const hungTimeout = 200 * time.Millisecond

// closeBound is how long Close, or Consume after its context is
// cancelled, may take while a handler with HandlerTimeout d ignores its
// context: d and the grace period after it, with ample room to spare.
func closeBound(d time.Duration) time.Duration { return 10*d + 5*time.Second }

// hang makes handlers that block, ignoring their context, until the
// test's cleanup releases them; the cleanup also waits for them to
// return, so that no test leaves a goroutine blocked behind.
type hang struct {
	release chan struct{}
	started chan struct{} // closed when the first blocked run begins
	mu      sync.Mutex
	runs    []chan struct{} // each closed when a blocked run returns
}

// newHang returns a hang whose release is registered with t.Cleanup now,
// before the test makes its subscribers: cleanups run last registered
// first, so the handlers are released after every subscriber is closed.
func newHang(t *testing.T, f *fixture) *hang {
	t.Helper()
	hg := &hang{release: make(chan struct{}), started: make(chan struct{})}
	t.Cleanup(func() {
		close(hg.release)
		hg.mu.Lock()
		runs := hg.runs
		hg.mu.Unlock()
		timeout := time.After(f.timeout)
		for _, returned := range runs {
			select {
			case <-returned:
			case <-timeout:
				t.Errorf("handlers blocked by the test did not return within %s of their release", f.timeout)
				return
			}
		}
	})
	return hg
}

// block blocks until the test's cleanup, whatever the context says.
func (hg *hang) block() {
	returned := make(chan struct{})
	defer close(returned)
	hg.mu.Lock()
	if len(hg.runs) == 0 {
		close(hg.started)
	}
	hg.runs = append(hg.runs, returned)
	hg.mu.Unlock()
	<-hg.release
}

func testHandlerDeadline(t *testing.T, f *fixture) {
	const timeout = 5 * time.Second
	type run struct {
		start, deadline time.Time
		ok              bool
		err             error
	}
	got := make(chan run, 1)
	f.consume(f.sub(SubscriberConfig{HandlerTimeout: timeout}), func(ctx context.Context, ev pubsub.Event) error {
		r := run{start: time.Now(), err: ctx.Err()}
		r.deadline, r.ok = ctx.Deadline()
		select {
		case got <- r:
		default:
		}
		return nil
	}, nil)
	f.emit(pubsub.NewEvent(context.Background(), "deadline", nil))
	var r run
	select {
	case r = <-got:
	case <-time.After(f.timeout):
		t.Fatal("event not delivered")
	}
	switch {
	case !r.ok:
		t.Fatal("the handler's context has no deadline")
	case r.err != nil:
		t.Errorf("the handler's context is already done (%v) as the handler starts", r.err)
	case r.deadline.After(r.start.Add(timeout)):
		t.Errorf("the handler's deadline is %s after it started, want at most HandlerTimeout = %s", r.deadline.Sub(r.start), timeout)
	case r.deadline.Before(r.start.Add(timeout / 2)):
		t.Errorf("the handler's deadline is %s after it started, want about HandlerTimeout = %s", r.deadline.Sub(r.start), timeout)
	}
}

func testDeadlineRetried(t *testing.T, f *fixture) {
	cfg := SubscriberConfig{MaxAttempts: 2, HandlerTimeout: 100 * time.Millisecond}
	ev, deliveries, reported := deadLetterRun(t, f, cfg, func(ctx context.Context, _ pubsub.Event) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if len(deliveries) != 2 {
		t.Fatalf("handler called %d times, want MaxAttempts = 2 (reported %v)", len(deliveries), reported)
	}
	for i, d := range deliveries {
		if d.Meta.Attempts != i {
			t.Errorf("delivery %d has Attempts %d, want %d", i+1, d.Meta.Attempts, i)
		}
	}
	checkDeadLettered(t, f, ev, reported, 2, context.DeadlineExceeded)
}

// testHungPoison: a handler that never returns on one event, ignoring its
// context, stalls nothing; the event is dead-lettered after MaxAttempts
// runs, and Close does not wait for the handler still blocked.
func testHungPoison(t *testing.T, f *fixture) {
	hg := newHang(t, f)
	good := events("good", 20)
	poison := pubsub.NewEvent(context.Background(), "poison", []byte("hangs"))
	marker := pubsub.NewEvent(context.Background(), "good", []byte("marker"))

	dead := make(chan struct{})
	var deadOnce sync.Once
	var mu sync.Mutex
	var reported error
	eh := func(_ context.Context, err error, ev *pubsub.Event) {
		if ev == nil || ev.ID != poison.ID || !errors.Is(err, pubsub.ErrDeadLetter) {
			return // errors about nothing in particular are the backend's business
		}
		deadOnce.Do(func() {
			mu.Lock()
			reported = err
			mu.Unlock()
			close(dead)
		})
	}
	rec := NewRecorder()
	h := rec.HandleWith(func(ctx context.Context, ev pubsub.Event) error {
		if ev.ID == poison.ID {
			hg.block()
			return ctx.Err()
		}
		return nil
	})
	const maxAttempts = 2
	s := f.sub(SubscriberConfig{Group: "hung", Concurrency: 1, MaxAttempts: maxAttempts, HandlerTimeout: hungTimeout})
	f.consume(s, h, eh)
	batch := append(append(append([]pubsub.Event{}, good[:10]...), poison), good[10:]...)
	f.emit(batch...)

	rec.WaitUntil(t, f.timeout, func(evs []pubsub.Event) bool {
		seen := countIDs(evs)
		for _, ev := range good {
			if seen[ev.ID] == 0 {
				return false
			}
		}
		return true
	})
	f.wait(dead, "the hung event to be dead-lettered")
	// A marker handled after the dead letter shows the consumer still
	// going, and no further run of the poison queued before it.
	f.emit(marker)
	rec.WaitForEvent(t, func(ev pubsub.Event) bool { return ev.ID == marker.ID }, f.timeout)

	if runs := countIDs(rec.Events())[poison.ID]; runs < 1 || runs > maxAttempts {
		t.Errorf("the hung event was handed to a handler %d times, want 1 to MaxAttempts = %d", runs, maxAttempts)
	}
	mu.Lock()
	t.Logf("dead letter reported: %v", reported)
	mu.Unlock()
	dls, err := f.b.DeadLetters()
	if err != nil {
		t.Fatalf("DeadLetters: %v", err)
	}
	found := 0
	for _, dl := range dls {
		if dl.Event.ID == poison.ID {
			found++
			if dl.Reason == "" {
				t.Errorf("dead letter of the hung event has no reason")
			}
		}
	}
	if found != 1 {
		t.Errorf("the hung event is %d times in the dead letters, want once", found)
	}
	for _, dl := range dls {
		if dl.Event.ID != poison.ID {
			t.Errorf("event %s (%s) was dead-lettered too: %s", dl.Event.ID, dl.Event.Payload, dl.Reason)
		}
	}

	closeWithin(t, s.Close, closeBound(hungTimeout), "Close, with an abandoned handler still blocked,")
}

// closeWithin runs stop and fails t unless it returns within bound.
func closeWithin(t *testing.T, stop func() error, bound time.Duration, what string) {
	t.Helper()
	returned := make(chan error, 1)
	start := time.Now()
	go func() { returned <- stop() }()
	select {
	case err := <-returned:
		if err != nil {
			t.Errorf("%s returned %v", what, err)
		}
		t.Logf("%s returned after %s", what, time.Since(start).Round(time.Millisecond))
	case <-time.After(bound):
		t.Fatalf("%s did not return within %s", what, bound)
	}
}

func testCloseHung(t *testing.T, f *fixture) {
	hungStop(t, f, func(s pubsub.Subscriber, _ func()) error { return s.Close() }, "Close")
}

func testCancelHung(t *testing.T, f *fixture) {
	hungStop(t, f, func(_ pubsub.Subscriber, cancel func()) error { cancel(); return nil },
		"Consume, its context cancelled,")
}

// hungStop stops a subscriber whose handler ignores its context, checks
// that stopping returns within the bound, and that the event is not lost:
// a later subscriber of the group gets it, the abandoned run counted as
// an attempt.
func hungStop(t *testing.T, f *fixture, stop func(s pubsub.Subscriber, cancel func()) error, what string) {
	hg := newHang(t, f)
	cfg := SubscriberConfig{Group: "hung-stop", HandlerTimeout: hungTimeout}
	s := f.sub(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		s.Consume(ctx, func(context.Context, pubsub.Event) error {
			hg.block()
			return nil
		}, nil)
	}()
	t.Cleanup(func() {
		cancel()
		<-returned // bounded: checked below
	})
	ev := pubsub.NewEvent(context.Background(), "hangs", []byte("hangs"))
	f.emit(ev)
	f.wait(hg.started, "the handler to start")

	closeWithin(t, func() error {
		err := stop(s, cancel)
		<-returned
		return err
	}, closeBound(hungTimeout), what)

	rec := NewRecorder()
	f.consume(f.sub(cfg), rec.Handle, nil)
	got := rec.WaitForEvent(t, func(e pubsub.Event) bool { return e.ID == ev.ID }, f.timeout)
	if got.Meta.Attempts < 1 {
		t.Errorf("after an abandoned run the event came back with Attempts %d, want at least 1: the run counts as an attempt", got.Meta.Attempts)
	}
}
