package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The scripts below check who holds an entry and claim it in one atomic
// step, so that no other consumer can take it over between the check and
// the claim. Each touches one stream (and so one Cluster slot).

// claimScript claims entries for this consumer. KEYS[1] is the stream;
// ARGV is the group, the consumer, a mode and then (id, deliveries)
// pairs. An entry pending with this consumer is claimed and returned with
// its fields and delivery count: "ours". In mode "retry" the claim counts
// a delivery (the entry goes to a handler next); in mode "own" it does
// not (JUSTID: the entry may wait in the queue, and is counted when a
// handler starts on it, see startScript). One pending with another
// consumer is left alone: "taken". One pending with nobody (the group was
// made again, or a consumer that took it over acknowledged it) is, in
// mode "retry", put back into the pending list with FORCE and its
// delivery count carried over: "forced"; in mode "own" it is left alone:
// "free". An entry no longer in the stream is "gone".
var claimScript = goredis.NewScript(`
local out = {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local e = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)[1]
  if e and e[2] == ARGV[2] then
    if ARGV[3] == 'retry' then
      local c = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id)
      if c[1] then out[#out + 1] = {'ours', id, c[1][2], e[4] + 1} else out[#out + 1] = {'gone', id} end
    else
      local m = redis.call('XRANGE', KEYS[1], id, id)[1]
      if m then
        redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
        out[#out + 1] = {'ours', id, m[2], e[4]}
      else
        redis.call('XACK', KEYS[1], ARGV[1], id)
        out[#out + 1] = {'gone', id}
      end
    end
  elseif e then
    out[#out + 1] = {'taken', id, e[2]}
  elseif ARGV[3] == 'retry' then
    local n = tonumber(ARGV[i + 1]) + 1
    local c = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'RETRYCOUNT', n, 'FORCE')
    if c[1] then out[#out + 1] = {'forced', id, c[1][2], n} else out[#out + 1] = {'gone', id} end
  else
    out[#out + 1] = {'free', id}
  end
end
return out
`)

// startScript counts a delivery of an entry that was claimed without
// one, as a handler is about to start on it, after checking that it is
// still this consumer's. KEYS[1] is the stream; ARGV is the group, the
// consumer and the ID. It returns {"ours", deliveries}, {"taken"} or
// {"free"} (pending with nobody).
var startScript = goredis.NewScript(`
local e = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)[1]
if e and e[2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'RETRYCOUNT', e[4] + 1, 'JUSTID')
  return {'ours', e[4] + 1}
elseif e then
  return {'taken'}
end
return {'free'}
`)

// refreshScript renews this consumer's hold on entries without counting a
// delivery (XCLAIM JUSTID restarts their idle clocks), so that entries
// waiting in its queue never look abandoned. KEYS[1] is the stream; ARGV
// is the group, the consumer and the IDs. It returns one status per
// entry: "ours", "taken" (pending with another consumer), "free"
// (pending with nobody: acknowledged meanwhile, or its group was made
// again; left alone, as an entry being acknowledged must not be put back)
// or "gone" (no longer in the stream).
var refreshScript = goredis.NewScript(`
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local e = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)[1]
  if e and e[2] == ARGV[2] then
    local c = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
    if c[1] then out[#out + 1] = 'ours' else out[#out + 1] = 'gone' end
  elseif e then
    out[#out + 1] = 'taken'
  else
    out[#out + 1] = 'free'
  end
end
return out
`)

// autoclaimScript takes over entries idle past a time with XAUTOCLAIM
// JUSTID, which counts no delivery (that happens when a handler starts on
// one, see startScript), and returns them with their fields and delivery
// counts. KEYS[1] is the stream; ARGV is the group, the consumer, the
// minimum idle time (ms), the start ID and the count. It returns the next
// start ID, {id, fields, deliveries} triples, and the IDs of entries
// deleted from the stream while pending, which XAUTOCLAIM dropped from the
// pending list.
var autoclaimScript = goredis.NewScript(`
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5], 'JUSTID')
local out = {}
local deleted = r[3] or {}
for _, id in ipairs(r[2]) do
  local m = redis.call('XRANGE', KEYS[1], id, id)[1]
  if m then
    local e = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)[1]
    local n = 1
    if e then n = e[4] end
    out[#out + 1] = {id, m[2], n}
  else
    redis.call('XACK', KEYS[1], ARGV[1], id)
    deleted[#deleted + 1] = id
  end
end
return {r[1], out, deleted}
`)

// claimed is one entry a script returned.
type claimed struct {
	status     string // ours, taken, forced, free or gone
	msg        goredis.XMessage
	deliveries int64
	holder     string // the other consumer, for "taken"
}

// claimEntries runs claimScript on entries of stream.
func (r *run) claimEntries(ctx context.Context, stream, mode string, entries []heldEntry) ([]claimed, error) {
	args := make([]any, 0, 3+2*len(entries))
	args = append(args, r.s.cfg.Group, r.s.cfg.Consumer, mode)
	for _, e := range entries {
		args = append(args, e.id, e.deliveries)
	}
	res, err := claimScript.Run(ctx, r.s.client, []string{stream}, args...).Slice()
	if err != nil {
		return nil, err
	}
	out := make([]claimed, 0, len(res))
	for _, item := range res {
		f, _ := item.([]any)
		if len(f) < 2 {
			return nil, fmt.Errorf("unexpected reply %v from the claim script", item)
		}
		c := claimed{status: str(f[0]), msg: goredis.XMessage{ID: str(f[1])}}
		switch {
		case c.status == "taken" && len(f) > 2:
			c.holder = str(f[2])
		case len(f) > 3:
			c.msg.Values = fieldMap(f[2])
			c.deliveries, _ = f[3].(int64)
		}
		out = append(out, c)
	}
	return out, nil
}

// autoclaim runs autoclaimScript from start; it returns the entries taken
// over, with their delivery counts, the next start, and the entries
// found deleted.
func (r *run) autoclaim(ctx context.Context, stream, start string) (got []claimed, next string, deleted []string, err error) {
	res, err := autoclaimScript.Run(ctx, r.s.client, []string{stream},
		r.s.cfg.Group, r.s.cfg.Consumer, r.s.cfg.ClaimIdle.Milliseconds(), start, r.s.cfg.BatchSize).Slice()
	if err != nil {
		return nil, "", nil, err
	}
	if len(res) != 3 {
		return nil, "", nil, fmt.Errorf("unexpected reply %v from the autoclaim script", res)
	}
	items, _ := res[1].([]any)
	out := make([]claimed, 0, len(items))
	for _, item := range items {
		f, _ := item.([]any)
		if len(f) != 3 {
			continue
		}
		n, _ := f[2].(int64)
		out = append(out, claimed{status: "ours", msg: goredis.XMessage{ID: str(f[0]), Values: fieldMap(f[1])}, deliveries: n})
	}
	gone, _ := res[2].([]any)
	for _, id := range gone {
		deleted = append(deleted, str(id))
	}
	return out, str(res[0]), deleted, nil
}

// start runs startScript for j, a claimed entry a handler is about to
// start on; it reports whether the handler may, and sets the delivery
// count.
func (r *run) start(j *job) bool {
	sent := time.Now()
	res, err := startScript.Run(r.life, r.s.client, []string{j.stream}, r.s.cfg.Group, r.s.cfg.Consumer, j.msg.ID).Slice()
	if err != nil || len(res) == 0 {
		if r.life.Err() != nil {
			return false // stopping: it stays pending, uncounted
		}
		// Unknown: hand it out, counted here; at worst it is handled
		// twice, never lost.
		j.deliveries++
		return true
	}
	switch str(res[0]) {
	case "ours":
		n, _ := res[1].(int64)
		j.deliveries = n
		r.held.confirm(j.stream, j.msg.ID, sent, n)
		return true
	case "taken":
		return false
	}
	j.deliveries++ // "free": its group was made again; still handled
	return true
}

// refreshEntries runs refreshScript on entries of stream and records what
// it found; sent is when the command was sent.
func (r *run) refreshEntries(ctx context.Context, stream string, entries []heldEntry) error {
	args := make([]any, 0, 2+len(entries))
	args = append(args, r.s.cfg.Group, r.s.cfg.Consumer)
	for _, e := range entries {
		args = append(args, e.id)
	}
	sent := time.Now()
	res, err := refreshScript.Run(ctx, r.s.client, []string{stream}, args...).StringSlice()
	if err != nil {
		return err
	}
	for i, status := range res {
		if i >= len(entries) {
			break
		}
		switch status {
		case "ours":
			r.held.confirm(stream, entries[i].id, sent, 0)
		case "taken":
			r.held.lose(stream, entries[i].id)
		}
		// "free" or "gone": no other consumer has it; the run still
		// handles what it holds the fields of, and a retry puts it back
		// into the pending list if it is still in the stream.
	}
	return nil
}

func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}

// fieldMap turns a flat field/value list into the map go-redis gives for
// stream entries.
func fieldMap(v any) map[string]any {
	list, _ := v.([]any)
	m := make(map[string]any, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		m[str(list[i])] = str(list[i+1])
	}
	return m
}
