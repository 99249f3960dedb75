package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
)

// A consumer name is leased while a Consume runs under it: two
// subscribers sharing one (two processes deployed with the same name)
// would each take the other's entries for lost ones and handle them too.
// The second waits until the first stops, or until its lease lapses when
// it crashed.

// nameLeaseTTL is how long a lease outlives a consumer that stopped
// renewing it (a crash): the wait of a restart under the same name.
func (s *Subscriber) nameLeaseTTL() time.Duration { return min(s.cfg.ClaimIdle, 10*time.Second) }

// nameKey is the lease of the consumer name, beside the first stream.
func (s *Subscriber) nameKey() string { return s.leaseKey(s.cfg.Streams[0], s.cfg.Consumer) }

// leaseKey is the lease of a consumer name in the group beside stream:
// the key a subscriber of the group whose first stream it is holds under
// that name while it consumes.
func (s *Subscriber) leaseKey(stream, consumer string) string {
	return HelperKey(stream, "consumer:"+s.cfg.Group+":"+consumer)
}

// renewLease extends the lease if this run holds it, or takes it if it
// has lapsed; it returns 1 when the run holds it afterwards. A key that
// is no lease this package wrote (another type, or no expiry) counts as
// lapsed.
var renewLease = goredis.NewScript(`
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'string' then
  local v = redis.call('GET', KEYS[1])
  if v == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
  end
  if redis.call('PTTL', KEYS[1]) >= 0 then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// dropLease deletes the lease if this run holds it.
var dropLease = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// leaseName takes the consumer name's lease, waiting while another
// running subscriber holds it; it reports false when the run stopped
// first.
func (r *run) leaseName() bool {
	r.leaseToken = uuid.NewString()
	told := false
	for {
		ok, err := r.renewName()
		switch {
		case ok && r.life.Err() != nil:
			// The run stopped while the lease was being taken.
			r.releaseName()
			return false
		case ok:
			return true
		case err == nil && !told:
			told = true
			r.eh(r.ctx, fmt.Errorf("redis: consumer name %q of group %q is in use by another running subscriber (lease %s); waiting until it stops or its lease lapses: give each subscriber a name of its own", r.s.cfg.Consumer, r.s.cfg.Group, r.s.nameKey()), nil)
		case err != nil && r.life.Err() == nil:
			r.eh(r.ctx, fmt.Errorf("redis: taking the lease of consumer name %q: %w", r.s.cfg.Consumer, err), nil)
		}
		if !r.pause(r.keepEvery()) {
			return false
		}
	}
}

// renewName renews (or takes again) the run's lease on its name.
func (r *run) renewName() (bool, error) {
	n, err := renewLease.Run(r.life, r.s.client, []string{r.s.nameKey()}, r.leaseToken, r.s.nameLeaseTTL().Milliseconds()).Int()
	return n == 1, err
}

// keepName renews the lease from the keeper, and reports a name taken
// over meanwhile (this run was stalled past the lease).
func (r *run) keepName() {
	ok, err := r.renewName()
	if err == nil && !ok {
		r.eh(r.ctx, fmt.Errorf("redis: consumer name %q of group %q was taken by another subscriber while this one was stalled; both may now handle the same entries", r.s.cfg.Consumer, r.s.cfg.Group), nil)
	}
}

// releaseName gives the lease up as the run ends, waiting at most a
// second: go-redis honours a context's deadline only on clients made with
// ContextTimeoutEnabled, so the script runs aside and, against a Redis
// that stopped answering, is left to the client's timeouts (the lease
// then lapses by itself).
func (r *run) releaseName() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = aside(time.Second, func() error {
		defer cancel()
		return dropLease.Run(ctx, r.s.client, []string{r.s.nameKey()}, r.leaseToken).Err()
	})
}
