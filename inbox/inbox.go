package inbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// ErrInProgress is returned for a delivery whose event another handler
// of the same key is handling right now; the backend redelivers it later,
// when it is recorded as handled and skipped.
var ErrInProgress = errors.New("inbox: event is being handled elsewhere")

// State is what a claim found.
type State int

const (
	// Claimed: nobody handled the event; this caller now holds it.
	Claimed State = iota + 1
	// AlreadyDone: the event was handled before; skip it.
	AlreadyDone
	// Busy: another caller holds the event now.
	Busy
)

// Store remembers which events each handler key has handled.
type Store interface {
	// Claim takes (key, id) for handling until lease ends, unless it is
	// handled already or held by another whose lease has not ended.
	Claim(ctx context.Context, key string, id pubsub.ID, lease time.Duration) (State, error)
	// Done records (key, id) as handled, remembered for keep.
	Done(ctx context.Context, key string, id pubsub.ID, keep time.Duration) error
	// Release gives up a claim whose handling failed, so that a
	// redelivery handles the event again.
	Release(ctx context.Context, key string, id pubsub.ID) error
}

// Options configure [Middleware] and [Registry]. The zero value is the
// default.
type Options struct {
	// Lease is how long a claim holds an event while its handler runs; a
	// process that dies holding it gives it up when the lease ends. It
	// must exceed the longest handler run.
	// default: 1m
	Lease time.Duration
	// Keep is how long a handled event is remembered; redeliveries later
	// than that are handled again.
	// default: 168h (7 days)
	Keep time.Duration
	// Timeout bounds each handler call (the handler must honour its
	// context); 0 means no bound.
	// default: 0
	Timeout time.Duration
}

func (o *Options) setDefaults() {
	if o.Lease == 0 {
		o.Lease = time.Minute
	}
	if o.Keep == 0 {
		o.Keep = 7 * 24 * time.Hour
	}
}

// Middleware makes a handler idempotent under key: an event it has
// handled is skipped, an event another instance is handling is deferred
// (ErrInProgress), and an event is recorded as handled only after the
// handler returned nil. Events are told apart by ID.
func Middleware(store Store, key string, opts Options) pubsub.Middleware {
	opts.setDefaults()
	return func(next pubsub.Handler) pubsub.Handler {
		next = pubsub.Recover(next)
		if opts.Timeout > 0 {
			next = pubsub.Timeout(opts.Timeout)(next)
		}
		return func(ctx context.Context, ev pubsub.Event) error {
			st, err := store.Claim(ctx, key, ev.ID, opts.Lease)
			if err != nil {
				return fmt.Errorf("inbox: claiming %s for %q: %w", ev.ID, key, err)
			}
			switch st {
			case AlreadyDone:
				return nil
			case Busy:
				return fmt.Errorf("inbox: %s for %q: %w", ev.ID, key, ErrInProgress)
			}
			if err := next(ctx, ev); err != nil {
				if rerr := store.Release(context.WithoutCancel(ctx), key, ev.ID); rerr != nil {
					// The claim then lapses with its lease.
					return errors.Join(err, fmt.Errorf("inbox: releasing %s for %q: %w", ev.ID, key, rerr))
				}
				return err
			}
			if err := store.Done(context.WithoutCancel(ctx), key, ev.ID, opts.Keep); err != nil {
				return fmt.Errorf("inbox: %s was handled for %q but not recorded (it may be handled again): %w", ev.ID, key, err)
			}
			return nil
		}
	}
}
