package lifecycle

import (
	"context"
	"fmt"
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
