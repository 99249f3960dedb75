package lifecycle

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// maxGrace caps [HandlerGrace].
const maxGrace = 5 * time.Second

// HandlerGrace is how long after its deadline a handler run that has not
// returned is abandoned: a quarter of the handler timeout, at most 5s.
// Every backend uses this one rule.
func HandlerGrace(timeout time.Duration) time.Duration {
	return min(timeout/4, maxGrace)
}

// HungError is the error of a handler run abandoned for not returning
// within its deadline plus [HandlerGrace]; backend names the backend
// ("memory", "redis"). It wraps [context.DeadlineExceeded].
func HungError(backend string, timeout time.Duration) error {
	return fmt.Errorf("%s: handler did not return within its deadline (%s) plus grace (%s), abandoned: %w",
		backend, timeout, HandlerGrace(timeout), context.DeadlineExceeded)
}

// RunContext is the handler context one worker hands to its runs. Making
// a context with a deadline costs a timer, and so does reading the clock:
// runs that start within [ShareWindow] of each other share one, their
// deadline coming that much early at most. The zero value is ready; a
// RunContext is used by one goroutine.
type RunContext struct {
	ctx      context.Context
	cancel   context.CancelFunc
	deadline int64       // of ctx, in nanoseconds since the base given to Get
	stale    atomic.Bool // set ShareWindow after ctx was made
	timer    *time.Timer // sets stale
}

// ShareWindow is how long a worker hands one handler context to new runs:
// a thousandth of the handler timeout, at most 10ms.
func ShareWindow(timeout time.Duration) time.Duration {
	return min(timeout/1000, 10*time.Millisecond)
}

// Get returns the context for a run starting now, a child of parent with
// a deadline timeout from now (or up to ShareWindow earlier), and that
// deadline in nanoseconds since base (monotonic).
func (rc *RunContext) Get(parent context.Context, base time.Time, timeout time.Duration) (context.Context, int64) {
	if rc.ctx == nil || rc.stale.Load() {
		rc.Release()
		rc.deadline = int64(time.Since(base) + timeout)
		rc.ctx, rc.cancel = context.WithDeadline(parent, base.Add(time.Duration(rc.deadline)))
		rc.stale.Store(false)
		rc.timer = time.AfterFunc(ShareWindow(timeout), func() { rc.stale.Store(true) })
	}
	return rc.ctx, rc.deadline
}

// Release cancels the context and stops its timer.
func (rc *RunContext) Release() {
	if rc.cancel != nil {
		rc.cancel()
		rc.timer.Stop()
	}
}
