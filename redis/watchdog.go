package redis

import (
	"sync/atomic"
	"time"

	"github.com/switchyard-go/switchyard/internal/lifecycle"
	"github.com/switchyard-go/switchyard/pubsub"
)

// Handler deadlines cost no timer per event: each worker hands one
// context to the runs that start within a short window of each other (so
// a deadline comes at most that much early), and one watchdog per run
// abandons a handler still running a grace period after its deadline.

// slot states besides a running handler's deadline, which is positive.
const (
	slotIdle      = 0
	slotAbandoned = -1
)

// slot is one worker goroutine's place. The worker fills in what it runs,
// then stores the run's deadline in state; whoever moves state away from
// that deadline decides the run's fate: the worker (back to idle) goes on
// with the result, the watchdog (to abandoned) gives the run up.
type slot struct {
	state  atomic.Int64 // idle, abandoned, or the deadline (ns since run.base)
	j      job
	ev     pubsub.Event
	unlock func() // releases what the run holds of run.exclusive
}

func (r *run) now() int64 { return int64(time.Since(r.base)) }

// startWorker starts a worker goroutine in a new slot; the caller has
// counted it in r.workers.
func (r *run) startWorker() *slot {
	w := new(slot)
	go r.work(w)
	return w
}

// call runs the handler on ev under its deadline. It reports
// returned=false when the watchdog abandoned the run first: then unlock
// was called, another worker took this slot, and the result is dropped.
func (r *run) call(w *slot, rc *lifecycle.RunContext, j job, ev pubsub.Event, unlock func()) (err error, returned bool) {
	ctx, deadline := rc.Get(r.ctx, r.base, r.s.cfg.HandlerTimeout)
	w.j, w.ev, w.unlock = j, ev, unlock
	w.state.Store(deadline)
	ctx, span := r.s.tracer.Process(pubsub.HandlerContext(ctx, ev), "redis", j.stream, r.s.cfg.Group, ev, traceOf(j.msg.Values))
	err = r.h(ctx, ev)
	span.End(err)
	return err, w.state.CompareAndSwap(deadline, slotIdle)
}

// watch abandons handlers still running a grace period after their
// deadline. It sleeps until the earliest such moment, or for
// HandlerTimeout while no handler runs (one starting meanwhile cannot be
// due sooner). It returns once the workers are done.
func (r *run) watch(slots []*slot) {
	grace := int64(lifecycle.HandlerGrace(r.s.cfg.HandlerTimeout))
	timer := time.NewTimer(r.s.cfg.HandlerTimeout)
	defer timer.Stop()
	for {
		now := r.now()
		next := now + int64(r.s.cfg.HandlerTimeout)
		for i, w := range slots {
			d := w.state.Load()
			if d <= slotIdle {
				continue
			}
			if due := d + grace; due > now {
				next = min(next, due)
				continue
			}
			if !w.state.CompareAndSwap(d, slotAbandoned) {
				next = now // it ended just now; look again
				continue
			}
			w.unlock()
			r.workers.Add(1)
			slots[i] = r.startWorker()
			r.abandon(w.j, w.ev)
			r.workers.Done() // the stuck worker's share
		}
		timer.Reset(time.Duration(next - now))
		select {
		case <-timer.C:
		case <-r.workersDone:
			return
		}
	}
}
