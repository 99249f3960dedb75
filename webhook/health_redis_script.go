package webhook

import (
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// observeScript applies the deltas of a batch; see Observe for its KEYS
// and ARGV. It first checks the type of every key and writes nothing when
// one is not what it should be; a field that is not an integer where a
// count belongs is counted again from zero.
var observeScript = goredis.NewScript(strings.ReplaceAll(`
local ttl = tonumber(ARGV[1])
local nsubs = tonumber(ARGV[2])

local function checkType(k, want)
  local t = redis.call('TYPE', k).ok
  if t ~= 'none' and t ~= want then
    return 'WRONGTYPE health key ' .. k .. ' holds a ' .. t .. ', not a ' .. want .. '; nothing was written'
  end
  return nil
end

-- Pass 1: the types, before any write.
local k, a = 1, 3
for s = 1, nsubs do
  local nmin = tonumber(ARGV[a])
  local e = checkType(KEYS[k], 'hash') or checkType(KEYS[k + 1], 'zset')
  if e then return redis.error_reply(e) end
  k = k + 2
  a = a + 9
  for m = 1, nmin do
    e = checkType(KEYS[k], 'hash')
    if e then return redis.error_reply(e) end
    k = k + 1
    a = a + 2 + 2 * tonumber(ARGV[a + 1])
  end
end

local function parseTime(s)
  if type(s) ~= 'string' then return nil end
  local sec, ns = string.match(s, '^(%-?%d+)%.(%d%d%d%d%d%d%d%d%d)$')
  if not sec or #sec > 16 or (#sec == 16 and string.sub(sec, 1, 1) ~= '-') then return nil end
  return tonumber(sec), tonumber(ns)
end

-- isLater reports whether time string new is after the stored cur; a
-- cur that does not parse counts as none.
local function isLater(new, cur)
  local cs, cn = parseTime(cur)
  if not cs then return true end
  local ns, nn = parseTime(new)
  if not ns then return false end
  return ns > cs or (ns == cs and nn > cn)
end

local function incr(key, field, n)
  local r = redis.pcall('HINCRBY', key, field, n)
  if type(r) == 'table' and r.err then
    redis.call('HSET', key, field, n)
  end
end

local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nowarg = string.format('%.0f', nowms)
local gone = '(' .. string.format('%.0f', nowms - ttl)

-- Pass 2: the writes.
k, a = 1, 3
for s = 1, nsubs do
  local sk, ik = KEYS[k], KEYS[k + 1]
  local nmin = tonumber(ARGV[a])
  local lsAt, lsStatus = ARGV[a + 1], ARGV[a + 2]
  local lfAt, lfStatus, lfError = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local saw, failures, first = ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]
  k = k + 2
  a = a + 9

  if lsAt ~= '' and isLater(lsAt, redis.call('HGET', sk, 'ls_at')) then
    redis.call('HSET', sk, 'ls_at', lsAt, 'ls_status', lsStatus)
  end
  if lfAt ~= '' and isLater(lfAt, redis.call('HGET', sk, 'lf_at')) then
    redis.call('HSET', sk, 'lf_at', lfAt, 'lf_status', lfStatus, 'lf_error', lfError)
  end
  if saw == '1' then
    redis.call('HSET', sk, 'cf', failures)
    if first == '' then redis.call('HDEL', sk, 'fs') else redis.call('HSET', sk, 'fs', first) end
  elseif failures ~= '0' then
    incr(sk, 'cf', failures)
    if not parseTime(redis.call('HGET', sk, 'fs')) then redis.call('HSET', sk, 'fs', first) end
  else
    redis.call('HSETNX', sk, 'cf', 0)
  end

  redis.call('PEXPIRE', sk, SUMMARY_TTL_MS)

  for m = 1, nmin do
    local mk = KEYS[k]
    local minute, nf = ARGV[a], tonumber(ARGV[a + 1])
    for f = 1, nf do
      incr(mk, ARGV[a + 2 * f], ARGV[a + 2 * f + 1])
    end
    redis.call('PEXPIRE', mk, ttl)
    redis.call('ZADD', ik, nowarg, minute)
    k = k + 1
    a = a + 2 + 2 * nf
  end
  redis.call('ZREMRANGEBYSCORE', ik, '-inf', gone)
  redis.call('PEXPIRE', ik, ttl)
end
return nsubs
`, "SUMMARY_TTL_MS", strconv.FormatInt(RedisHealthSummaryTTL.Milliseconds(), 10)))
