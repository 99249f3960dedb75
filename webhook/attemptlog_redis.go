package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
)

// DefaultRedisAttemptLogMaxLen is how many attempts a [RedisAttemptLog]
// keeps when its MaxLen is 0.
const DefaultRedisAttemptLogMaxLen = 1000000

// RedisAttemptLog is an [AttemptLog] in Redis, shared by every replica of
// the bridge. Make it with [NewRedisAttemptLog]. It needs Redis 7.0 or
// later.
//
// # Layout
//
// Every key starts with the configured Prefix, so that a hash tag in it
// ("{events}:webhook:log") keeps all of them in one Cluster slot:
//
//   - <prefix>:a, the main stream: one entry per attempt, its "j" field
//     the attempt's JSON without its ID. The entry ID is the attempt ID,
//     "<ms>-<seq>", the ms the recording process's clock (kept rising by
//     the stream when clocks disagree).
//   - <prefix>:s:<subscription ID> and <prefix>:o:<outcome>, index
//     streams: one entry per attempt of that subscription or outcome,
//     with the main entry's ID as its own (so a cursor means the same in
//     every index) and small fields "o" (outcome) and "c" (status) that a
//     query filters on before it reads the full records.
//   - <prefix>:e:<event ID>, the event's index: a sorted set (an event
//     has few attempts, and a small sorted set takes a tenth of the
//     memory of a small stream) whose members, of score 0, are the
//     attempt ID written as 40 digits (its ms and its sequence number,
//     20 digits each, so that members sort by ID), ':', the status, ':'
//     and the outcome. It expires MaxAge after its last write.
//   - <prefix>:ev:<event ID>, the event's JSON, payload included,
//     expiring MaxAge after the last write of it or of an attempt of it.
//   - <prefix>:idx, a sorted set of the subscription and outcome index
//     keys scored by the ms of their last write, for the janitor.
//   - <prefix>:evs, a sorted set of the events (their IDs as they are in
//     keys) scored by the ms of their newest attempt's ID, for the
//     janitor.
//
// IDs are written into keys as they are, except '%', '{' and '}', which
// are percent-encoded, so that no ID can make a hash tag of its own; the
// kind of a key ("a", "idx", "evs", "s", "o", "e", "ev") ends at the ':' after
// it, so no ID makes one kind of key look like another.
//
// # Bounds
//
// Record writes a batch in one Lua script, atomically, then trims the
// main stream to about MaxLen entries (XTRIM MAXLEN ~) and to those at
// most MaxAge old (XTRIM MINID ~). Both trims drop whole stream nodes, so
// the stream may hold up to a node more (stream-node-max-entries, 100 by
// default, fewer for large attempts: stream-node-max-bytes); Query never
// returns an attempt older than MaxAge.
//
// Each index written to is trimmed in that script to the main stream's
// oldest ID and to MaxAge (an index stream in whole nodes, an event index
// exactly). The janitor, which Record runs at most once a minute per
// process (and [RedisAttemptLog.Trim] whenever the caller likes), trims
// exactly the subscription and outcome indexes not written in the last
// minute, and deletes those left empty along with their member of
// <prefix>:idx. So an index stream holds, beyond attempts the main stream
// holds, at most a node and what the main stream dropped since the index
// was last trimmed: while Record runs, what it dropped in the last two
// minutes or so. An event index holds beyond what the main stream holds
// only what it dropped since the index was written. The janitor deletes
// an event and its index once the main stream holds no attempt as new as
// the event's newest (within a minute or so while Record runs), and both
// expire MaxAge after their last write anyway. An index entry whose
// attempt is gone is skipped.
//
// Memory: an attempt takes its JSON plus some 15 bytes in the main
// stream and 15 to 60 in each of its three indexes; a stream that is not
// empty takes at least about 4.7 KB (Redis preallocates its node), so
// each subscription with attempts costs that much besides; an event
// index of a few attempts takes some 400 bytes.
//
// The caller's client is never closed here.
type RedisAttemptLog struct {
	client goredis.UniversalClient
	prefix string
	maxLen int64
	maxAge time.Duration
	now    func() time.Time

	mu          sync.Mutex
	lastJanitor time.Time
}

// RedisAttemptLogConfig configures a [RedisAttemptLog].
type RedisAttemptLogConfig struct {
	// Client is the caller's; it is never closed here.
	Client goredis.UniversalClient
	// Prefix starts every key of the log, "{events}:webhook:log" say.
	// On a Redis Cluster it must hold a hash tag ("{...}"), which keeps
	// every key in one slot; required.
	Prefix string
	// MaxLen bounds the attempts kept, to about this many (see
	// [RedisAttemptLog]); the oldest go first.
	// default: DefaultRedisAttemptLogMaxLen
	MaxLen int64
	// MaxAge bounds how long an attempt, an event and an index are kept.
	// default: DefaultAttemptLogMaxAge
	MaxAge time.Duration
}

// NewRedisAttemptLog returns a log over cfg's keys; a missing Client or
// Prefix, negative bounds, and a Prefix without a hash tag on a Cluster
// client are errors.
func NewRedisAttemptLog(cfg RedisAttemptLogConfig) (*RedisAttemptLog, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("webhook: RedisAttemptLogConfig: Client is nil")
	case cfg.Prefix == "":
		return nil, errors.New("webhook: RedisAttemptLogConfig: Prefix is empty")
	case cfg.MaxLen < 0:
		return nil, fmt.Errorf("webhook: RedisAttemptLogConfig: MaxLen %d is negative", cfg.MaxLen)
	case cfg.MaxAge < 0:
		return nil, fmt.Errorf("webhook: RedisAttemptLogConfig: MaxAge %s is negative", cfg.MaxAge)
	case cfg.MaxAge > 0 && cfg.MaxAge < time.Millisecond:
		return nil, fmt.Errorf("webhook: RedisAttemptLogConfig: MaxAge %s is under a millisecond", cfg.MaxAge)
	}
	if _, cluster := cfg.Client.(*goredis.ClusterClient); cluster && !hasHashTag(cfg.Prefix) {
		return nil, fmt.Errorf("webhook: RedisAttemptLogConfig: Prefix %q has no hash tag, which a Cluster needs to keep the log's keys in one slot", cfg.Prefix)
	}
	if cfg.MaxLen == 0 {
		cfg.MaxLen = DefaultRedisAttemptLogMaxLen
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultAttemptLogMaxAge
	}
	return &RedisAttemptLog{client: cfg.Client, prefix: cfg.Prefix, maxLen: cfg.MaxLen, maxAge: cfg.MaxAge, now: time.Now}, nil
}

// hasHashTag reports whether every key starting with prefix hashes by a
// tag within prefix: a '{' followed, later in prefix, by a '}' with
// something between them.
func hasHashTag(prefix string) bool {
	i := strings.IndexByte(prefix, '{')
	if i < 0 {
		return false
	}
	j := strings.IndexByte(prefix[i+1:], '}')
	return j > 0
}

// redisLogKeyPart is an ID as it goes into a key: '%', '{' and '}'
// percent-encoded.
func redisLogKeyPart(id string) string {
	if !strings.ContainsAny(id, "%{}") {
		return id
	}
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		switch c := id[i]; c {
		case '%', '{', '}':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (l *RedisAttemptLog) mainKey() string  { return l.prefix + ":a" }
func (l *RedisAttemptLog) indexSet() string { return l.prefix + ":idx" }
func (l *RedisAttemptLog) eventSet() string { return l.prefix + ":evs" }
func (l *RedisAttemptLog) subKey(id string) string {
	return l.prefix + ":s:" + redisLogKeyPart(id)
}
func (l *RedisAttemptLog) outcomeKey(o Outcome) string {
	return l.prefix + ":o:" + redisLogKeyPart(string(o))
}
func (l *RedisAttemptLog) eventIndexKey(id pubsub.ID) string {
	return l.prefix + ":e:" + redisLogKeyPart(string(id))
}
func (l *RedisAttemptLog) eventKey(id pubsub.ID) string {
	return l.prefix + ":ev:" + redisLogKeyPart(string(id))
}

// redisLogRecord writes one batch. KEYS[1] is the main stream, KEYS[2]
// the index set, KEYS[3] the event set, KEYS[4...] the other keys, each
// once. ARGV: the ms of the new IDs, MaxLen, the age trim's MINID, the
// TTL in ms, the number of events, of attempts; then a kind per key of
// KEYS[4...] ("z": an index stream the index set tracks, "e": an event
// index, "v" and the event's member of the event set: an event); then per
// event its key's position in KEYS and its JSON; then per attempt its
// JSON, the positions of its subscription, outcome and event indexes and
// of its event (0: none), its outcome and its status.
//
// Index writes, and those of the index and event sets, go through pcall:
// a key someone broke (another type, an entry ID past ours) loses that
// entry, never the batch. Once an attempt is written nothing may fail the
// script: Redis does not undo a script's writes, and a refused batch is
// retried, which would record its attempts again.
var redisLogRecord = goredis.NewScript(`
local main, set, evset = KEYS[1], KEYS[2], KEYS[3]
local ms, maxlen, minid, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ne, na = tonumber(ARGV[5]), tonumber(ARGV[6])
local function fixed(id)
  local a, b = string.match(id, '^(%d+)-(%d+)$')
  return string.format('%020d%020d', tonumber(a), tonumber(b))
end
local p = 7
local kinds = {}
for k = 4, #KEYS do
  kinds[k] = ARGV[p]
  p = p + 1
end
local events = {}
for i = 1, ne do
  local k = tonumber(ARGV[p])
  redis.call('SET', KEYS[k], ARGV[p + 1], 'PX', ttl)
  events[k] = true
  p = p + 2
end
local base
local touched = {}
for i = 1, na do
  local id
  if base == nil then
    id = redis.pcall('XADD', main, ms .. '-*', 'j', ARGV[p])
    if type(id) == 'table' and id.err then
      -- The stream's last ID is past ms: another clock is ahead of
      -- ours. Go on from that ID's ms.
      local info = redis.call('XINFO', 'STREAM', main)
      local last
      for j = 1, #info, 2 do
        if info[j] == 'last-generated-id' then last = info[j + 1] end
      end
      id = redis.call('XADD', main, string.match(last, '^(%d+)-') .. '-*', 'j', ARGV[p])
    end
    base = string.match(id, '^(%d+)-')
  else
    id = redis.call('XADD', main, base .. '-*', 'j', ARGV[p])
  end
  local o, c = ARGV[p + 5], ARGV[p + 6]
  for j = 1, 3 do
    local k = tonumber(ARGV[p + j])
    if k > 0 then
      if kinds[k] == 'e' then
        redis.pcall('ZADD', KEYS[k], 0, fixed(id) .. ':' .. c .. ':' .. o)
      else
        redis.pcall('XADD', KEYS[k], id, 'o', o, 'c', c)
      end
      touched[k] = true
    end
  end
  local ev = tonumber(ARGV[p + 4])
  if ev > 0 then
    redis.pcall('PEXPIRE', KEYS[ev], ttl)
    events[ev] = true
  end
  p = p + 7
end
-- The event set scores an event by the ms of its newest attempt's ID
-- (past ms when another clock is ahead), else of its record's write.
for k in pairs(events) do
  redis.pcall('ZADD', evset, base or ms, string.sub(kinds[k], 2))
end
redis.call('XTRIM', main, 'MAXLEN', '~', maxlen)
redis.call('XTRIM', main, 'MINID', '~', minid)
local first = redis.call('XRANGE', main, '-', '+', 'COUNT', 1)[1]
local floor = minid
if first then floor = first[1] end
local ffloor, fminid = fixed(floor), fixed(minid)
for k in pairs(touched) do
  if kinds[k] == 'e' then
    redis.pcall('ZREMRANGEBYLEX', KEYS[k], '-', '(' .. ffloor)
    redis.pcall('ZREMRANGEBYLEX', KEYS[k], '-', '(' .. fminid)
    redis.pcall('PEXPIRE', KEYS[k], ttl)
  else
    redis.pcall('XTRIM', KEYS[k], 'MINID', '~', floor)
    redis.pcall('XTRIM', KEYS[k], 'MINID', '~', minid)
    redis.pcall('ZADD', set, ms, KEYS[k])
  end
end
return na
`)

// Record implements [AttemptLog]: the batch in one script call. It runs
// the janitor at most once a minute afterwards; the janitor's errors are
// not Record's (the batch is recorded), it tries again a minute later.
func (l *RedisAttemptLog) Record(ctx context.Context, b AttemptBatch) error {
	if len(b.Events) == 0 && len(b.Attempts) == 0 {
		return ctx.Err()
	}
	now := l.now()
	keys := []string{l.mainKey(), l.indexSet(), l.eventSet()}
	var kinds []any
	pos := map[string]int{}
	key := func(k, kind string) int {
		if i, ok := pos[k]; ok {
			return i
		}
		keys = append(keys, k)
		kinds = append(kinds, kind)
		pos[k] = len(keys)
		return len(keys)
	}
	var evArgs, atArgs []any
	for _, ev := range b.Events {
		j, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("webhook: delivery log: event %q: %w", ev.ID, err)
		}
		evArgs = append(evArgs, key(l.eventKey(ev.ID), "v"+redisLogKeyPart(string(ev.ID))), j)
	}
	for _, a := range b.Attempts {
		a.ID = ""
		j, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("webhook: delivery log: attempt of event %q: %w", a.EventID, err)
		}
		if rest, ok := bytes.CutPrefix(j, []byte(`{"id":"",`)); ok {
			j = append([]byte{'{'}, rest...) // the entry ID is the attempt's
		}
		sub, ei, ev := 0, 0, 0
		if a.SubscriptionID != "" {
			sub = key(l.subKey(a.SubscriptionID), "z")
		}
		if a.EventID != "" {
			ei = key(l.eventIndexKey(a.EventID), "e")
			ev = key(l.eventKey(a.EventID), "v"+redisLogKeyPart(string(a.EventID)))
		}
		out := key(l.outcomeKey(a.Outcome), "z")
		atArgs = append(atArgs, j, sub, out, ei, ev, string(a.Outcome), a.Status)
	}
	ms := max(now.UnixMilli(), 0)
	minID := l.ageMinID(now)
	args := make([]any, 0, 6+len(kinds)+len(evArgs)+len(atArgs))
	args = append(args, ms, l.maxLen, minID, l.maxAge.Milliseconds(), len(b.Events), len(b.Attempts))
	args = append(append(append(args, kinds...), evArgs...), atArgs...)
	if err := redisLogRecord.Run(ctx, l.client, keys, args...).Err(); err != nil {
		return l.redisError(ctx, "recording", err)
	}
	l.mu.Lock()
	due := now.Sub(l.lastJanitor) >= redisLogJanitorEvery || now.Before(l.lastJanitor)
	if due {
		l.lastJanitor = now
	}
	l.mu.Unlock()
	if due {
		_ = l.janitor(ctx, now)
	}
	return nil
}

// Event implements [AttemptLog]. A record that does not decode is as
// good as none.
func (l *RedisAttemptLog) Event(ctx context.Context, id pubsub.ID) (pubsub.Event, error) {
	raw, err := l.client.Get(ctx, l.eventKey(id)).Bytes()
	switch {
	case errors.Is(err, goredis.Nil) || isWrongType(err):
		return pubsub.Event{}, fmt.Errorf("%w: event %q", ErrNotFound, id)
	case err != nil:
		return pubsub.Event{}, l.redisError(ctx, "reading", err)
	}
	var ev pubsub.Event
	if json.Unmarshal(raw, &ev) != nil || ev.ID != id {
		return pubsub.Event{}, fmt.Errorf("%w: event %q (its record does not decode)", ErrNotFound, id)
	}
	return ev, nil
}

// Len implements [AttemptLog]: the main stream's XLEN, which may hold up
// to a stream node more than MaxLen, and entries not yet trimmed by age.
func (l *RedisAttemptLog) Len(ctx context.Context) (int64, error) {
	n, err := l.client.XLen(ctx, l.mainKey()).Result()
	if err != nil {
		return 0, l.redisError(ctx, "reading", err)
	}
	return n, nil
}

func (l *RedisAttemptLog) redisError(ctx context.Context, doing string, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return ctx.Err()
	}
	return fmt.Errorf("webhook: %s the delivery log at %q: %w", doing, l.prefix, err)
}

// isWrongType reports a Redis WRONGTYPE error: a key holding something
// other than what the log or the health store keeps there.
func isWrongType(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "WRONGTYPE")
}
