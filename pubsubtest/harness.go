package pubsubtest

import (
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// Harness connects the conformance suite to a backend.
type Harness struct {
	// Setup returns a fresh backend for one test. Backends made by
	// separate calls must not see each other's events (a new broker, or
	// new stream names). Setup registers its own cleanup with t.Cleanup.
	Setup func(t *testing.T) Backend
	// Lacks names the capabilities the backend does not have, each with
	// the reason; the tests that need them are skipped with that reason.
	Lacks map[Capability]string
	// Timeout bounds every wait for an event in the suite. A backend that
	// redelivers an abandoned handler's event only after a claim timeout
	// needs it long enough for two such timeouts and more.
	// default: 10s
	Timeout time.Duration
}

// Backend is one isolated instance of a backend under test.
type Backend struct {
	// Publisher emits to this instance. The suite closes it in the tests
	// about closing; Setup's cleanup may close it again.
	Publisher pubsub.Publisher
	// NewSubscriber returns a subscriber configured by cfg. The suite
	// closes each one it makes.
	NewSubscriber func(cfg SubscriberConfig) (pubsub.Subscriber, error)
	// DeadLetters returns what this instance has dead-lettered so far.
	DeadLetters func() ([]DeadLetter, error)
}

// SubscriberConfig is what the suite asks of a subscriber; the harness
// maps it onto the backend's own configuration.
type SubscriberConfig struct {
	// Group is the consumer group; never empty.
	Group string
	// Names limits the subscriber to these event names; nil means all.
	Names []pubsub.Name
	// Concurrency is how many handlers may run at once; at least 1.
	Concurrency int
	// MaxAttempts is the number of deliveries before an event is
	// dead-lettered, the first included; at least 1.
	MaxAttempts int
	// Backoff is the wait before each redelivery; short, so the suite
	// runs fast.
	Backoff time.Duration
	// HandlerTimeout is the deadline of each handler run, after which a
	// handler that has not returned is abandoned (after the backend's
	// grace period) and its event retried or dead-lettered. Zero leaves
	// the backend's default; the tests about handler deadlines set it.
	HandlerTimeout time.Duration
}

// DeadLetter is an event a backend gave up on, as the suite sees it.
type DeadLetter struct {
	// Event is the event given up on, as last delivered.
	Event pubsub.Event
	// Reason says why, in the backend's words; never empty.
	Reason string
}

// Capability names a feature that a backend may lack.
type Capability string

// The capabilities a harness can declare in [Harness.Lacks].
const (
	// DelayedEmit: the publisher is a [pubsub.DelayedPublisher].
	DelayedEmit Capability = "DelayedEmit"
	// GoroutineLeakCheck: every goroutine the backend starts ends once its
	// publisher and subscribers are closed, and the suite may check that
	// with a snapshot of all goroutines (which fails when other tests run
	// in parallel in the same process).
	GoroutineLeakCheck Capability = "GoroutineLeakCheck"
	// TraceContext: an event carries the OpenTelemetry trace context it
	// was emitted under (W3C Trace Context), and its handler's context
	// holds it, with or without a TracerProvider.
	TraceContext Capability = "TraceContext"
)
