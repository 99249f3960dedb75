package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ackLinger is how long the first acknowledgement of a batch waits for
// others to join it: a millisecond more before an entry leaves the
// pending list, for far fewer XACK round trips under load.
const ackLinger = time.Millisecond

// Bounds on waiting for Redis to acknowledge: a batch's try, and all the
// tries made while stopping.
const (
	ackTryWait  = 5 * time.Second
	ackStopWait = 2 * time.Second
)

// acker acknowledges the entries of one reader group's streams (all of
// them on one server; one stream on a Cluster), so that a Cluster master
// that stops answering holds up the acknowledgements of its own streams
// only. Handing it an entry does not wait (see ackQueueBatches), so a
// master that hangs never blocks a worker.
type acker struct {
	r       *run
	mu      sync.Mutex
	queued  []ack
	room    *sync.Cond // broadcast when take makes room in queued
	closed  bool
	wake    chan struct{} // a token when something was queued or closed
	failing bool          // the last batch failed; touched by the acker's goroutine only
	// stopBy bounds the tries made while stopping, all batches together;
	// set by the first of them.
	stopBy time.Time
}

// startAckers gives every stream the acknowledger of its reader group
// and starts them.
func (r *run) startAckers(groups [][]string) {
	r.ackers = make(map[string]*acker, len(r.s.cfg.Streams))
	r.ackList = make([]*acker, 0, len(groups))
	for _, streams := range groups {
		a := &acker{r: r, wake: make(chan struct{}, 1)}
		a.room = sync.NewCond(&a.mu)
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

// ackQueueBatches bounds an acknowledger's queue, in batches: while Redis
// refuses acknowledgements but serves reads (an ACL without XACK), the
// workers wait once that many are queued, rather than read and hold
// entries without end. A master that hangs never fills it: its streams
// are not read meanwhile, so what is queued for them is what was in hand.
const ackQueueBatches = 100

// queueAck hands the acknowledgement of an entry of stream to its
// acknowledger; it waits only while the queue holds ackQueueBatches
// batches.
func (r *run) queueAck(stream, id string) {
	a := r.ackers[stream]
	a.mu.Lock()
	for len(a.queued) >= ackQueueBatches*r.s.cfg.BatchSize {
		a.room.Wait()
	}
	a.queued = append(a.queued, ack{stream, id})
	n := len(a.queued)
	a.mu.Unlock()
	if n == 1 || n >= r.s.cfg.BatchSize {
		a.signal()
	}
}

func (a *acker) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// take returns what is queued, up to BatchSize, and whether the acker is
// closed.
func (a *acker) take(into []ack) ([]ack, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := min(len(a.queued), a.r.s.cfg.BatchSize)
	into = append(into, a.queued[:n]...)
	a.queued = append(a.queued[:0], a.queued[n:]...)
	if len(a.queued) > 0 {
		a.signal()
	}
	if n > 0 {
		a.room.Broadcast()
	}
	return into, a.closed
}

func (a *acker) size() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queued)
}

// closeAckers ends the acknowledgers once they have written what they
// were given, and records whether Redis answered the last of them.
func (r *run) closeAckers() {
	for _, a := range r.ackList {
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		a.signal()
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
	var got []ack
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for range a.wake {
		if n := a.size(); n > 0 && n < a.r.s.cfg.BatchSize {
			linger.Reset(ackLinger)
		collect:
			for a.size() < a.r.s.cfg.BatchSize {
				select {
				case <-a.wake:
				case <-linger.C:
					break collect
				}
			}
			linger.Stop()
		}
		var closed bool
		got, closed = a.take(got[:0])
		for _, g := range got {
			batch[g.stream] = append(batch[g.stream], g.id)
		}
		if len(got) > 0 {
			a.flush(batch)
			clear(batch)
		}
		if closed && a.size() == 0 {
			return
		}
	}
}

// flush writes a batch of acknowledgements, trying again while Redis
// does not take them (unreachable, hung, busy, a Cluster down or failing
// over) for as long as the run goes on: given up, they would be delivered
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
		if attempt > 0 && !r.pause(min(time.Duration(attempt)*200*time.Millisecond, 2*time.Second)) {
			break
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

// write sends one XACK per stream of batch in one pipeline, waiting at
// most ackTryWait; while stopping, all the batches together wait at most
// ackStopWait. The streams acknowledged (or without their group: nothing
// is pending there) are settled and leave batch; what remains failed.
func (a *acker) write(batch map[string][]string) error {
	r := a.r
	wait := ackTryWait
	if r.life.Err() != nil {
		if a.stopBy.IsZero() {
			a.stopBy = time.Now().Add(ackStopWait)
		}
		if wait = time.Until(a.stopBy); wait <= 0 {
			return errNoAnswer
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), ackTryWait)
	pipe := r.s.client.Pipeline()
	cmds := make(map[string]*goredis.IntCmd, len(batch))
	for stream, ids := range batch {
		cmds[stream] = pipe.XAck(ctx, stream, r.s.cfg.Group, ids...)
	}
	err := aside(wait, func() error {
		defer cancel()
		_, err := pipe.Exec(ctx)
		return err
	})
	if errors.Is(err, errNoAnswer) {
		return err // the pipeline still runs: its commands are not to be read
	}
	err = nil
	for stream, cmd := range cmds {
		if e := cmd.Err(); e != nil && !isNoGroup(e) {
			err = firstErr(err, e)
			continue
		}
		r.settle(stream, batch[stream]...)
		delete(batch, stream)
	}
	return err
}

// firstErr returns err, or e when err is nil.
func firstErr(err, e error) error {
	if err != nil {
		return err
	}
	return e
}

// lasting reports whether err is Redis refusing a command for good (the
// key made another type, an invalid argument), rather than a fault that
// passes: a lost connection, a timeout, a Cluster down or failing over, a
// server loading its data, busy with a script, out of clients or unable
// to persist, credentials being rotated.
func lasting(err error) bool {
	var reply goredis.Error
	if !errors.As(err, &reply) {
		return false
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "WRONGTYPE") || (strings.HasPrefix(msg, "ERR ") && !goredis.IsMaxClientsError(err))
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
// the batched acknowledger should try. It waits for Redis, as the entry
// holds the run alone: acknowledged before any other handler starts, it
// is not charged a delivery should the next one crash the process.
func (r *run) ackNow(j job) bool {
	ctx, cancel := context.WithTimeout(context.Background(), ackTryWait)
	defer cancel()
	if err := r.s.client.XAck(ctx, j.stream, r.s.cfg.Group, j.msg.ID).Err(); err != nil && !isNoGroup(err) {
		return false
	}
	r.settle(j.stream, j.msg.ID)
	return true
}
