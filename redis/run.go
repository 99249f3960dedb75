package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
}

type ack struct{ stream, id string }

// run is one Consume call: a reader per stream, a claimer, a keeper of
// held entries, a delayed mover, a pool of workers and an acknowledger,
// stopped together.
type run struct {
	s    *Subscriber
	h    pubsub.Handler
	eh   pubsub.ErrorHandler
	ctx  context.Context    // Consume's, for handlers
	life context.Context    // done when Consume should stop
	stop context.CancelFunc // ends life

	jobs    chan job
	acks    chan ack
	retries sync.WaitGroup // retry timers waiting to redeliver

	held *holdings
	// exclusive: handlers of fresh entries hold it for reading; one of a
	// claimed entry (recovered or taken over) holds it alone.
	exclusive sync.RWMutex
	// abandoned are the entries whose handler this run gave up on as
	// hung ("stream\x00id"); few, as each is a hang.
	abandonedMu sync.Mutex
	abandoned   map[string]struct{}
	rescan      map[string]chan struct{} // per stream: read this consumer's pending list again
	loops       sync.WaitGroup           // readers, claimer, keeper, mover
	workers     sync.WaitGroup
	ackDone     chan struct{}

	base        time.Time     // handler deadlines are ns since base (monotonic)
	workersStop chan struct{} // closed when the workers are to stop; r.jobs is never closed, as a late loop may still send
	workersDone chan struct{} // closed once the workers are done: ends the watchdog

	leaseToken string        // this run's lease on the consumer name
	leased     chan struct{} // closed once the lease is taken
}

func newRun(ctx context.Context, s *Subscriber, h pubsub.Handler, eh pubsub.ErrorHandler) *run {
	life, stop := context.WithCancel(ctx)
	r := &run{
		s: s, h: h, eh: eh, ctx: ctx, life: life, stop: stop,
		jobs:        make(chan job, s.cfg.Concurrency),
		acks:        make(chan ack, s.cfg.BatchSize),
		ackDone:     make(chan struct{}),
		base:        time.Now(),
		workersStop: make(chan struct{}),
		leased:      make(chan struct{}),
		workersDone: make(chan struct{}),
		held:        newHoldings(s.cfg.Streams),
		abandoned:   make(map[string]struct{}),
		rescan:      make(map[string]chan struct{}, len(s.cfg.Streams)),
	}
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
	go r.acknowledge()
	r.workers.Add(s.cfg.Concurrency)
	slots := make([]*slot, s.cfg.Concurrency)
	for i := range slots {
		slots[i] = r.startWorker()
	}
	go r.watch(slots)
	readers := r.readerGroups()
	r.loops.Add(3 + len(readers))
	go func() {
		if !r.leaseName() {
			r.loops.Add(-(3 + len(readers)))
			return
		}
		close(r.leased)
		for _, streams := range readers {
			go r.read(streams)
		}
		go r.claim()
		go r.keep()
		go r.moveDelayed()
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
	waitAtMost(&r.retries, time.Second)
	close(r.workersStop)
	r.workers.Wait()
	close(r.workersDone)
	close(r.acks)
	<-r.ackDone
	select {
	case <-r.leased:
		if !r.s.unreachable.Load() {
			r.releaseName()
		}
	default:
	}
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

// readerGroups splits the streams among readers. A reader holds a
// pooled connection while it blocks, so on one server every stream is
// read by one reader in one XREADGROUP (however many partitions, one
// connection); on a Cluster (or Ring) each stream has a reader of its
// own, as streams in different slots cannot be read in one command.
func (r *run) readerGroups() [][]string {
	switch r.s.client.(type) {
	case *goredis.ClusterClient, *goredis.Ring:
		groups := make([][]string, len(r.s.cfg.Streams))
		for i, s := range r.s.cfg.Streams {
			groups[i] = []string{s}
		}
		return groups
	}
	return [][]string{r.s.cfg.Streams}
}

// read delivers this consumer's own pending entries of its streams first,
// then new ones; it reads a stream's pending list again after a failed
// read, and whenever the keeper finds entries there that the run does not
// hold (a read whose reply was lost, a handler abandoned).
func (r *run) read(streams []string) {
	defer r.loops.Done()
	cfg := r.s.cfg
	failures := 0
	own := make(map[string]bool, len(streams))
	args := make([]string, 0, 2*len(streams))
	args = append(args, streams...)
	for range streams {
		args = append(args, ">")
	}
	for _, stream := range streams {
		own[stream] = true
		// Make the consumer known to the group at once, as operators
		// expect to see it in XINFO CONSUMERS (a blocked XREADGROUP
		// does not).
		_ = r.s.client.XGroupCreateConsumer(r.life, stream, cfg.Group, cfg.Consumer).Err()
	}
	for r.life.Err() == nil {
		failed := false
		for _, stream := range streams {
			select {
			case <-r.rescan[stream]:
				own[stream] = true
			default:
			}
			if !own[stream] {
				continue
			}
			if err := r.readOwn(stream); err != nil {
				if r.life.Err() != nil {
					return
				}
				failures++
				r.recover(stream, err, failures)
				failed = true
				continue
			}
			own[stream] = false
		}
		if failed {
			continue
		}
		sent := time.Now()
		res, err := r.s.client.XReadGroup(r.life, &goredis.XReadGroupArgs{
			Group: cfg.Group, Consumer: cfg.Consumer, Streams: args,
			Count: int64(cfg.BatchSize), Block: cfg.Block,
		}).Result()
		switch {
		case errors.Is(err, goredis.Nil): // nothing new within Block
			failures = 0
			continue
		case err != nil:
			if r.life.Err() != nil {
				return
			}
			failures++
			r.recoverAll(streams, err, failures)
			// A read whose reply was lost left its entries pending with
			// this consumer: read the pending lists again.
			for _, stream := range streams {
				own[stream] = true
			}
			continue
		}
		failures = 0
		if !r.hold(res, sent) {
			return
		}
	}
}

// hold takes hold of everything a read returned at once, before handing
// any of it out (so the keeper renews what waits, and never mistakes it
// for a lost reply's), then hands it to the workers; it reports false
// when the run is stopping.
func (r *run) hold(res []goredis.XStream, sent time.Time) bool {
	for i, xs := range res {
		if len(xs.Messages) == 0 {
			continue
		}
		r.s.pos.advance(xs.Stream, xs.Messages[len(xs.Messages)-1].ID)
		fresh := xs.Messages[:0]
		for _, m := range xs.Messages {
			if r.held.take(xs.Stream, m.ID, sent, 1) {
				fresh = append(fresh, m)
			}
		}
		res[i].Messages = fresh
	}
	for i, xs := range res {
		for k, m := range xs.Messages {
			if r.dispatch(job{stream: xs.Stream, msg: m, deliveries: 1}) {
				continue
			}
			for _, rest := range xs.Messages[k+1:] {
				r.held.release(xs.Stream, rest.ID)
			}
			for _, later := range res[i+1:] {
				for _, rest := range later.Messages {
					r.held.release(later.Stream, rest.ID)
				}
			}
			return false
		}
	}
	return true
}

// readOwn claims back, page by page, the entries pending with this
// consumer that the run does not hold (left by an earlier process under
// the same name, by a lost reply, or by an abandoned handler), each
// counted as one more delivery, and hands them to the workers.
func (r *run) readOwn(stream string) error {
	cfg := r.s.cfg
	start := "-"
	for r.life.Err() == nil {
		pend, err := r.s.client.XPendingExt(r.life, &goredis.XPendingExtArgs{
			Stream: stream, Group: cfg.Group, Start: start, End: "+", Count: int64(cfg.BatchSize), Consumer: cfg.Consumer,
		}).Result()
		if err != nil {
			return err
		}
		var want []heldEntry
		for _, p := range pend {
			if !r.held.has(stream, p.ID) {
				want = append(want, heldEntry{p.ID, p.RetryCount})
			}
		}
		if len(want) > 0 {
			sent := time.Now()
			got, err := r.claimEntries(r.life, stream, "own", want)
			if err != nil {
				return err
			}
			ours := got[:0]
			for _, c := range got {
				switch c.status {
				case "ours":
					ours = append(ours, c)
				case "gone":
					r.reportDeleted(stream, c.msg.ID)
				}
			}
			if !r.dispatchAll(stream, ours, sent) {
				return nil
			}
		}
		if len(pend) < cfg.BatchSize {
			return nil
		}
		start = nextID(pend[len(pend)-1].ID)
	}
	return nil
}

// claim takes over entries left idle past ClaimIdle by other consumers
// (or by this one, when it was stalled), following XAUTOCLAIM's cursor.
func (r *run) claim() {
	defer r.loops.Done()
	for r.pause(r.s.cfg.ClaimInterval) {
		for _, stream := range r.s.cfg.Streams {
			start := "0-0"
			for {
				sent := time.Now()
				got, next, deleted, err := r.autoclaim(r.life, stream, start)
				if err != nil {
					if r.life.Err() == nil && !isNoGroup(err) {
						r.eh(r.ctx, wrapf(err, "redis: claiming idle entries of stream %q", stream), nil)
					}
					break
				}
				for _, id := range deleted {
					r.reportDeleted(stream, id)
				}
				if !r.dispatchAll(stream, got, sent) {
					return
				}
				if next == "0-0" || next == "" {
					break
				}
				start = next
			}
		}
	}
}

// reportDeleted tells the ErrorHandler of an entry deleted from the
// stream while pending, which Redis dropped from the pending list as it
// was claimed.
func (r *run) reportDeleted(stream, id string) {
	r.eh(r.ctx, fmt.Errorf("redis: entry %s of stream %q was deleted while pending; acknowledged: %w", id, stream, pubsub.ErrMalformed), nil)
}
