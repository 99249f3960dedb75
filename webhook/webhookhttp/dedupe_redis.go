package webhookhttp

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisDedupe is a [Deduper] in Redis, shared by every replica: one key
// per id, Prefix followed by the id, expiring with its window. Give the
// prefix a hash tag ("{events}:webhook:ingest:") so that a request's keys
// share a Cluster slot.
type RedisDedupe struct {
	Client goredis.UniversalClient
	Prefix string
}

// committed is the value of an accepted id's key.
const committed = "accepted"

// Claim implements [Deduper].
func (d RedisDedupe) Claim(ctx context.Context, token string, ids []string) ([]ClaimState, error) {
	cmds := make([]*goredis.BoolCmd, len(ids))
	if _, err := d.Client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.SetNX(ctx, d.Prefix+id, token, ClaimTTL)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]ClaimState, len(ids))
	for i, id := range ids {
		if cmds[i].Val() {
			continue
		}
		v, err := d.Client.Get(ctx, d.Prefix+id).Result()
		switch {
		case err == goredis.Nil: // expired meanwhile: another request may take it
			out[i] = Busy
		case err != nil:
			return nil, err
		case v == committed:
			out[i] = Duplicate
		default:
			out[i] = Busy
		}
	}
	return out, nil
}

// commitScript marks each id accepted for the window (ARGV[2], ms) when it
// is still claimed under the token (ARGV[1]) or free, and returns how
// many another request holds.
var commitScript = goredis.NewScript(`
local taken = 0
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == false or v == ARGV[1] or v == 'accepted' then
    redis.call('SET', k, 'accepted', 'PX', ARGV[2])
  else
    taken = taken + 1
  end
end
return taken
`)

// Commit implements [Deduper]. It fails when another request holds one of
// the ids (this request's claim lapsed before it committed).
func (d RedisDedupe) Commit(ctx context.Context, token string, ids []string, window time.Duration) error {
	groups := [][]string{}
	if d.sameSlot() {
		groups = append(groups, nil)
		for _, id := range ids {
			groups[0] = append(groups[0], d.Prefix+id)
		}
	} else {
		for _, id := range ids {
			groups = append(groups, []string{d.Prefix + id})
		}
	}
	taken := int64(0)
	for _, keys := range groups {
		n, err := commitScript.Run(ctx, d.Client, keys, token, max(window.Milliseconds(), 1)).Int64()
		if err != nil {
			return err
		}
		taken += n
	}
	if taken > 0 {
		return fmt.Errorf("%d of %d ids were claimed by another request after this one's claim lapsed", taken, len(ids))
	}
	return nil
}

// releaseScript deletes a claim only while it is still the caller's.
var releaseScript = goredis.NewScript(`
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
return 1
`)

// Release implements [Deduper].
func (d RedisDedupe) Release(ctx context.Context, token string, ids []string) error {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = d.Prefix + id
	}
	if len(keys) == 1 || d.sameSlot() {
		return releaseScript.Run(ctx, d.Client, keys, token).Err()
	}
	for _, k := range keys {
		if err := releaseScript.Run(ctx, d.Client, []string{k}, token).Err(); err != nil {
			return err
		}
	}
	return nil
}

// sameSlot reports whether every key of the prefix shares a Cluster slot.
func (d RedisDedupe) sameSlot() bool {
	open := -1
	for i := 0; i < len(d.Prefix); i++ {
		if d.Prefix[i] == '{' && open < 0 {
			open = i
		}
		if d.Prefix[i] == '}' && open >= 0 {
			return i > open+1
		}
	}
	return false
}
