package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
)

// Limits of the move script. A member's head, at most memberHead bytes,
// is what comes back to Go to name it; a member of more than maxFields
// fields is refused (Lua's unpack, which builds the XADD, cannot take
// many thousands).
const (
	memberHead = 64
	maxFields  = 2000
)

// moveDue moves the delayed events of the sorted set KEYS[1] that are due
// by ARGV[1] (Unix ms) into the stream KEYS[2], atomically, so that each is
// moved exactly once however many subscribers run it. It looks at up to
// ARGV[2] members, skipping the first ARGV[3] due ones.
//
// A member is netstrings (see packFields), after an optional unique
// prefix: a member that does not begin with an ASCII digit begins with up
// to 64 bytes ended by the first ';', which are dropped. A member that
// breaks this shape, whose fields do not pair up, or whose XADD Redis
// refuses (the stream key holds another type, say) goes to the dead-letter
// stream KEYS[3] (MAXLEN ~ ARGV[5] when that is not negative) with fields
// delayed_member, dead_reason and dead_at (ARGV[4]), and leaves the set.
// Only when that dead-letter XADD is refused too does the member stay.
//
// The parser reads each length one digit at a time, at most 10 digits,
// and moves forward by at least 3 bytes per field, so no member can make
// it loop or fail. It returns {moved, dead, stuck}: dead and stuck list,
// for each such member, its first 64 bytes, its length and the reason.
var moveDue = goredis.NewScript(`
local function parse(m)
  local size = #m
  if size == 0 then
    return nil, 'empty member'
  end
  local pos = 1
  local b = string.byte(m, 1)
  if b < 48 or b > 57 then
    local semi = string.find(m, ';', 1, true)
    if semi == nil or semi > 65 then
      return nil, "neither netstrings (a length digit first) nor a unique prefix ended by ';' within 64 bytes"
    end
    pos = semi + 1
    if pos > size then
      return nil, 'nothing after the unique prefix'
    end
  end
  local fields = {}
  while pos <= size do
    if #fields >= ` + strconv.Itoa(maxFields) + ` then
      return nil, 'more than ` + strconv.Itoa(maxFields) + ` fields'
    end
    local start, n = pos, 0
    while pos <= size do
      local c = string.byte(m, pos)
      if c < 48 or c > 57 then
        break
      end
      if pos - start >= 10 then
        return nil, 'length at byte ' .. (start - 1) .. ' has more than 10 digits'
      end
      n = n * 10 + (c - 48)
      pos = pos + 1
    end
    if pos == start then
      return nil, 'no length at byte ' .. (start - 1) .. ' (want a decimal digit)'
    end
    if pos > size or string.byte(m, pos) ~= 58 then
      return nil, "no ':' after the length at byte " .. (start - 1)
    end
    local last = pos + n
    if last + 1 > size then
      return nil, 'length ' .. n .. ' at byte ' .. (start - 1) .. ' runs past the end'
    end
    if string.byte(m, last + 1) ~= 44 then
      return nil, "no ',' at byte " .. last .. ' after a ' .. n .. '-byte value'
    end
    fields[#fields + 1] = string.sub(m, pos + 1, last)
    pos = last + 2
  end
  if #fields % 2 == 1 then
    return nil, 'odd number of fields (' .. #fields .. '), want field/value pairs'
  end
  return fields
end

local function refused(res)
  if type(res) == 'table' and res.err then
    return res.err
  end
  return nil
end

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', ARGV[3], ARGV[2])
local moved, dead, stuck = 0, {}, {}
for _, m in ipairs(due) do
  local fields, why = parse(m)
  if fields then
    local err = refused(redis.pcall('XADD', KEYS[2], '*', unpack(fields)))
    if err then
      why = 'XADD refused: ' .. err
    end
  end
  if why then
    why = 'delayed member: ' .. why
    local res
    if tonumber(ARGV[5]) >= 0 then
      res = redis.pcall('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'delayed_member', m, 'dead_reason', why, 'dead_at', ARGV[4])
    else
      res = redis.pcall('XADD', KEYS[3], '*', 'delayed_member', m, 'dead_reason', why, 'dead_at', ARGV[4])
    end
    local err = refused(res)
    if err then
      stuck[#stuck + 1] = string.sub(m, 1, ` + strconv.Itoa(memberHead) + `)
      stuck[#stuck + 1] = #m
      stuck[#stuck + 1] = why .. '; dead-letter XADD refused: ' .. err
    else
      redis.call('ZREM', KEYS[1], m)
      dead[#dead + 1] = string.sub(m, 1, ` + strconv.Itoa(memberHead) + `)
      dead[#dead + 1] = #m
      dead[#dead + 1] = why
    end
  else
    redis.call('ZREM', KEYS[1], m)
    moved = moved + 1
  end
end
return {moved, dead, stuck}
`)

// rejected is a delayed-set member that the move script could not move
// into its stream: its first bytes, its length and why.
type rejected struct {
	head   string
	size   int64
	reason string
}

// quoted names the member in an error: quoted, and cut after its first
// bytes.
func (m rejected) quoted() string {
	if m.size > int64(len(m.head)) {
		return fmt.Sprintf("%q… (%d bytes)", m.head, m.size)
	}
	return strconv.Quote(m.head)
}

// moveResult is what one run of moveDue did.
type moveResult struct {
	moved int
	dead  []rejected // dead-lettered and removed from the set
	stuck []rejected // could not be dead-lettered either; left in the set
}

// looked is how many members the run looked at.
func (r moveResult) looked() int { return r.moved + len(r.dead) + len(r.stuck) }

// moveDueOnce runs moveDue once for stream: it moves up to batch members
// due by now, after skipping the first skip due ones.
func moveDueOnce(ctx context.Context, client goredis.Scripter, stream string, now time.Time, batch, skip int, deadMaxLen int64) (moveResult, error) {
	keys := []string{DelayedKey(stream), stream, DeadKey(stream)}
	res, err := moveDue.Run(ctx, client, keys,
		now.UnixMilli(), batch, skip, now.UTC().Format(time.RFC3339Nano), deadMaxLen).Slice()
	if err != nil {
		return moveResult{}, err
	}
	var out moveResult
	if len(res) != 3 {
		return out, fmt.Errorf("move script returned %d values, want 3", len(res))
	}
	moved, ok := res[0].(int64)
	if !ok {
		return out, fmt.Errorf("move script returned %T for the moved count", res[0])
	}
	out.moved = int(moved)
	if out.dead, err = rejectedList(res[1]); err != nil {
		return out, err
	}
	out.stuck, err = rejectedList(res[2])
	return out, err
}

// rejectedList reads the script's flat list of head, length, reason.
func rejectedList(v any) ([]rejected, error) {
	list, ok := v.([]any)
	if !ok || len(list)%3 != 0 {
		return nil, fmt.Errorf("move script returned %T of %d values for its rejected members", v, len(list))
	}
	out := make([]rejected, 0, len(list)/3)
	for i := 0; i < len(list); i += 3 {
		head, _ := list[i].(string)
		size, _ := list[i+1].(int64)
		reason, _ := list[i+2].(string)
		out = append(out, rejected{head: head, size: size, reason: reason})
	}
	return out, nil
}

// moveTimeout bounds one run of the move script.
const moveTimeout = 10 * time.Second

// moveDelayed moves due delayed events into the streams every DelayedPoll.
// A stream whose delayed set cannot be read (it holds another type) is
// reported and skipped until the next poll; the other streams go on.
func (r *run) moveDelayed() {
	defer r.loops.Done()
	for r.pause(r.s.cfg.DelayedPoll) {
		for _, stream := range r.s.cfg.Streams {
			r.moveStream(stream)
		}
	}
}

// moveStream moves what is due in one stream's delayed set, a batch at a
// time, and reports every member it could not move.
func (r *run) moveStream(stream string) {
	key := DelayedKey(stream)
	skip := 0 // members left in the set because not even the dead-letter stream took them
	for r.life.Err() == nil {
		ctx, cancel := context.WithTimeout(r.life, moveTimeout)
		res, err := moveDueOnce(ctx, r.s.client, stream, time.Now(), r.s.cfg.BatchSize, skip, r.s.cfg.DeadMaxLen)
		cancel()
		if err != nil {
			if r.life.Err() == nil {
				r.eh(r.ctx, fmt.Errorf("redis: moving due delayed events from %q into stream %q: %w", key, stream, err), nil)
			}
			return
		}
		for _, m := range res.dead {
			r.eh(r.ctx, fmt.Errorf("redis: delayed set %q: member %s moved to the dead-letter stream %q: %s: %w",
				key, m.quoted(), DeadKey(stream), m.reason, pubsub.ErrMalformed), nil)
		}
		for _, m := range res.stuck {
			r.eh(r.ctx, fmt.Errorf("redis: delayed set %q: member %s left in the set: %s",
				key, m.quoted(), m.reason), nil)
		}
		skip += len(res.stuck)
		if res.looked() < r.s.cfg.BatchSize {
			return
		}
	}
}
