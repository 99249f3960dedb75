package pubsubtest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// Recorder records events, for tests. It is a [pubsub.DelayedPublisher]
// that keeps what code under test emits instead of sending it anywhere,
// and it makes handlers ([Recorder.Handle], [Recorder.HandleWith]) that
// record what a subscriber delivers. Its methods are safe for concurrent
// use. The zero value is ready to use.
type Recorder struct {
	mu        sync.Mutex
	events    []pubsub.Event
	scheduled []Scheduled
	changed   chan struct{} // closed and replaced whenever events change
	failWith  error
	closed    bool
}

// Scheduled is an event given to [Recorder.EmitAt], with its time.
type Scheduled struct {
	At    time.Time
	Event pubsub.Event
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder { return &Recorder{} }

// Emit records the events, after validating them as a backend would. It
// returns the error set with [Recorder.FailWith], if any, without
// recording, and [pubsub.ErrClosed] after Close.
func (r *Recorder) Emit(ctx context.Context, events ...pubsub.Event) error {
	return r.emit(ctx, time.Time{}, events)
}

// EmitAt records the events as scheduled for at; they also appear in
// [Recorder.Events] at once, so tests need not wait for the time.
func (r *Recorder) EmitAt(ctx context.Context, at time.Time, events ...pubsub.Event) error {
	return r.emit(ctx, at, events)
}

func (r *Recorder) emit(ctx context.Context, at time.Time, events []pubsub.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := pubsub.ValidateAll(events); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return pubsub.ErrClosed
	case r.failWith != nil:
		return r.failWith
	}
	if !at.IsZero() {
		for _, ev := range events {
			r.scheduled = append(r.scheduled, Scheduled{At: at, Event: ev})
		}
	}
	r.appendLocked(events...)
	return nil
}

// FailWith makes every later Emit return err (nil to succeed again), to
// test how code copes with a publisher that fails.
func (r *Recorder) FailWith(err error) {
	r.mu.Lock()
	r.failWith = err
	r.mu.Unlock()
}

// Close makes later Emits return [pubsub.ErrClosed]. Recorded events stay
// readable.
func (r *Recorder) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return nil
}

// Handle is a [pubsub.Handler] that records each event it is given and
// returns nil.
func (r *Recorder) Handle(_ context.Context, ev pubsub.Event) error {
	r.mu.Lock()
	r.appendLocked(ev)
	r.mu.Unlock()
	return nil
}

// HandleWith returns a [pubsub.Handler] that records each delivery, failed
// ones included, and then returns what h returns.
func (r *Recorder) HandleWith(h pubsub.Handler) pubsub.Handler {
	return func(ctx context.Context, ev pubsub.Event) error {
		_ = r.Handle(ctx, ev)
		return h(ctx, ev)
	}
}

func (r *Recorder) appendLocked(events ...pubsub.Event) {
	r.events = append(r.events, events...)
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// Events returns a copy of the events recorded so far, in order.
func (r *Recorder) Events() []pubsub.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Scheduled returns a copy of the events given to EmitAt, in order.
func (r *Recorder) Scheduled() []Scheduled {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.scheduled)
}

// Reset forgets every recorded event.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.events, r.scheduled = nil, nil
	r.mu.Unlock()
}

// WaitUntil blocks until cond holds for the recorded events and returns
// them. After timeout it fails t, showing what was recorded.
func (r *Recorder) WaitUntil(t testing.TB, timeout time.Duration, cond func([]pubsub.Event) bool) []pubsub.Event {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		if cond(r.events) {
			got := slices.Clone(r.events)
			r.mu.Unlock()
			return got
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		changed := r.changed
		r.mu.Unlock()

		select {
		case <-changed:
		case <-deadline.C:
			got := r.Events()
			t.Fatalf("pubsubtest: condition not met within %s; %d event(s) recorded: %s", timeout, len(got), describe(got))
			return got
		}
	}
}

// WaitForN blocks until at least n events are recorded and returns them
// all. After timeout it fails t.
func (r *Recorder) WaitForN(t testing.TB, n int, timeout time.Duration) []pubsub.Event {
	t.Helper()
	return r.WaitUntil(t, timeout, func(evs []pubsub.Event) bool { return len(evs) >= n })
}

// WaitForEvent blocks until an event for which match returns true is
// recorded, and returns the first such event. After timeout it fails t.
// [Matches] makes a match function for a name and a JSON payload.
func (r *Recorder) WaitForEvent(t testing.TB, match func(pubsub.Event) bool, timeout time.Duration) pubsub.Event {
	t.Helper()
	var found pubsub.Event
	r.WaitUntil(t, timeout, func(evs []pubsub.Event) bool {
		for _, ev := range evs {
			if match(ev) {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}
