package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
)

// The fields a dead letter adds to the entry it copies.
const (
	fieldDeadReason   = "dead_reason"
	fieldDeadGroup    = "dead_group"
	fieldDeadEntry    = "dead_entry_id"
	fieldDeadAttempts = "dead_attempts"
	fieldDeadAt       = "dead_at"
)

func (r *run) work() {
	defer r.workers.Done()
	for j := range r.jobs {
		r.handle(j)
	}
}

func (r *run) handle(j job) {
	if len(j.msg.Values) == 0 {
		// XREADGROUP and XAUTOCLAIM return entries trimmed from the
		// stream while pending with no fields: there is nothing left to
		// handle or keep.
		r.acks <- ack{j.stream, j.msg.ID}
		r.eh(r.ctx, fmt.Errorf("redis: entry %s of stream %q was deleted while pending; acknowledged: %w", j.msg.ID, j.stream, pubsub.ErrMalformed), nil)
		return
	}
	ev, err := decode(j.msg.ID, j.msg.Values)
	if err != nil {
		r.deadLetter(j, ev, err)
		return
	}
	if r.s.names != nil && !r.s.names[ev.Name] {
		r.acks <- ack{j.stream, j.msg.ID}
		return
	}
	ev.Meta.Attempts += int(j.deliveries - 1)
	err = r.h(pubsub.HandlerContext(r.ctx, ev), ev)
	if err == nil {
		r.acks <- ack{j.stream, j.msg.ID}
		return
	}
	permanent := errors.Is(err, pubsub.ErrPermanent)
	switch {
	case r.life.Err() != nil && !permanent:
		// Stopping: the entry stays pending for the next Consume.
	case permanent || j.deliveries >= int64(r.s.cfg.MaxAttempts):
		r.deadLetter(j, ev, &pubsub.DeadLetterError{Attempts: int(j.deliveries), Err: err})
	default:
		r.retryLater(j, r.s.cfg.Backoff(int(j.deliveries)))
	}
}

// retryLater claims the entry back after d, which makes Redis count one
// more delivery, and hands it to a worker again. Should the run stop
// first, the entry stays pending with this consumer and the next Consume
// redelivers it.
func (r *run) retryLater(j job, d time.Duration) {
	r.retries.Add(1)
	go func() {
		defer r.retries.Done()
		if !r.pause(d) {
			return
		}
		// The entry is claimed back only while it is still ours: another
		// consumer may have taken it over (XAUTOCLAIM) while we waited,
		// and MinIdle closes the gap between this check and the claim.
		giveUp := func(why string) {
			r.release(j.stream, j.msg.ID)
			r.eh(r.ctx, fmt.Errorf("redis: entry %s of stream %q %s before its retry", j.msg.ID, j.stream, why), nil)
		}
		pend, err := r.s.client.XPendingExt(r.life, &goredis.XPendingExtArgs{
			Stream: j.stream, Group: r.s.cfg.Group, Start: j.msg.ID, End: j.msg.ID, Count: 1,
		}).Result()
		switch {
		case err != nil:
			if r.life.Err() == nil {
				r.eh(r.ctx, fmt.Errorf("redis: checking entry %s of stream %q for a retry: %w", j.msg.ID, j.stream, err), nil)
			}
			r.release(j.stream, j.msg.ID) // still pending: read again or claimed later
			return
		case len(pend) == 0:
			giveUp("was acknowledged or trimmed")
			return
		case pend[0].Consumer != r.s.cfg.Consumer:
			giveUp("was taken over by consumer " + strconv.Quote(pend[0].Consumer))
			return
		}
		msgs, err := r.s.client.XClaim(r.life, &goredis.XClaimArgs{
			Stream: j.stream, Group: r.s.cfg.Group, Consumer: r.s.cfg.Consumer,
			MinIdle: max(d-2*time.Millisecond, 0), Messages: []string{j.msg.ID},
		}).Result()
		if err != nil {
			if r.life.Err() == nil {
				r.eh(r.ctx, fmt.Errorf("redis: claiming entry %s of stream %q for a retry: %w", j.msg.ID, j.stream, err), nil)
			}
			r.release(j.stream, j.msg.ID)
			return
		}
		if len(msgs) == 0 {
			giveUp("was taken over")
			return
		}
		j.msg = msgs[0]
		j.deliveries++
		r.dispatch(j)
	}()
}

// deadLetter copies the entry to the stream's dead-letter stream with the
// reason and acknowledges it, in one transaction, then tells the
// ErrorHandler. Should the write fail, the entry stays pending and is
// tried again later.
func (r *run) deadLetter(j job, ev pubsub.Event, reason error) {
	vals := make([]any, 0, 2*len(j.msg.Values)+10)
	for k, v := range j.msg.Values {
		vals = append(vals, k, v)
	}
	vals = append(vals,
		fieldDeadReason, reason.Error(),
		fieldDeadGroup, r.s.cfg.Group,
		fieldDeadEntry, j.msg.ID,
		fieldDeadAttempts, strconv.FormatInt(j.deliveries, 10),
		fieldDeadAt, time.Now().UTC().Format(time.RFC3339Nano),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := r.s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.XAdd(ctx, &goredis.XAddArgs{Stream: DeadKey(j.stream), Values: vals})
		p.XAck(ctx, j.stream, r.s.cfg.Group, j.msg.ID)
		return nil
	})
	r.release(j.stream, j.msg.ID)
	if err != nil {
		r.eh(r.ctx, fmt.Errorf("redis: dead-lettering entry %s of stream %q (left pending): %w", j.msg.ID, j.stream, err), &ev)
		return
	}
	r.eh(r.ctx, reason, &ev)
}

// ackLinger is how long the first acknowledgement of a batch waits for
// others to join it: a millisecond more before an entry leaves the
// pending list, for far fewer XACK round trips under load.
const ackLinger = time.Millisecond

// acknowledge writes acknowledgements in batches of up to BatchSize, each
// sent at most ackLinger after its first entry, in one pipeline.
func (r *run) acknowledge() {
	defer close(r.ackDone)
	batch := make(map[string][]string)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for a := range r.acks {
		batch[a.stream] = append(batch[a.stream], a.id)
		linger.Reset(ackLinger)
		open := true
	collect:
		for n := 1; n < r.s.cfg.BatchSize; n++ {
			select {
			case more, ok := <-r.acks:
				if !ok {
					open = false
					break collect
				}
				batch[more.stream] = append(batch[more.stream], more.id)
			case <-linger.C:
				break collect
			}
		}
		linger.Stop()
		r.flushAcks(batch)
		clear(batch)
		if !open {
			return
		}
	}
}

// flushAcks writes a batch of acknowledgements, trying again for a few
// seconds while Redis is unreachable (workers wait meanwhile). It writes
// them even while stopping: a handled event must not be redelivered for
// want of its XACK. What still fails stays pending and is redelivered.
func (r *run) flushAcks(batch map[string][]string) {
	var err error
	for attempt := range ackTries {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond) // a pause between tries, not a synchronisation
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pipe := r.s.client.Pipeline()
		for stream, ids := range batch {
			pipe.XAck(ctx, stream, r.s.cfg.Group, ids...)
		}
		_, err = pipe.Exec(ctx)
		cancel()
		if err == nil {
			break
		}
	}
	for stream, ids := range batch {
		r.release(stream, ids...)
	}
	if err == nil {
		return
	}
	n := 0
	for _, ids := range batch {
		n += len(ids)
	}
	r.eh(r.ctx, fmt.Errorf("redis: acknowledging %d entries of group %q failed %d times (they stay pending and will be redelivered): %w", n, r.s.cfg.Group, ackTries, err), nil)
}

const ackTries = 5
