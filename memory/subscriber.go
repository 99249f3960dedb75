package memory

import (
	"fmt"
	"slices"
	"time"

	"github.com/switchyard-go/switchyard/internal/lifecycle"
	"github.com/switchyard-go/switchyard/pubsub"
)

// SubscriberConfig configures a [Subscriber]. The zero value is a private
// group that gets every event, handled one at a time.
type SubscriberConfig struct {
	// Group is the consumer group to join: subscribers of one group split
	// its events, and each group gets every event.
	// default: "", a private group for this subscriber alone
	Group string
	// Names limits the group to events with these names. Every subscriber
	// of a group must give the same set.
	// default: nil, every name
	Names []pubsub.Name
	// Concurrency is how many handlers run at once. Order of delivery is
	// kept only with 1.
	// default: 1
	Concurrency int
	// MaxAttempts is how many times an event is delivered before it is
	// given up on and dead-lettered, the first delivery included.
	// default: 5
	MaxAttempts int
	// Backoff is the wait before each redelivery.
	// default: pubsub.ExponentialBackoff(100*time.Millisecond, 10*time.Second)
	Backoff pubsub.Backoff
	// HandlerTimeout bounds each handler run: its context has a deadline
	// at most HandlerTimeout after the run started (runs that start within
	// about a thousandth of HandlerTimeout, at most 10ms, of each other on
	// one worker share a context, so the deadline may come that much
	// earlier, and the context may outlive the run until then).
	// A handler that returns, its context's error or any other, is treated
	// as usual. One that ignores its deadline is abandoned a grace period
	// after it (a quarter of HandlerTimeout, at most 5s): the worker goes
	// on with other events, the run counts as a failed attempt whose error
	// wraps [context.DeadlineExceeded], and whatever the handler returns
	// later is ignored. It also bounds Close and a cancelled Consume, which
	// wait for a running handler at most until its deadline plus the
	// grace period.
	// default: 1m
	HandlerTimeout time.Duration
}

const (
	defaultMaxAttempts = 5
	defaultMinBackoff  = 100 * time.Millisecond
	defaultMaxBackoff  = 10 * time.Second
	defaultTimeout     = time.Minute
)

// Validate reports the first field of c that holds an invalid value.
func (c SubscriberConfig) Validate() error {
	switch {
	case c.Concurrency < 0:
		return fmt.Errorf("memory: SubscriberConfig.Concurrency is %d, want 0 (default) or more", c.Concurrency)
	case c.MaxAttempts < 0:
		return fmt.Errorf("memory: SubscriberConfig.MaxAttempts is %d, want 0 (default) or more", c.MaxAttempts)
	case c.HandlerTimeout < 0:
		return fmt.Errorf("memory: SubscriberConfig.HandlerTimeout is %s, want 0 (default) or more", c.HandlerTimeout)
	case slices.Contains(c.Names, ""):
		return fmt.Errorf("memory: SubscriberConfig.Names holds an empty name")
	}
	return nil
}

func (c *SubscriberConfig) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = defaultMaxAttempts
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = defaultTimeout
	}
	if c.Backoff == nil {
		c.Backoff = pubsub.ExponentialBackoff(defaultMinBackoff, defaultMaxBackoff)
	}
	c.Names = slices.Clone(c.Names)
}

// Subscriber consumes the events of one consumer group of a [Broker]. It
// implements [pubsub.Subscriber].
type Subscriber struct {
	b   *Broker
	g   *group
	cfg SubscriberConfig

	gate *lifecycle.Gate
}

// NewSubscriber returns a subscriber in the group cfg names, making the group
// when it does not exist yet; the group gets events from then on, even
// before Consume is called. It fails when cfg is invalid, when the group
// exists with another set of names, or when the broker is closed.
func (b *Broker) NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if b.closed.Load() {
		return nil, pubsub.ErrClosed
	}
	g, err := b.groupFor(cfg)
	if err != nil {
		return nil, err
	}
	s := &Subscriber{b: b, g: g, cfg: cfg, gate: lifecycle.NewGate()}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s, nil
}

// Close stops the subscriber's Consume calls and waits for their handlers
// to return, each at most until its deadline plus the grace period (see
// [SubscriberConfig.HandlerTimeout]): Close returns within HandlerTimeout
// plus the grace period, and the time ErrorHandlers take. Events it has
// not taken stay with its group; those of abandoned handlers go back to
// it as failed attempts. It is safe to call more than once, but not from
// one of its handlers, which it would wait for.
func (s *Subscriber) Close() error {
	if !s.gate.Close() {
		return nil
	}
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	return nil
}

// Queued returns how many events wait in the subscriber's group for a
// handler: emitted, not yet taken. Events emitted for later (EmitAt, or
// a retry's wait) are not counted until they are due.
func (s *Subscriber) Queued() int { return len(s.g.ch) }
