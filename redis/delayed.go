package redis

import (
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// moveDue moves up to ARGV[2] delayed events due by ARGV[1] (ms) from the
// sorted set KEYS[1] into the stream KEYS[2], atomically, so that each is
// moved exactly once however many subscribers run it. Members are
// netstring-packed field/value lists (see packFields).
var moveDue = goredis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local fields, pos = {}, 1
  while pos <= #m do
    local colon = string.find(m, ':', pos, true)
    local n = tonumber(string.sub(m, pos, colon - 1))
    fields[#fields + 1] = string.sub(m, colon + 1, colon + n)
    pos = colon + n + 2
  end
  redis.call('XADD', KEYS[2], '*', unpack(fields))
  redis.call('ZREM', KEYS[1], m)
end
return #due
`)

// moveDelayed moves due delayed events into the streams every DelayedPoll.
func (r *run) moveDelayed() {
	defer r.loops.Done()
	batch := strconv.Itoa(r.s.cfg.BatchSize)
	for r.pause(r.s.cfg.DelayedPoll) {
		for _, stream := range r.s.cfg.Streams {
			for {
				now := strconv.FormatInt(time.Now().UnixMilli(), 10)
				n, err := moveDue.Run(r.life, r.s.client, []string{DelayedKey(stream), stream}, now, batch).Int()
				if err != nil {
					if r.life.Err() == nil {
						r.eh(r.ctx, fmt.Errorf("redis: moving due delayed events into stream %q: %w", stream, err), nil)
					}
					break
				}
				if n < r.s.cfg.BatchSize {
					break
				}
			}
		}
	}
}
