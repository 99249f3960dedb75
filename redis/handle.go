package redis

import (
	"errors"
	"fmt"
	"math"

	"github.com/switchyard-go/switchyard/internal/lifecycle"
	"github.com/switchyard-go/switchyard/pubsub"
)

// work runs jobs until the run stops its workers, or until its handler is
// abandoned (then a new worker has taken its place). Once the run is
// stopping it starts no handler: what is still queued stays pending for
// the next start.
func (r *run) work(w *slot) {
	var rc lifecycle.RunContext
	defer rc.Release()
	for {
		select {
		case j := <-r.jobs:
			if r.life.Err() != nil {
				r.held.release(j.stream, j.msg.ID)
				continue
			}
			if !r.handle(w, &rc, j) {
				return
			}
		case <-r.workersStop:
			r.workers.Done()
			return
		}
	}
}

// errNoOutcome is the reason of an entry dead-lettered for having been
// delivered more than MaxAttempts times without a handler outcome.
var errNoOutcome = errors.New("without an outcome (crash or hang?)")

// handle runs one job; it reports false when the handler was abandoned,
// and the calling goroutine then belongs to nobody.
func (r *run) handle(w *slot, rc *lifecycle.RunContext, j job) bool {
	unlock := r.lock(j)
	if r.life.Err() != nil {
		// Stopped while waiting for the lock: the entry stays pending.
		unlock()
		r.held.release(j.stream, j.msg.ID)
		return true
	}
	if !r.stillOurs(&j) {
		// Another consumer took it over while it waited here (this one
		// was stalled past ClaimIdle): it is theirs to handle.
		unlock()
		r.held.release(j.stream, j.msg.ID)
		return true
	}
	ev, ok := r.prepare(j)
	if !ok {
		unlock()
		return true
	}
	err, returned := r.call(w, rc, j, ev, unlock)
	if !returned {
		return false
	}
	if err == nil {
		if !j.claimed || !r.ackNow(j) {
			r.queueAck(j.stream, j.msg.ID)
		}
		unlock()
		return true
	}
	unlock()
	permanent := errors.Is(err, pubsub.ErrPermanent)
	switch {
	case r.life.Err() != nil && !permanent:
		// Stopping: the entry stays pending for the next Consume.
		r.held.release(j.stream, j.msg.ID)
	case permanent || j.deliveries >= int64(r.s.cfg.MaxAttempts):
		r.deadLetter(j, ev, &pubsub.DeadLetterError{Attempts: int(j.deliveries), Err: err})
	default:
		r.retryLater(j, r.s.cfg.Backoff(int(j.deliveries)))
	}
	return true
}

// lock takes run.exclusive for j and returns what releases it. An entry
// recovered from a crashed process or taken over from another consumer
// runs alone: its delivery is counted, it runs and it is acknowledged
// while no other handler runs, so should it be one that kills its
// process, it charges no other entry a delivery. One this run abandoned
// as hung need not: a hang harms no other entry, and running it alone
// would stall them all.
func (r *run) lock(j job) func() {
	if j.claimed && !r.wasAbandoned(j) {
		r.exclusive.Lock()
		return r.exclusive.Unlock
	}
	r.exclusive.RLock()
	return r.exclusive.RUnlock
}

// prepare decodes j for its handler. It reports false when the entry was
// settled without one: deleted while pending, poison, of a name this
// subscriber does not handle, or delivered too often without an outcome.
func (r *run) prepare(j job) (pubsub.Event, bool) {
	if len(j.msg.Values) == 0 {
		// XREADGROUP and XAUTOCLAIM return entries trimmed from the
		// stream while pending with no fields: there is nothing left to
		// handle or keep.
		r.queueAck(j.stream, j.msg.ID)
		r.eh(r.ctx, fmt.Errorf("redis: entry %s of stream %q was deleted while pending; acknowledged: %w", j.msg.ID, j.stream, pubsub.ErrMalformed), nil)
		return pubsub.Event{}, false
	}
	ev, err := decode(j.msg.ID, j.msg.Values)
	if err != nil {
		r.deadLetter(j, ev, err)
		return ev, false
	}
	if r.s.names != nil && !r.s.names[ev.Name] {
		r.queueAck(j.stream, j.msg.ID)
		return ev, false
	}
	if j.deliveries > int64(r.s.cfg.MaxAttempts) {
		// Earlier deliveries ended with no outcome: the handler crashed
		// its process, or hung. Give it no further chance to.
		r.deadLetter(j, ev, &pubsub.DeadLetterError{Attempts: int(j.deliveries - 1),
			Err: fmt.Errorf("delivered %d times %w", j.deliveries, errNoOutcome)})
		return ev, false
	}
	ev.Meta.Attempts = addAttempts(ev.Meta.Attempts, j.deliveries-1)
	return ev, true
}

// addAttempts adds n to the attempts an entry carried, saturating rather
// than wrapping for absurd values.
func addAttempts(a int, n int64) int {
	if int64(a) > math.MaxInt-n {
		return math.MaxInt
	}
	return a + int(n)
}

// abandon gives up on a handler that ignored its deadline (the watchdog
// has given its slot to a new worker; the run no longer waits for it).
// Its entry is released: it stays pending with this consumer, the keeper
// finds it there, and it is delivered again (counted), so that a handler
// that hangs every time ends in the dead-letter stream after MaxAttempts
// deliveries.
func (r *run) abandon(j job, ev pubsub.Event) {
	r.abandonedMu.Lock()
	r.abandoned[j.stream+"\x00"+j.msg.ID] = struct{}{}
	r.abandonedN.Store(int32(len(r.abandoned)))
	r.abandonedMu.Unlock()
	r.held.release(j.stream, j.msg.ID)
	r.eh(r.ctx, fmt.Errorf("entry %s of stream %q stays pending and is delivered again: %w",
		j.msg.ID, j.stream, lifecycle.HungError("redis", r.s.cfg.HandlerTimeout)), &ev)
}

// wasAbandoned reports whether this run abandoned a handler of j before.
func (r *run) wasAbandoned(j job) bool {
	r.abandonedMu.Lock()
	defer r.abandonedMu.Unlock()
	_, ok := r.abandoned[j.stream+"\x00"+j.msg.ID]
	return ok
}
