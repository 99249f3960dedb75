package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
}

type ack struct{ stream, id string }

// run is one Consume call: a reader, a claimer, a delayed mover, a pool of
// workers and an acknowledger, stopped together.
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

	ownedMu sync.Mutex
	owned   map[string]map[string]struct{} // per stream, IDs of entries this run holds: handling, retrying or acknowledging
	loops   sync.WaitGroup                 // reader, claimer, mover
	workers sync.WaitGroup
	ackDone chan struct{}
}

func newRun(ctx context.Context, s *Subscriber, h pubsub.Handler, eh pubsub.ErrorHandler) *run {
	life, stop := context.WithCancel(ctx)
	r := &run{
		s: s, h: h, eh: eh, ctx: ctx, life: life, stop: stop,
		jobs:    make(chan job, s.cfg.Concurrency),
		acks:    make(chan ack, s.cfg.BatchSize),
		ackDone: make(chan struct{}),
		owned:   make(map[string]map[string]struct{}, len(s.cfg.Streams)),
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
	for range s.cfg.Concurrency {
		go r.work()
	}
	r.loops.Add(2 + len(s.cfg.Streams))
	for _, stream := range s.cfg.Streams {
		go r.read(stream)
	}
	go r.claim()
	go r.moveDelayed()
	return r
}

// wait returns once everything the run started has ended and its
// acknowledgements are written.
func (r *run) wait() {
	<-r.life.Done()
	r.loops.Wait()
	r.retries.Wait()
	close(r.jobs)
	r.workers.Wait()
	close(r.acks)
	<-r.ackDone
}

// dispatch hands a job to the workers; it reports false when the run is
// stopping, and the entry then stays pending.
func (r *run) dispatch(j job) bool {
	select {
	case r.jobs <- j:
		return true
	case <-r.life.Done():
		return false
	}
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

// read delivers this consumer's pending entries of stream first, then
// new ones, and the pending ones again after a failed read. Each stream has a reader of its own, so that streams in
// different Redis Cluster slots are never read in one command.
func (r *run) read(stream string) {
	defer r.loops.Done()
	cfg := r.s.cfg
	failures := 0
	backlog := "0" // this consumer's own pending entries, read after this ID; "" once done
	lastRead := "" // the last new entry read
	for r.life.Err() == nil {
		args := &goredis.XReadGroupArgs{Group: cfg.Group, Consumer: cfg.Consumer, Count: int64(cfg.BatchSize)}
		if backlog != "" {
			args.Streams = []string{stream, backlog}
		} else {
			args.Streams, args.Block = []string{stream, ">"}, cfg.Block
		}
		res, err := r.s.client.XReadGroup(r.life, args).Result()
		switch {
		case errors.Is(err, goredis.Nil): // nothing new within Block
			failures = 0
			continue
		case err != nil:
			if r.life.Err() != nil {
				return
			}
			failures++
			r.recover(stream, lastRead, err, failures)
			// A read whose reply was lost (the server restarted, the
			// connection broke) left its entries pending with us: read
			// the pending list again, skipping what is in hand.
			backlog = "0"
			continue
		}
		failures = 0
		var msgs []goredis.XMessage
		if len(res) > 0 {
			msgs = res[0].Messages
		}
		if len(msgs) == 0 {
			backlog = "" // the backlog is done; new entries from now on
			continue
		}
		if !r.deliver(stream, msgs, backlog == "") {
			return
		}
		if backlog != "" {
			backlog = msgs[len(msgs)-1].ID
		} else {
			lastRead = msgs[len(msgs)-1].ID
		}
	}
}

// recover reports a failed read of stream, makes a deleted group again,
// and backs off before the next try.
func (r *run) recover(stream, lastRead string, err error, failures int) {
	if strings.HasPrefix(err.Error(), "NOGROUP") {
		// The group was deleted: make it again where this consumer had
		// read up to, so that entries added since are not skipped.
		r.s.cfg.Logger.Warn("redis: consumer group missing, creating it again", "stream", stream, "group", r.s.cfg.Group, "err", err)
		var cerr error
		if lastRead != "" {
			cerr = r.s.createGroupAt(r.life, stream, lastRead)
		} else {
			cerr = r.s.createGroup(r.life, stream)
		}
		if cerr == nil {
			return
		}
		err = cerr
	}
	r.eh(r.ctx, fmt.Errorf("redis: reading stream %q as group %q: %w", stream, r.s.cfg.Group, err), nil)
	r.pause(min(time.Duration(failures)*100*time.Millisecond, 5*time.Second))
}

// deliver dispatches entries; fresh ones were delivered once, others need
// their delivery counts looked up.
func (r *run) deliver(stream string, msgs []goredis.XMessage, fresh bool) bool {
	if len(msgs) == 0 {
		return true
	}
	counts := map[string]int64{}
	if !fresh {
		counts = r.deliveryCounts(stream, msgs)
	}
	for _, m := range msgs {
		if !r.own(stream, m.ID) {
			continue // already in hand: read again from the pending list, or reclaimed from ourselves
		}
		n := int64(1)
		if !fresh {
			n = max(counts[m.ID], 1)
		}
		if !r.dispatch(job{stream: stream, msg: m, deliveries: n}) {
			return false
		}
	}
	return true
}

// own marks an entry as held by this run; it reports false when it
// already was.
func (r *run) own(stream, id string) bool {
	r.ownedMu.Lock()
	defer r.ownedMu.Unlock()
	ids := r.owned[stream]
	if ids == nil {
		ids = make(map[string]struct{})
		r.owned[stream] = ids
	}
	if _, ok := ids[id]; ok {
		return false
	}
	ids[id] = struct{}{}
	return true
}

// release forgets entries that are acknowledged or dead-lettered.
func (r *run) release(stream string, ids ...string) {
	r.ownedMu.Lock()
	defer r.ownedMu.Unlock()
	for _, id := range ids {
		delete(r.owned[stream], id)
	}
}

// deliveryCounts asks the group's pending list how often each entry was
// delivered.
func (r *run) deliveryCounts(stream string, msgs []goredis.XMessage) map[string]int64 {
	counts := make(map[string]int64, len(msgs))
	pending, err := r.s.client.XPendingExt(r.life, &goredis.XPendingExtArgs{
		Stream: stream, Group: r.s.cfg.Group, Start: msgs[0].ID, End: msgs[len(msgs)-1].ID,
		Count: int64(len(msgs)), Consumer: r.s.cfg.Consumer,
	}).Result()
	if err != nil {
		r.eh(r.ctx, fmt.Errorf("redis: reading delivery counts of stream %q: %w", stream, err), nil)
		return counts
	}
	for _, p := range pending {
		counts[p.ID] = p.RetryCount
	}
	return counts
}

// claim takes over entries left idle past ClaimIdle by other consumers.
func (r *run) claim() {
	defer r.loops.Done()
	for r.pause(r.s.cfg.ClaimInterval) {
		for _, stream := range r.s.cfg.Streams {
			start := "0-0"
			for {
				msgs, next, err := r.s.client.XAutoClaim(r.life, &goredis.XAutoClaimArgs{
					Stream: stream, Group: r.s.cfg.Group, Consumer: r.s.cfg.Consumer,
					MinIdle: r.s.cfg.ClaimIdle, Start: start, Count: int64(r.s.cfg.BatchSize),
				}).Result()
				if err != nil {
					if r.life.Err() == nil && !strings.HasPrefix(err.Error(), "NOGROUP") {
						r.eh(r.ctx, fmt.Errorf("redis: claiming idle entries of stream %q: %w", stream, err), nil)
					}
					break
				}
				if !r.deliver(stream, msgs, false) {
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
