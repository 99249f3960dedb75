package pubsub

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Sentinel errors. Check them with [errors.Is]; backends wrap them with
// detail.
var (
	// ErrClosed is returned by Emit after Close, and reported by Consume on
	// a closed subscriber.
	ErrClosed = errors.New("pubsub: closed")
	// ErrInvalidEvent is wrapped by errors for events that cannot be
	// emitted, such as one without a name.
	ErrInvalidEvent = errors.New("pubsub: invalid event")
	// ErrPermanent, wrapped by a handler's error, tells the backend not to
	// retry: the event is dead-lettered at once.
	ErrPermanent = errors.New("pubsub: permanent failure")
	// ErrDeadLetter is wrapped by the error passed to the [ErrorHandler]
	// when an event is given up on; see [DeadLetterError].
	ErrDeadLetter = errors.New("pubsub: dead-lettered")
	// ErrMalformed is wrapped by errors about stored entries that cannot be
	// decoded into an event; such entries are dead-lettered.
	ErrMalformed = errors.New("pubsub: malformed entry")
	// ErrNotSupported is returned when a publisher lacks an optional
	// capability, such as [DelayedPublisher].
	ErrNotSupported = errors.New("pubsub: not supported")
)

// DeadLetterError is what the [ErrorHandler] receives when an event is given
// up on: it matches [ErrDeadLetter] and the last handler error with
// [errors.Is] and [errors.As].
type DeadLetterError struct {
	// Attempts is how many times the event was handed to a handler.
	Attempts int
	// Err is the last handler error, or the reason the event could not be
	// handled at all.
	Err error
}

// Error describes the dead letter and its reason.
func (e *DeadLetterError) Error() string {
	return fmt.Sprintf("pubsub: dead-lettered after %d attempt(s): %v", e.Attempts, e.Err)
}

// Unwrap returns [ErrDeadLetter] and the reason.
func (e *DeadLetterError) Unwrap() []error { return []error{ErrDeadLetter, e.Err} }

// PanicError is the error a handler's panic is turned into.
type PanicError struct {
	// Value is what the handler panicked with.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

// Error reports the panic value, without the stack.
func (e *PanicError) Error() string { return fmt.Sprintf("pubsub: handler panicked: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so that a panic with
// a sentinel still matches it.
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}

func newPanicError(v any) *PanicError { return &PanicError{Value: v, Stack: debug.Stack()} }
