package redis

import (
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// keepEvery is how often the keeper renews held entries and the lease on
// the consumer name: a quarter of ClaimIdle, so an entry waiting in this
// run's queue is never idle long enough for another consumer's
// XAUTOCLAIM, and a third of the lease at most.
func (r *run) keepEvery() time.Duration {
	return max(min(r.s.cfg.ClaimIdle/4, r.s.nameLeaseTTL()/3), time.Millisecond)
}

// refreshChunk bounds the entries renewed by one script call.
const refreshChunk = 256

// keep runs every keepEvery: it renews the entries the run holds (queued,
// handled, waiting for a retry) so that no other consumer takes them over
// while this one is alive; marks those another consumer holds now, so no
// handler of this run gets them; wakes the reader when this consumer's
// pending list holds entries the run does not (a lost reply, an abandoned
// handler); and notes how far the group has delivered, for making it
// again should it vanish.
func (r *run) keep() {
	defer r.loops.Done()
	every := r.keepEvery()
	for r.pause(every) {
		r.keepName()
		for _, stream := range r.s.cfg.Streams {
			r.renew(stream, time.Now().Add(-every))
			r.sweep(stream, 2*every)
			if err := r.s.notePosition(r.life, stream); err != nil && r.life.Err() == nil && !isNoGroup(err) {
				r.eh(r.ctx, fmt.Errorf("redis: reading the position of group %q on stream %q: %w", r.s.cfg.Group, stream, err), nil)
			}
		}
	}
}

// renew renews the entries of stream last confirmed before t.
func (r *run) renew(stream string, t time.Time) {
	stale := r.held.stale(stream, t)
	for len(stale) > 0 {
		n := min(len(stale), refreshChunk)
		if err := r.refreshEntries(r.life, stream, stale[:n]); err != nil {
			if r.life.Err() == nil && !isNoGroup(err) {
				r.eh(r.ctx, fmt.Errorf("redis: renewing %d held entries of stream %q: %w", len(stale), stream, err), nil)
			}
			return
		}
		stale = stale[n:]
	}
}

// sweep looks for entries pending with this consumer, idle at least idle,
// that the run does not hold, and asks the reader to claim them back.
func (r *run) sweep(stream string, idle time.Duration) {
	pend, err := r.s.client.XPendingExt(r.life, &goredis.XPendingExtArgs{
		Stream: stream, Group: r.s.cfg.Group, Idle: idle, Start: "-", End: "+",
		Count: int64(r.s.cfg.BatchSize), Consumer: r.s.cfg.Consumer,
	}).Result()
	if err != nil {
		return // the reader reports what is wrong with the stream
	}
	for _, p := range pend {
		if !r.held.has(stream, p.ID) {
			select {
			case r.rescan[stream] <- struct{}{}:
			default:
			}
			return
		}
	}
}

// stillOurs reports whether j may be handed to a handler: the run has not
// learned that another consumer holds it, and its hold is fresh, or
// confirmed now. A run that was stalled (paused, starved, cut off) past
// half of ClaimIdle checks with Redis first. A claimed entry is always
// checked, and its delivery counted, as the handler starts.
func (r *run) stillOurs(j *job) bool {
	if !j.claimed && time.Since(j.read) < r.s.cfg.ClaimIdle/2 {
		// Read moments ago: no other consumer can have taken it yet,
		// as it has not been idle for ClaimIdle.
		return true
	}
	h, ok := r.held.get(j.stream, j.msg.ID)
	if !ok || h.lost {
		return false
	}
	if j.claimed {
		return r.start(j)
	}
	if time.Since(h.confirmed) < r.s.cfg.ClaimIdle/2 {
		return true
	}
	if err := r.refreshEntries(r.life, j.stream, []heldEntry{{j.msg.ID, h.deliveries}}); err != nil {
		// Unknown: hand it out; at worst it is handled twice, never lost.
		return true
	}
	h, ok = r.held.get(j.stream, j.msg.ID)
	return ok && !h.lost
}

// wrapf wraps err with a formatted prefix.
func wrapf(err error, format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, err)...)
}
