package pubsub

import (
	"context"
	"time"
)

// Handler handles one event. Returning nil acknowledges it; an error (or a
// panic) asks for a redelivery after a backoff. A handler may be called
// concurrently, and more than once for the same event, so it should be
// idempotent.
type Handler func(context.Context, Event) error

// ErrorHandler is told about errors that a [Subscriber] handled on its own:
// an event given up on (a [*DeadLetterError], with the event), or a
// failure that concerns no single event (a lost connection, an entry that
// cannot be decoded), with a nil event or the partly decoded one. It must
// not block for long: consuming waits for it.
type ErrorHandler func(context.Context, error, *Event)

// Publisher emits events.
type Publisher interface {
	// Emit writes the events, in order, and returns nil only when every
	// one of them was written. A batch with an invalid event (see
	// [Event.Validate]) is refused whole with an error wrapping
	// [ErrInvalidEvent]. A done ctx is returned as ctx.Err(); events may
	// then have been written in part, so callers retry the batch (consumers
	// are idempotent). Emit is safe for concurrent use. After Close it
	// returns [ErrClosed].
	Emit(ctx context.Context, events ...Event) error
	// Close flushes and releases what the publisher holds, waiting for
	// Emit calls in flight. It is safe to call more than once; later calls
	// return nil.
	Close() error
}

// Subscriber hands events to a handler.
type Subscriber interface {
	// Consume calls h for each event of the subscriber's group, and
	// blocks until ctx is done or the subscriber is closed; it then returns
	// after the handlers it started have returned, waiting for each at
	// most until its deadline plus a grace period (handlers run under a
	// deadline; one that ignores it is abandoned, and its run counts as a
	// failed attempt). Errors it handled itself
	// go to eh; a nil eh leaves them to the backend's logger. A nil h is a
	// programming error and panics. Consume on a closed subscriber reports
	// [ErrClosed] to eh and returns at once. Handlers see a context derived
	// from ctx (see [HandlerContext]).
	Consume(ctx context.Context, h Handler, eh ErrorHandler)
	// Close stops consuming and waits for handlers in flight, each at most
	// until its deadline plus a grace period, so it returns within a bound
	// even when a handler ignores its context. Events not yet acknowledged
	// stay with the group for a later consumer. It is safe
	// to call more than once; later calls return nil. A handler must not
	// call it: Close would wait for that handler.
	Close() error
}

// DelayedPublisher is a [Publisher] that can also schedule events: each
// becomes visible to consumers no earlier than at. Durable backends keep
// scheduled events across a restart. A time in the past emits at once.
type DelayedPublisher interface {
	Publisher
	EmitAt(ctx context.Context, at time.Time, events ...Event) error
}

// EmitAfter emits events through p so that they are visible no earlier than
// d from now. It returns an error wrapping [ErrNotSupported] when p is not a
// [DelayedPublisher] and d is positive.
func EmitAfter(ctx context.Context, p Publisher, d time.Duration, events ...Event) error {
	if d <= 0 {
		return p.Emit(ctx, events...)
	}
	dp, ok := p.(DelayedPublisher)
	if !ok {
		return ErrNotSupported
	}
	return dp.EmitAt(ctx, time.Now().Add(d), events...)
}
