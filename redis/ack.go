package redis

import (
	"context"
	"errors"
	"fmt"
	"time"
)

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
// them even while stopping, a handled event must not be redelivered for
// want of its XACK, but then tries once, and not at all after a failure,
// so that Close stays bounded. What fails stays pending and is
// redelivered.
func (r *run) flushAcks(batch map[string][]string) {
	err := errors.New("no answer from Redis while stopping")
	for attempt := range ackTries {
		if r.life.Err() != nil && (attempt > 0 || r.s.unreachable.Load()) {
			break
		}
		if attempt > 0 {
			t := time.NewTimer(time.Duration(attempt) * 200 * time.Millisecond) // a pause between tries
			select {
			case <-t.C:
			case <-r.life.Done():
			}
			t.Stop()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pipe := r.s.client.Pipeline()
		for stream, ids := range batch {
			pipe.XAck(ctx, stream, r.s.cfg.Group, ids...)
		}
		_, err = pipe.Exec(ctx)
		cancel()
		if err == nil || isNoGroup(err) {
			// Without its group an entry is pending nowhere: nothing to
			// acknowledge.
			err = nil
			break
		}
	}
	for stream, ids := range batch {
		r.settle(stream, ids...)
	}
	r.s.unreachable.Store(err != nil)
	if err == nil {
		return
	}
	n := 0
	for _, ids := range batch {
		n += len(ids)
	}
	r.eh(r.ctx, fmt.Errorf("redis: acknowledging %d entries of group %q failed (they stay pending and will be redelivered): %w", n, r.s.cfg.Group, err), nil)
}

const ackTries = 5

// ackNow acknowledges j at once; it reports false when that failed and
// the batched acknowledger should try.
func (r *run) ackNow(j job) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.s.client.XAck(ctx, j.stream, r.s.cfg.Group, j.msg.ID).Err(); err != nil && !isNoGroup(err) {
		return false
	}
	r.settle(j.stream, j.msg.ID)
	return true
}
