package webhook

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// redisLogJanitorEvery is how often Record runs the janitor (see
// [RedisAttemptLog.Trim]) at most, per process, and how long an index
// stream goes unwritten before the janitor trims it.
const redisLogJanitorEvery = time.Minute

// redisLogTrimIndexSrc is the janitor's step for one index: KEYS[1] the
// index, KEYS[2] the index set, KEYS[3] the main stream; ARGV[1] the
// index's member in the set, ARGV[2] the age trim's MINID. It trims the
// index exactly to the main stream's oldest entry and to MaxAge, and
// deletes it when that leaves it empty. A key of another type is left
// alone, only its member removed.
const redisLogTrimIndexSrc = `
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'stream' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)[1]
if first then redis.call('XTRIM', KEYS[1], 'MINID', first[1]) end
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[2])
if not first or redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0
`

// ageMinID is the ID below which attempts are past MaxAge at now.
func (l *RedisAttemptLog) ageMinID(now time.Time) string {
	return strconv.FormatInt(max(now.Add(-l.maxAge).UnixMilli(), 0), 10) + "-0"
}

// Trim trims the main stream by age and runs the janitor now: the
// subscription and outcome indexes not written in the last minute are
// trimmed to the main stream's oldest entry and MaxAge, and deleted when
// that leaves them empty; the events none of whose attempts are left are
// deleted with their indexes. Record does both on its own; a process
// that stops recording while others query may call Trim now and then.
func (l *RedisAttemptLog) Trim(ctx context.Context) error {
	now := l.now()
	minID := l.ageMinID(now)
	if err := l.client.XTrimMinIDApprox(ctx, l.mainKey(), minID, 0).Err(); err != nil && !isWrongType(err) {
		return l.redisError(ctx, "trimming", err)
	}
	l.mu.Lock()
	l.lastJanitor = now
	l.mu.Unlock()
	return l.janitor(ctx, now)
}

// janitor trims the indexes the index set says were not written since a
// minute before now, then drops the events whose attempts are gone.
func (l *RedisAttemptLog) janitor(ctx context.Context, now time.Time) error {
	until := strconv.FormatInt(now.Add(-redisLogJanitorEvery).UnixMilli(), 10)
	minID := l.ageMinID(now)
	members, err := l.client.ZRangeByScore(ctx, l.indexSet(), &goredis.ZRangeBy{Min: "-inf", Max: "(" + until}).Result()
	if err != nil {
		if isWrongType(err) {
			return nil
		}
		return l.redisError(ctx, "trimming", err)
	}
	subs, outs := l.prefix+":s:", l.prefix+":o:"
	const chunk = 256
	for len(members) > 0 {
		n := min(len(members), chunk)
		_, err := l.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, m := range members[:n] {
				if !strings.HasPrefix(m, subs) && !strings.HasPrefix(m, outs) {
					p.ZRem(ctx, l.indexSet(), m) // not one of ours: never touch the key
					continue
				}
				p.Eval(ctx, redisLogTrimIndexSrc, []string{m, l.indexSet(), l.mainKey()}, m, minID) // in a pipeline, EVALSHA could not fall back
			}
			return nil
		})
		if err != nil && !isWrongType(err) {
			return l.redisError(ctx, "trimming", err)
		}
		members = members[n:]
	}
	return l.dropEvents(ctx, now)
}

// redisLogDropEventSrc drops an event whose attempts are all gone: KEYS
// its record, its index and the event set; ARGV its member of the set and
// the ms its score must be below, checked again here, as an attempt of
// it may have been recorded since the janitor read the set.
const redisLogDropEventSrc = `
local s = redis.call('ZSCORE', KEYS[3], ARGV[1])
if s and tonumber(s) < tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 1
end
return 0
`

// dropEvents deletes the events, and their indexes, whose newest attempt
// is older than the main stream's oldest attempt or MaxAge.
func (l *RedisAttemptLog) dropEvents(ctx context.Context, now time.Time) error {
	until := max(now.Add(-l.maxAge).UnixMilli(), 0)
	first, err := l.client.XRangeN(ctx, l.mainKey(), "-", "+", 1).Result()
	switch {
	case isWrongType(err):
	case err != nil:
		return l.redisError(ctx, "trimming", err)
	case len(first) > 0:
		if id, ok := parseLogID(first[0].ID); ok && id.ms <= math.MaxInt64 {
			until = max(until, int64(id.ms))
		}
	}
	const chunk = 1000
	for {
		members, err := l.client.ZRangeByScore(ctx, l.eventSet(), &goredis.ZRangeBy{Min: "-inf", Max: "(" + strconv.FormatInt(until, 10), Count: chunk}).Result()
		switch {
		case isWrongType(err):
			return nil
		case err != nil:
			return l.redisError(ctx, "trimming", err)
		case len(members) == 0:
			return nil
		}
		cmds, err := l.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, m := range members {
				p.Eval(ctx, redisLogDropEventSrc, []string{l.prefix + ":ev:" + m, l.prefix + ":e:" + m, l.eventSet()}, m, until)
			}
			return nil
		})
		if err != nil && !isWrongType(err) {
			return l.redisError(ctx, "trimming", err)
		}
		dropped := 0
		for _, c := range cmds {
			if n, _ := c.(*goredis.Cmd).Int(); n == 1 {
				dropped++
			}
		}
		if len(members) < chunk || dropped == 0 {
			return nil
		}
	}
}
