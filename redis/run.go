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

	jobs     chan job
	acks     chan ack
	retries  sync.WaitGroup    // retry timers waiting to redeliver
	lastRead map[string]string // per stream, the last new entry read; the reader's own
	loops    sync.WaitGroup    // reader, claimer, mover
	workers  sync.WaitGroup
	ackDone  chan struct{}
}

func newRun(ctx context.Context, s *Subscriber, h pubsub.Handler, eh pubsub.ErrorHandler) *run {
	life, stop := context.WithCancel(ctx)
	r := &run{
		s: s, h: h, eh: eh, ctx: ctx, life: life, stop: stop,
		jobs:     make(chan job, s.cfg.Concurrency),
		acks:     make(chan ack, s.cfg.BatchSize),
		ackDone:  make(chan struct{}),
		lastRead: make(map[string]string, len(s.cfg.Streams)),
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
	r.loops.Add(3)
	go r.read()
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

// read delivers this consumer's pending entries first, then new ones.
func (r *run) read() {
	defer r.loops.Done()
	cfg := r.s.cfg
	failures := 0
	backlog := true // this consumer's own pending entries, read from "0"
	ids := make(map[string]string, len(cfg.Streams))
	for _, s := range cfg.Streams {
		ids[s] = "0"
	}
	for r.life.Err() == nil {
		args := &goredis.XReadGroupArgs{Group: cfg.Group, Consumer: cfg.Consumer, Count: int64(cfg.BatchSize)}
		for _, s := range cfg.Streams {
			args.Streams = append(args.Streams, s)
		}
		for _, s := range cfg.Streams {
			if backlog {
				args.Streams = append(args.Streams, ids[s])
			} else {
				args.Streams = append(args.Streams, ">")
			}
		}
		if !backlog {
			args.Block = cfg.Block
		}
		res, err := r.s.client.XReadGroup(r.life, args).Result()
		if errors.Is(err, goredis.Nil) {
			failures = 0
			continue
		}
		if err != nil {
			if r.life.Err() != nil {
				return
			}
			failures++
			r.recover(err, failures)
			continue
		}
		failures = 0
		got := 0
		for _, xs := range res {
			got += len(xs.Messages)
			if len(xs.Messages) > 0 {
				last := xs.Messages[len(xs.Messages)-1].ID
				if backlog {
					ids[xs.Stream] = last
				} else {
					r.lastRead[xs.Stream] = last
				}
			}
			if !r.deliver(xs.Stream, xs.Messages, !backlog) {
				return
			}
		}
		if backlog && got == 0 {
			backlog = false
		}
	}
}

// recover reports a failed read, recreates a deleted group, and backs
// off before the next try.
func (r *run) recover(err error, failures int) {
	if strings.HasPrefix(err.Error(), "NOGROUP") {
		// The group was deleted: make it again where this consumer had
		// read up to, so that entries added since are not skipped.
		r.s.cfg.Logger.Warn("redis: consumer group missing, creating it again", "group", r.s.cfg.Group, "err", err)
		for _, stream := range r.s.cfg.Streams {
			var cerr error
			if last := r.lastRead[stream]; last != "" {
				cerr = r.s.createGroupAt(r.life, stream, last)
			} else {
				cerr = r.s.createGroup(r.life, stream)
			}
			if cerr != nil {
				r.eh(r.ctx, cerr, nil)
			}
		}
		return
	}
	r.eh(r.ctx, fmt.Errorf("redis: reading group %q: %w", r.s.cfg.Group, err), nil)
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
