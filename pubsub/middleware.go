package pubsub

import (
	"context"
	"fmt"
	"time"
)

// Middleware wraps a [Handler] with behaviour of its own.
type Middleware func(Handler) Handler

// Chain wraps h with the middlewares, the first one outermost:
// Chain(h, a, b) runs a, then b, then h.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Recover turns a panic in the handler into a returned [*PanicError], so
// the event is retried like any other failure. Every backend applies it
// already; it is exported for handlers called some other way.
func Recover(next Handler) Handler {
	return func(ctx context.Context, ev Event) (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = newPanicError(v)
			}
		}()
		return next(ctx, ev)
	}
}

// Timeout gives each handler call at most d; the handler must honour its
// context for this to take effect. The deadline's error is wrapped with the
// event's ID.
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, ev Event) error {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			err := next(ctx, ev)
			if err != nil && ctx.Err() != nil {
				return fmt.Errorf("pubsub: handler for %q took longer than %s: %w", ev.ID, d, err)
			}
			return err
		}
	}
}
