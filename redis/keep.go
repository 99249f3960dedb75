package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
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

// Forgetting idle consumers: a consumer name that changes from run to run
// (the default, host and pid) leaves one consumer behind in the group per
// run. The subscriber removes, now and then, those of the group on its
// streams that have been idle for ForgetIdleConsumers and hold no pending
// entry.

const (
	// defaultForgetIdle is the default of ForgetIdleConsumers.
	defaultForgetIdle = time.Hour
	// forgetAtMost is the longest wait between two looks for idle
	// consumers.
	forgetAtMost = 5 * time.Minute
	// forgetBudget bounds one look over every stream; what is left is
	// looked at next time.
	forgetBudget = 5 * time.Second
	// forgetChunk bounds the consumers one script call removes.
	forgetChunk = 100
	// forgetRecheckMax is the number of consumers in a group above which
	// the script does not read XINFO CONSUMERS again to check idleness
	// (that read is linear in them, and the script holds the server);
	// the figure read just before then decides alone.
	forgetRecheckMax = 1000
)

// forgetEvery is how often a run looks for idle consumers to remove.
func (s *Subscriber) forgetEvery() time.Duration {
	return min(forgetAtMost, s.cfg.ForgetIdleConsumers)
}

// forgetScript removes from a group those of the named consumers that
// hold no pending entry, in one atomic step with the check, so that no
// entry pending with a consumer is ever dropped with it. KEYS[1] is the
// stream, then come ARGV[3] lease keys per name (the name's lease beside
// the stream, and beside the subscriber's first stream when that key
// shares the stream's slot). ARGV is the group, the least idle time in
// ms, the number of lease keys per name, a flag asking to check idleness
// again with XINFO CONSUMERS (otherwise the caller's figure decides),
// then the names. It returns one word per name: "removed", "pending",
// "leased" (a lease key exists), "active" (idle less than asked now) or
// "gone" (no such consumer).
var forgetScript = goredis.NewScript(`
local idle
if ARGV[4] == '1' then
  local info = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
  if type(info) == 'table' and not info.err then
    idle = {}
    for _, c in ipairs(info) do
      local name, ms
      for j = 1, #c - 1, 2 do
        if c[j] == 'name' then name = c[j + 1] elseif c[j] == 'idle' then ms = c[j + 1] end
      end
      if name and ms then idle[name] = tonumber(ms) end
    end
  end
end
local least = tonumber(ARGV[2])
local per = tonumber(ARGV[3])
local out = {}
for i = 5, #ARGV do
  local name = ARGV[i]
  local why
  for j = 1, per do
    if not why and redis.call('EXISTS', KEYS[1 + (i - 5) * per + j]) == 1 then why = 'leased' end
  end
  if why then
  elseif idle and idle[name] == nil then
    why = 'gone'
  elseif idle and idle[name] < least then
    why = 'active'
  elseif #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, name) > 0 then
    why = 'pending'
  else
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    why = 'removed'
  end
  out[#out + 1] = why
end
return out
`)

// forget runs every forgetEvery (±20%) while the run lasts: it removes
// idle consumers with nothing pending from the group on each stream. A
// failure is logged and the next look tries again; consuming goes on.
func (r *run) forget() {
	defer r.loops.Done()
	every := r.s.forgetEvery()
	streams := r.s.cfg.Streams
	for round := 0; r.pause(time.Duration(float64(every) * (0.8 + 0.4*rand.Float64()))); round++ {
		ctx, cancel := context.WithTimeout(r.life, forgetBudget)
		// Each look starts at the next stream, so that one cut short by
		// its time bound leaves a different stream for the next.
		for i := range streams {
			if ctx.Err() != nil {
				break
			}
			stream := streams[(round+i)%len(streams)]
			removed, err := r.s.forgetIdle(ctx, stream, r.s.cfg.ForgetIdleConsumers)
			log := r.s.cfg.Logger
			switch {
			case err != nil && r.life.Err() != nil:
			case err != nil && (isNoGroup(err) || isNoKey(err)):
				// The reader makes the group again.
				log.Debug("redis: not looking for idle consumers: no group", "stream", stream, "group", r.s.cfg.Group, "err", err)
			case err != nil:
				log.Warn("redis: removing idle consumers from the group", "stream", stream, "group", r.s.cfg.Group, "consumer", r.s.cfg.Consumer, "removed", len(removed), "err", err)
			default:
				log.Debug("redis: looked for idle consumers with nothing pending to remove from the group", "stream", stream, "group", r.s.cfg.Group, "removed", len(removed), "names", truncateNames(removed))
			}
		}
		cancel()
	}
}

// forgetIdle removes from the group on stream the consumers other than
// this subscriber's own that have been idle at least idle, hold no
// pending entry and whose name's lease is not held. It returns the names
// it removed, also when it stopped on an error.
func (s *Subscriber) forgetIdle(ctx context.Context, stream string, idle time.Duration) (removed []string, err error) {
	consumers, err := s.client.XInfoConsumers(ctx, stream, s.cfg.Group).Result()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, c := range consumers {
		if c.Name != s.cfg.Consumer && c.Pending == 0 && c.Idle >= idle {
			names = append(names, c.Name)
		}
	}
	// A subscriber leases its name beside its first stream, which may
	// not be this one: both places are checked here, and again by the
	// script where the key shares the stream's slot (always on a single
	// server).
	firstInScript := true
	switch s.client.(type) {
	case *goredis.ClusterClient, *goredis.Ring:
		firstInScript = hashTag(stream) == hashTag(s.cfg.Streams[0])
	}
	leases := func(name string) (inScript, all []string) {
		here, first := s.leaseKey(stream, name), s.leaseKey(s.cfg.Streams[0], name)
		switch {
		case first == here:
			return []string{here}, []string{here}
		case firstInScript:
			return []string{here, first}, []string{here, first}
		}
		return []string{here}, []string{here, first}
	}
	recheck := "0"
	if len(consumers) <= forgetRecheckMax {
		recheck = "1"
	}
	for len(names) > 0 {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		chunk := names[:min(len(names), forgetChunk)]
		names = names[len(chunk):]
		free, err := s.unleased(ctx, chunk, leases)
		if err != nil {
			return removed, err
		}
		if len(free) == 0 {
			continue
		}
		keys := []string{stream}
		per, _ := leases(free[0])
		args := []any{s.cfg.Group, idle.Milliseconds(), len(per), recheck}
		for _, n := range free {
			inScript, _ := leases(n)
			keys = append(keys, inScript...)
			args = append(args, n)
		}
		outcome, err := forgetScript.Run(ctx, s.client, keys, args...).StringSlice()
		if err != nil {
			return removed, err
		}
		for i, o := range outcome {
			if o == "removed" && i < len(free) {
				removed = append(removed, free[i])
			}
		}
	}
	return removed, nil
}

// unleased returns those of names none of whose lease keys exists.
func (s *Subscriber) unleased(ctx context.Context, names []string, leases func(string) (inScript, all []string)) ([]string, error) {
	cmds := make([][]*goredis.IntCmd, len(names))
	_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, n := range names {
			_, all := leases(n)
			for _, k := range all {
				cmds[i] = append(cmds[i], p.Exists(ctx, k))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var free []string
next:
	for i, n := range names {
		for _, c := range cmds[i] {
			if c.Val() != 0 {
				continue next
			}
		}
		free = append(free, n)
	}
	return free, nil
}

// isNoKey reports an error about a stream that does not exist.
func isNoKey(err error) bool { return err != nil && strings.Contains(err.Error(), "no such key") }

// truncateNames lists a few of names for a log line.
func truncateNames(names []string) string {
	const few = 10
	out := make([]string, 0, few)
	for _, n := range names[:min(len(names), few)] {
		out = append(out, truncate(n))
	}
	s := strings.Join(out, ", ")
	if len(names) > few {
		s += fmt.Sprintf(" and %d more", len(names)-few)
	}
	return s
}
