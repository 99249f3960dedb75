package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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
}

const (
	defaultMaxAttempts = 5
	defaultMinBackoff  = 100 * time.Millisecond
	defaultMaxBackoff  = 10 * time.Second
)

// Validate reports the first field of c that holds an invalid value.
func (c SubscriberConfig) Validate() error {
	switch {
	case c.Concurrency < 0:
		return fmt.Errorf("memory: SubscriberConfig.Concurrency is %d, want 0 (default) or more", c.Concurrency)
	case c.MaxAttempts < 0:
		return fmt.Errorf("memory: SubscriberConfig.MaxAttempts is %d, want 0 (default) or more", c.MaxAttempts)
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

// Consume runs [SubscriberConfig.Concurrency] handlers on the group's
// events until ctx is done or the subscriber is closed, then returns once
// they have finished. Several Consume calls on one subscriber share its
// group like separate subscribers would. A nil h panics.
func (s *Subscriber) Consume(ctx context.Context, h pubsub.Handler, eh pubsub.ErrorHandler) {
	if h == nil {
		panic("memory: Subscriber.Consume called with a nil Handler")
	}
	if eh == nil {
		eh = lifecycle.LogErrors(s.b.opts.Logger, "memory: subscriber error", "group", s.g.name)
	}
	if !s.gate.Enter() {
		eh(ctx, fmt.Errorf("memory: Consume on group %q: %w", s.g.name, pubsub.ErrClosed), nil)
		return
	}
	defer s.gate.Leave()

	h = pubsub.Recover(h)
	var workers sync.WaitGroup
	for range s.cfg.Concurrency {
		workers.Go(func() { s.work(ctx, h, eh) })
	}
	workers.Wait()
}

func (s *Subscriber) work(ctx context.Context, h pubsub.Handler, eh pubsub.ErrorHandler) {
	for {
		select {
		case env := <-s.g.ch:
			s.handle(ctx, h, eh, env)
		case <-ctx.Done():
			return
		case <-s.gate.Done():
			return
		}
	}
}

func (s *Subscriber) handle(ctx context.Context, h pubsub.Handler, eh pubsub.ErrorHandler, env envelope) {
	err := h(pubsub.HandlerContext(ctx, env.ev), env.ev)
	if err == nil {
		return
	}
	permanent := errors.Is(err, pubsub.ErrPermanent)
	if ctx.Err() != nil && !permanent {
		// Consume is stopping: the failure is ours, not the event's, so
		// it goes back without being charged an attempt.
		go s.g.requeue(s.b.life, env)
		return
	}
	env.deliveries++
	if permanent || env.deliveries >= s.cfg.MaxAttempts {
		dl := &pubsub.DeadLetterError{Attempts: env.deliveries, Err: err}
		s.b.addDeadLetter(DeadLetter{Event: env.ev, Group: s.g.name, Err: err, Attempts: env.deliveries, At: time.Now()})
		ev := env.ev
		eh(ctx, dl, &ev)
		return
	}
	env.ev.Meta.Attempts++
	time.AfterFunc(s.cfg.Backoff(env.deliveries), func() { s.g.requeue(s.b.life, env) })
}

// Close stops the subscriber's Consume calls and waits for their handlers
// to return. Events it has not taken stay with its group. It is safe to
// call more than once, but not from one of its handlers, which it would
// wait for.
func (s *Subscriber) Close() error {
	if !s.gate.Close() {
		return nil
	}
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	return nil
}
