package redis

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
)

// job is one stream entry on its way to a handler, with the number of
// times Redis has delivered it to the group.
type job struct {
	stream     string
	msg        goredis.XMessage
	deliveries int64
	// claimed: the entry was claimed without counting a delivery, which
	// is counted when a handler starts on it.
	claimed bool
	// read is when the read that gave it to this consumer was sent (for
	// fresh reads): until ClaimIdle/2 later, it is surely still ours.
	read time.Time
}

type ack struct{ stream, id string }

// run is one Consume call: a reader per stream, a claimer, a keeper of
// held entries, a delayed mover, a pool of workers and an acknowledger
// per reader, stopped together.
type run struct {
	s       *Subscriber
	h       pubsub.Handler
	eh      pubsub.ErrorHandler // reports.report: silent once Consume has returned
	reports reporter
	ctx     context.Context    // Consume's, for handlers
	life    context.Context    // done when Consume should stop
	stop    context.CancelFunc // ends life

	jobs    chan job
	ackers  map[string]*acker // per stream: its reader group's acknowledger
	ackList []*acker
	ackWG   sync.WaitGroup
	retries sync.WaitGroup // retry timers waiting to redeliver

	held *holdings
	// exclusive: handlers of fresh entries hold it for reading; one of a
	// claimed entry (recovered or taken over) holds it alone.
	exclusive sync.RWMutex
	// abandoned are the entries whose handler this run gave up on as
	// hung ("stream\x00id"); few, as each is a hang.
	abandonedMu sync.Mutex
	abandonedN  atomic.Int32 // len(abandoned)
	abandoned   map[string]struct{}
	rescan      map[string]chan struct{} // per stream: read this consumer's pending list again
	loops       sync.WaitGroup           // readers, claimer, keeper, mover
	workers     sync.WaitGroup

	base        time.Time     // handler deadlines are ns since base (monotonic)
	workersStop chan struct{} // closed when the workers are to stop; r.jobs is never closed, as a late loop may still send
	workersDone chan struct{} // closed once the workers are done: ends the watchdog

	leaseToken string        // this run's lease on the consumer name
	leased     chan struct{} // closed once the lease is taken
}

func newRun(ctx context.Context, s *Subscriber, h pubsub.Handler, eh pubsub.ErrorHandler) *run {
	life, stop := context.WithCancel(ctx)
	r := &run{
		s: s, h: h, ctx: ctx, life: life, stop: stop,
		jobs:        make(chan job, s.cfg.Concurrency),
		base:        time.Now(),
		workersStop: make(chan struct{}),
		leased:      make(chan struct{}),
		workersDone: make(chan struct{}),
		held:        newHoldings(s.cfg.Streams),
		abandoned:   make(map[string]struct{}),
		rescan:      make(map[string]chan struct{}, len(s.cfg.Streams)),
	}
	r.reports.eh = eh
	r.eh = r.reports.report
	for _, stream := range s.cfg.Streams {
		r.rescan[stream] = make(chan struct{}, 1)
	}
	go func() {
		select {
		case <-s.gate.Done():
			stop()
		case <-life.Done():
		}
	}()
	readers := r.readerGroups()
	r.startAckers(readers)
	r.workers.Add(s.cfg.Concurrency)
	slots := make([]*slot, s.cfg.Concurrency)
	for i := range slots {
		slots[i] = r.startWorker()
	}
	go r.watch(slots)
	loops := 3 + len(readers)
	forget := s.cfg.ForgetIdleConsumers > 0
	if forget {
		loops++
	}
	r.loops.Add(loops)
	go func() {
		if !r.leaseName() {
			r.loops.Add(-loops)
			return
		}
		close(r.leased)
		for _, streams := range readers {
			go r.read(streams)
		}
		go r.claim()
		go r.keep()
		go r.moveDelayed()
		if forget {
			go r.forget()
		}
	}()
	return r
}

// wait returns once the handlers have ended (those that ignore their
// deadline are abandoned) and their acknowledgements are written or
// given up. It waits for the readers and other loops only a little past
// Block: against a Redis that has stopped answering, their commands end
// only with the client's timeouts, and what they read after the run
// stopped stays pending for the next start.
func (r *run) wait() {
	<-r.life.Done()
	waitAtMost(&r.loops, r.s.cfg.Block+time.Second)
	close(r.workersStop)
	r.workers.Wait()
	close(r.workersDone)
	// Only workers start retries, so none starts from here on.
	waitAtMost(&r.retries, time.Second)
	r.closeAckers()
	select {
	case <-r.leased:
		if !r.s.unreachable.Load() {
			r.releaseName()
		}
	default:
	}
	r.reports.close()
}

// reporter passes errors to the ErrorHandler until Consume returns; a
// loop or retry that outlived the run (against a Redis that stopped
// answering) reports nothing after that.
type reporter struct {
	mu   sync.RWMutex
	done bool
	eh   pubsub.ErrorHandler
}

func (p *reporter) report(ctx context.Context, err error, ev *pubsub.Event) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.done {
		p.eh(ctx, err, ev)
	}
}

// close waits for the reports in progress and silences later ones.
func (p *reporter) close() {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
}

// settle forgets entries acknowledged, dead-lettered or given up.
func (r *run) settle(stream string, ids ...string) {
	r.held.release(stream, ids...)
	if r.abandonedN.Load() == 0 {
		return
	}
	r.abandonedMu.Lock()
	for _, id := range ids {
		delete(r.abandoned, stream+"\x00"+id)
	}
	r.abandonedN.Store(int32(len(r.abandoned)))
	r.abandonedMu.Unlock()
}

// waitAtMost waits for wg, or d.
func waitAtMost(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// errNoAnswer is aside's error when its command did not end in time.
var errNoAnswer = errors.New("no answer from Redis in time")

// aside runs f in a goroutine of its own and returns its error, or
// errNoAnswer once wait has passed: go-redis honours a context's deadline
// only on clients made with ContextTimeoutEnabled, and otherwise waits
// for its ReadTimeout on every retry. f goes on until its own context
// ends.
func aside(wait time.Duration, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errNoAnswer
	}
}

// dispatch hands a job to the workers; it reports false when the run is
// stopping, and the entry then stays pending.
func (r *run) dispatch(j job) bool {
	select {
	case r.jobs <- j:
		return true
	case <-r.life.Done():
		r.held.release(j.stream, j.msg.ID)
		return false
	}
}

// dispatchAll takes hold of entries that a command sent at sent claimed
// for this consumer, all at once (so that the claimer or keeper never
// mistakes a queued one for someone else's), then hands those not already
// held to the workers, to be counted as delivered when a handler starts.
func (r *run) dispatchAll(stream string, entries []claimed, sent time.Time) bool {
	fresh := entries[:0:0]
	for _, e := range entries {
		if r.held.take(stream, e.msg.ID, sent, e.deliveries) {
			fresh = append(fresh, e)
		}
	}
	for i, e := range fresh {
		if !r.dispatch(job{stream: stream, msg: e.msg, deliveries: e.deliveries, claimed: true}) {
			for _, rest := range fresh[i+1:] {
				r.held.release(stream, rest.msg.ID)
			}
			return false
		}
	}
	return true
}

// pause waits d, or less when the run stops; it reports whether to go on.
func (r *run) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.life.Done():
		return false
	}
}
