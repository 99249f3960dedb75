package webhook

import (
	"context"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// The dispatcher sends deliveries: each endpoint has a queue, served in
// order as its PerEndpoint slots free up, and a pool of at most
// MaxInFlight workers takes one delivery from each endpoint with work in
// turn, so one event matching a thousand subscriptions queues a thousand
// deliveries without a goroutine each, and a busy endpoint does not keep
// the others waiting. How many deliveries may wait in the queues is
// bounded (queueCap): an event whose deliveries do not fit waits for room
// before queueing them, which slows consumption rather than piling up
// work. A delivery that did not start within SlotWait of being queued is
// taken back by its event and deferred (see fanout.go).

// job is one delivery waiting in, or taken from, an endpoint's queue.
type job struct {
	rt    *route
	ev    pubsub.Event
	eh    *eventHeaders
	tried int
	ep    *endpoint
	run   func(j *job) // sends it and settles its outcome
	index int          // its place among its event's deliveries
	state jobState     // guarded by dispatcher.mu
}

type jobState uint8

const (
	jobQueued jobState = iota
	jobStarted
	jobWithdrawn
)

// dispatcher owns the endpoints' queues; every field of an endpoint that
// concerns queueing (queue, active, ready) is guarded by its mu.
type dispatcher struct {
	perEndpoint int
	maxWorkers  int
	queueCap    int
	window      time.Duration // SlotWait: the window endpoints' pace is measured over
	idleFor     time.Duration // workerIdle
	pace        pace          // of every endpoint together

	mu      sync.Mutex
	workers int           // running, idle ones included
	spawned int           // workers started so far
	idle    int           // workers waiting for work, not yet woken
	wake    chan struct{} // one token per idle worker woken
	quit    chan struct{} // closed by close: idle workers stop
	closed  bool
	queued  int         // jobs queued, not started nor withdrawn
	ready   []*endpoint // endpoints with a queued job and a free slot, served in turn
	room    *sync.Cond  // signalled when the event whose turn it is fits
	// roomFor is how many jobs the event whose turn it is waits to fit
	// in the queues; 0 when it does not wait.
	roomFor int
	// Events queue their jobs in the order they came: ticket is the next
	// one handed out, serving the one whose turn it is; an event waiting
	// for its turn waits on its own channel, closed when the turn comes,
	// so a turn passing wakes one event, not all that wait.
	ticket, serving uint64
	waiting         map[uint64]chan struct{}
	busy            []*endpoint // endpoints with deliveries in flight, each at its busyAt
}

func newDispatcher(perEndpoint, maxWorkers int, window time.Duration) *dispatcher {
	d := &dispatcher{perEndpoint: perEndpoint, maxWorkers: maxWorkers, queueCap: 16 * maxWorkers, window: window,
		idleFor: workerIdle, wake: make(chan struct{}, 2*maxWorkers), quit: make(chan struct{})}
	d.waiting = make(map[uint64]chan struct{})
	d.room = sync.NewCond(&d.mu)
	return d
}

// submitChunk is how many jobs submit queues at a time, letting workers
// take the lock in between.
const submitChunk = 64

// submit queues jobs, first waiting for its turn (events queue theirs in
// the order they came) and for room in the queues (none is refused: an
// event with more deliveries than queueCap goes in once the queues are
// empty), and starts the workers they need. It queues submitChunk jobs at
// a time, so that workers are not kept waiting while a thousand go in;
// the next event's turn comes once all are in.
func (d *dispatcher) submit(jobs []*job) {
	d.mu.Lock()
	turn := d.ticket
	d.ticket++
	if turn != d.serving {
		ch := make(chan struct{})
		d.waiting[turn] = ch
		d.mu.Unlock()
		<-ch
		d.mu.Lock()
	}
	need := min(len(jobs), d.queueCap)
	for need > 0 && d.queued+need > d.queueCap {
		d.roomFor = need
		d.room.Wait()
	}
	d.roomFor = 0
	for {
		chunk := jobs[:min(len(jobs), submitChunk)]
		jobs = jobs[len(chunk):]
		for _, j := range chunk {
			j.state = jobQueued
			ep := j.ep
			ep.queue = append(ep.queue, j)
			ep.queuedN++
			if !ep.ready && ep.active < d.perEndpoint {
				ep.ready = true
				d.ready = append(d.ready, ep)
			}
		}
		d.queued += len(chunk)
		last := len(jobs) == 0
		if last {
			d.serving++
			if ch, ok := d.waiting[d.serving]; ok {
				delete(d.waiting, d.serving)
				close(ch)
			}
		}
		wake, start := d.spawnable(time.Now(), len(chunk))
		d.mu.Unlock()
		d.startWorkers(wake, start)
		if last {
			return
		}
		d.mu.Lock()
	}
}

// withdrawSlow takes back the jobs that have not started and whose
// endpoint is too slow to reach them soon (see tooSlow), and returns them.
func (d *dispatcher) withdrawSlow(jobs []*job, now time.Time) []*job {
	var out []*job
	d.mu.Lock()
	for _, j := range jobs {
		if j.state == jobQueued && d.tooSlow(j.ep, now) {
			j.state = jobWithdrawn
			j.ep.queuedN--
			d.queued--
			out = append(out, j)
		}
	}
	for _, j := range out {
		j.ep.compact()
	}
	if len(out) > 0 {
		d.roomFreed()
	}
	d.mu.Unlock()
	return out
}

// compact drops the withdrawn jobs from the queue once they are most of
// it, so that an endpoint that takes nothing does not keep them (and
// their events' payloads). d.mu is held.
func (e *endpoint) compact() {
	if len(e.queue) <= 2*e.queuedN+16 {
		return
	}
	kept := e.queue[:0]
	for _, j := range e.queue {
		if j.state == jobQueued {
			kept = append(kept, j)
		}
	}
	clear(e.queue[len(kept):])
	e.queue = kept
}

// next takes the next job of the endpoint first in turn, and puts the
// endpoint back at the end of the turn when it has more to send and a free
// slot. It returns nil when no endpoint has work it may start.
func (d *dispatcher) next() *job {
	for len(d.ready) > 0 {
		ep := d.ready[0]
		d.ready[0] = nil
		d.ready = d.ready[1:]
		ep.ready = false
		j := ep.pop()
		if j == nil {
			continue
		}
		if ep.active == 0 {
			ep.progress = time.Now()
			ep.busyAt = len(d.busy)
			d.busy = append(d.busy, ep)
		}
		ep.active++
		d.queued--
		d.roomFreed()
		if ep.queuedN > 0 && ep.active < d.perEndpoint {
			ep.ready = true
			d.ready = append(d.ready, ep)
		}
		j.state = jobStarted
		return j
	}
	return nil
}

// roomFreed wakes the event whose turn it is once its jobs fit in the
// queues. d.mu is held.
func (d *dispatcher) roomFreed() {
	if d.roomFor > 0 && d.queued+d.roomFor <= d.queueCap {
		d.room.Signal()
	}
}

// notBusy takes ep out of d.busy. d.mu is held.
func (d *dispatcher) notBusy(ep *endpoint) {
	last := len(d.busy) - 1
	moved := d.busy[last]
	d.busy[ep.busyAt], moved.busyAt = moved, ep.busyAt
	d.busy[last] = nil
	d.busy = d.busy[:last]
}

// pop removes and returns the endpoint's first queued job, skipping those
// withdrawn; nil when none is queued.
func (e *endpoint) pop() *job {
	for len(e.queue) > 0 {
		j := e.queue[0]
		e.queue[0] = nil
		e.queue = e.queue[1:]
		if len(e.queue) == 0 {
			e.queue = nil // let the array go
		}
		if j.state == jobQueued {
			e.queuedN--
			return j
		}
	}
	return nil
}

// deferBusy re-emits deliveries that found no free slot within SlotWait,
// in one write, for a second later, without spending an attempt.
func (b *Bridge) deferBusy(ctx context.Context, jobs []*job) error {
	at := time.Now().Add(time.Second)
	evs := make([]pubsub.Event, 0, len(jobs))
	for _, j := range jobs {
		b.cfg.Observer.Delivery(j.rt.sub.ID, Deferred, 0, 0)
		b.record(j.rt, j.rt.sub.ID, j.ev, j.tried+1, Deferred, result{}, errEndpointBusy.Error())
		rev, err := retry{SubscriptionID: j.rt.sub.ID, Attempts: j.tried, LastError: errEndpointBusy.Error(), Event: j.ev,
			FirstAttempt: linkOf(firstAttempt(ctx))}.event()
		if err != nil {
			return err
		}
		evs = append(evs, rev)
	}
	return b.pub.EmitAt(ctx, at, evs...)
}
