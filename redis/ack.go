package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ackLinger is how long the first acknowledgement of a batch waits for
// others to join it: a millisecond more before an entry leaves the
// pending list, for far fewer XACK round trips under load.
const ackLinger = time.Millisecond

// acker acknowledges the entries of one reader group's streams (all of
// them on one server; one stream on a Cluster), so that a Cluster master
// that stops answering holds up the acknowledgements of its own streams
// only, and the workers go on with the others.
type acker struct {
	r       *run
	in      chan ack
	failing bool // the last batch failed; touched by the acker's goroutine only
}

// startAckers gives every stream the acknowledger of its reader group
// and starts them.
func (r *run) startAckers(groups [][]string) {
	r.ackers = make(map[string]*acker, len(r.s.cfg.Streams))
	r.ackList = make([]*acker, 0, len(groups))
	for _, streams := range groups {
		// Room for what one reader can have in flight (a read being
		// handed out, the queue, the handlers), so that workers seldom
		// wait on a master that stopped answering.
		room := r.s.cfg.BatchSize + 2*r.s.cfg.Concurrency
		a := &acker{r: r, in: make(chan ack, room), failing: r.s.unreachable.Load()}
		for _, s := range streams {
			r.ackers[s] = a
		}
		r.ackList = append(r.ackList, a)
		r.ackWG.Add(1)
		go func() {
			defer r.ackWG.Done()
			a.run()
		}()
	}
}

// queueAck hands the acknowledgement of an entry of stream to its
// acknowledger, waiting while that one's queue is full.
func (r *run) queueAck(stream, id string) {
	r.ackers[stream].in <- ack{stream, id}
}

// closeAckers ends the acknowledgers once they have written what they
// were given, and records whether Redis answered the last of them.
func (r *run) closeAckers() {
	for _, a := range r.ackList {
		close(a.in)
	}
	r.ackWG.Wait()
	failing := false
	for _, a := range r.ackList {
		failing = failing || a.failing
	}
	r.s.unreachable.Store(failing)
}

// run writes acknowledgements in batches of up to BatchSize, each sent at
// most ackLinger after its first entry, in one pipeline.
func (a *acker) run() {
	batch := make(map[string][]string)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for first := range a.in {
		batch[first.stream] = append(batch[first.stream], first.id)
		linger.Reset(ackLinger)
		open := true
	collect:
		for n := 1; n < a.r.s.cfg.BatchSize; n++ {
			select {
			case more, ok := <-a.in:
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
		a.flush(batch)
		clear(batch)
		if !open {
			return
		}
	}
}

// flush writes a batch of acknowledgements, trying again while Redis
// does not take them (unreachable, hung, a Cluster down or failing over)
// for as long as the run goes on: given up, they would be delivered
// again, every entry of a Cluster master that hung for a while. It gives
// up on a refusal that does not pass (the stream made another type).
// While stopping it tries once, and not at all after a failure, so that
// Close stays bounded. What was not acknowledged stays pending and is
// delivered again.
func (a *acker) flush(batch map[string][]string) {
	r := a.r
	err := errors.New("no answer from Redis while stopping")
	for attempt := 0; ; attempt++ {
		if r.life.Err() != nil && (attempt > 0 || a.failing) {
			break
		}
		if attempt > 0 {
			t := time.NewTimer(min(time.Duration(attempt)*200*time.Millisecond, 2*time.Second)) // a pause between tries
			select {
			case <-t.C:
			case <-r.life.Done():
			}
			t.Stop()
			if r.life.Err() != nil {
				break
			}
		}
		if err = a.write(batch); err == nil || lasting(err) {
			break
		}
		if attempt+1 == ackReportAfter || (attempt+1)%ackReportEvery == 0 {
			r.eh(r.ctx, fmt.Errorf("redis: acknowledging %d entries of group %q: %w; trying again (they stay pending meanwhile)", count(batch), r.s.cfg.Group, err), nil)
		}
	}
	for stream, ids := range batch {
		r.settle(stream, ids...)
	}
	a.failing = err != nil
	if err != nil {
		r.eh(r.ctx, fmt.Errorf("redis: acknowledging %d entries of group %q failed (they stay pending and will be redelivered): %w", count(batch), r.s.cfg.Group, err), nil)
	}
}

// ackReportAfter is the failed tries (about 2s) after which the
// ErrorHandler hears that acknowledgements wait; then every
// ackReportEvery tries (a minute).
const (
	ackReportAfter = 5
	ackReportEvery = 30
)

// write sends one XACK per stream of batch in one pipeline; a stream
// without its group counts as acknowledged (nothing is pending there).
func (a *acker) write(batch map[string][]string) error {
	r := a.r
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pipe := r.s.client.Pipeline()
	for stream, ids := range batch {
		pipe.XAck(ctx, stream, r.s.cfg.Group, ids...)
	}
	if _, err := pipe.Exec(ctx); err != nil && !isNoGroup(err) {
		return err
	}
	return nil
}

// lasting reports whether err is Redis refusing a command for good (the
// key made another type, say), rather than a fault that passes: a lost
// connection, a timeout, a Cluster down or failing over, a server
// loading its data or out of clients.
func lasting(err error) bool {
	var reply goredis.Error
	if !errors.As(err, &reply) {
		return false
	}
	passing := goredis.IsClusterDownError(err) || goredis.IsTryAgainError(err) || goredis.IsLoadingError(err) ||
		goredis.IsReadOnlyError(err) || goredis.IsMasterDownError(err) || goredis.IsMaxClientsError(err) ||
		goredis.IsNoReplicasError(err) || goredis.IsOOMError(err)
	return !passing
}

// count is the number of entries in batch.
func count(batch map[string][]string) int {
	n := 0
	for _, ids := range batch {
		n += len(ids)
	}
	return n
}

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
