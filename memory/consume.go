package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-go/switchyard/internal/lifecycle"
	"github.com/switchyard-go/switchyard/internal/tracing"
	"github.com/switchyard-go/switchyard/pubsub"
)

// Consume runs [SubscriberConfig.Concurrency] handlers on the group's
// events until ctx is done or the subscriber is closed, then returns once
// they have finished, waiting for each running handler at most until its
// deadline plus the grace period (see [SubscriberConfig.HandlerTimeout]).
// Several Consume calls on one subscriber share its group like separate
// subscribers would. A nil h panics.
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

	timeout := s.cfg.HandlerTimeout
	c := &consumer{
		s:       s,
		ctx:     ctx,
		h:       pubsub.Recover(h),
		eh:      eh,
		base:    time.Now(),
		timeout: timeout,
		grace:   lifecycle.HandlerGrace(timeout),
		hung:    lifecycle.HungError("memory", timeout),
		done:    make(chan struct{}),
	}
	slots := make([]*slot, s.cfg.Concurrency)
	c.slots.Add(len(slots))
	for i := range slots {
		slots[i] = c.start()
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		c.watch(slots)
	}()
	c.slots.Wait()
	close(c.done)
	<-watched
}

// consumer is one Consume call: Concurrency worker slots, each filled by
// a goroutine that handles events one at a time, and a watchdog that
// abandons a run that outlives its deadline by the grace period and fills
// its slot with a new goroutine. Goroutines left behind by abandoned runs
// are only as many as the runs that hung.
type consumer struct {
	s   *Subscriber
	ctx context.Context
	h   pubsub.Handler
	eh  pubsub.ErrorHandler

	base    time.Time     // times below are nanoseconds since base (monotonic)
	timeout time.Duration // HandlerTimeout
	grace   time.Duration // how long after its deadline a run is abandoned
	hung    error         // the error of an abandoned run

	slots sync.WaitGroup // one per slot whose goroutine may still handle events
	done  chan struct{}  // closed once every slot is done: ends the watchdog
}

// slot states besides a run's deadline, which is always positive.
const (
	idle      = 0
	abandoned = -1
)

// slot is one worker goroutine's place. The worker writes env and then
// stores its run's deadline in state; whoever moves state away from that
// deadline decides the run's fate: the worker (back to idle) handles its
// result, the watchdog (to abandoned) fails it as hung.
type slot struct {
	state atomic.Int64 // idle, abandoned, or the running handler's deadline
	env   envelope     // the event in hand while running
}

func (c *consumer) now() int64 { return int64(time.Since(c.base)) }

// start starts a worker goroutine in a new slot, which the caller has
// counted in c.slots.
func (c *consumer) start() *slot {
	w := new(slot)
	go c.work(w)
	return w
}

func (c *consumer) work(w *slot) {
	var rc lifecycle.RunContext
	defer rc.Release()
	stop, closed := c.ctx.Done(), c.s.gate.Done()
	for {
		// Stopping comes first: select alone would pick at random
		// between it and a waiting event. (Two selects, as each with
		// one case and a default is a cheap check that locks nothing.)
		select {
		case <-stop:
			c.slots.Done()
			return
		default:
		}
		select {
		case <-closed:
			c.slots.Done()
			return
		default:
		}
		var env envelope
		select {
		case env = <-c.s.g.ch: // the fast path under load: one channel, no select over three
		default:
			select {
			case env = <-c.s.g.ch:
			case <-stop:
				c.slots.Done()
				return
			case <-closed:
				c.slots.Done()
				return
			}
		}
		ctx, deadline := rc.Get(c.ctx, c.base, c.timeout)
		w.env = env
		w.state.Store(deadline)
		hctx := pubsub.HandlerContext(ctx, env.ev)
		var span tracing.Span
		// An event emitted while spans were made carries the send span's
		// context: one that carries nothing needs no process span.
		if env.trace != nil {
			hctx, span = c.s.b.tracer.Process(hctx, system, destination, c.s.g.name, env.ev, env.parent())
		}
		err := c.h(hctx, env.ev)
		span.End(err)
		if !w.state.CompareAndSwap(deadline, idle) {
			// Abandoned: the watchdog failed the event and gave this slot
			// to another goroutine; what the handler returned no longer
			// counts.
			return
		}
		if err != nil {
			c.fail(env, err, false)
		}
	}
}

// watch abandons runs still going a grace period after their deadline.
// It sleeps until the earliest such moment, or for HandlerTimeout while no
// run is in progress: a run that starts meanwhile cannot be due before.
func (c *consumer) watch(slots []*slot) {
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	for {
		now := c.now()
		next := now + int64(c.timeout)
		for i, w := range slots {
			d := w.state.Load()
			if d <= idle {
				continue
			}
			if due := d + int64(c.grace); due > now {
				next = min(next, due)
				continue
			}
			if !w.state.CompareAndSwap(d, abandoned) {
				next = now // the run ended just now; look again
				continue
			}
			env := w.env
			if c.stopping() {
				c.fail(env, c.hung, true)
				c.slots.Done()
				continue
			}
			slots[i] = c.start()
			c.fail(env, c.hung, true)
		}
		timer.Reset(time.Duration(next - now))
		select {
		case <-timer.C:
		case <-c.done:
			return
		}
	}
}

func (c *consumer) stopping() bool {
	select {
	case <-c.s.gate.Done():
		return true
	default:
		return c.ctx.Err() != nil
	}
}

// fail handles a failed delivery: a redelivery after the backoff with
// Attempts one higher, or a dead letter after MaxAttempts. A failure
// because Consume is stopping is not the event's: the event goes back at
// once, uncharged; a run abandoned as hung is charged all the same.
func (c *consumer) fail(env envelope, err error, hung bool) {
	s := c.s
	permanent := errors.Is(err, pubsub.ErrPermanent)
	if !hung && !permanent && c.ctx.Err() != nil {
		go s.g.requeue(s.b.life, env)
		return
	}
	env.deliveries++
	if permanent || env.deliveries >= s.cfg.MaxAttempts {
		dl := &pubsub.DeadLetterError{Attempts: env.deliveries, Err: err}
		s.b.addDeadLetter(DeadLetter{Event: env.ev, Group: s.g.name, Err: err, Attempts: env.deliveries, At: time.Now()})
		s.b.tracer.DeadLetter(system, "memory dead letters", env.ev, env.parent(), dl)
		ev := env.ev
		c.eh(c.ctx, dl, &ev)
		return
	}
	env.ev.Meta.Attempts++
	time.AfterFunc(s.cfg.Backoff(env.deliveries), func() { s.g.requeue(s.b.life, env) })
}
