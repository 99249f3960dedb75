// Package lifecycle holds what the backends' subscribers share about
// starting, stopping and reporting.
package lifecycle

import (
	"context"
	"log/slog"
	"sync"

	"github.com/switchyard-go/switchyard/pubsub"
)

// Gate tracks the Consume calls of one subscriber, so that Close can stop
// them and wait for them. The zero value is not usable; see [NewGate].
type Gate struct {
	mu      sync.Mutex
	closed  bool
	done    chan struct{}
	running sync.WaitGroup
}

// NewGate returns an open gate.
func NewGate() *Gate { return &Gate{done: make(chan struct{})} }

// Enter registers a Consume call; it reports false once the gate is
// closed. Every true must be matched by a [Gate.Leave].
func (g *Gate) Enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.running.Add(1)
	return true
}

// Leave ends what Enter registered.
func (g *Gate) Leave() { g.running.Done() }

// Done is closed when the gate closes.
func (g *Gate) Done() <-chan struct{} { return g.done }

// Close closes the gate and waits for every registered call to leave. It
// reports whether this call closed it; later calls return false at once.
func (g *Gate) Close() bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.closed = true
	close(g.done)
	g.mu.Unlock()
	g.running.Wait()
	return true
}

// LogErrors returns an ErrorHandler that logs to logger, for Consume calls
// given none; attrs describe the subscriber.
func LogErrors(logger *slog.Logger, msg string, attrs ...any) pubsub.ErrorHandler {
	return func(ctx context.Context, err error, ev *pubsub.Event) {
		all := append(append(make([]any, 0, len(attrs)+6), attrs...), "err", err)
		if ev != nil {
			all = append(all, "event_id", ev.ID, "event_name", ev.Name)
		}
		logger.ErrorContext(ctx, msg, all...)
	}
}
