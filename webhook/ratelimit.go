package webhook

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// RateLimit bounds how often deliveries may go: PerSecond on average,
// at most Burst back to back. In any window of T seconds at most
// Burst + PerSecond×T deliveries go (a generic cell rate, or token
// bucket, of Burst tokens refilled at PerSecond).
type RateLimit struct {
	// PerSecond is the sustained rate, deliveries per second; a
	// fraction for less than one a second (0.1: one every 10s). Between
	// [MinRatePerSecond] and [MaxRatePerSecond].
	PerSecond float64 `json:"per_second" yaml:"per_second"`
	// Burst is how many deliveries may go back to back after a quiet
	// spell; at most [MaxRateBurst].
	// default: PerSecond rounded up (one second's worth), at least 1
	Burst int `json:"burst,omitempty" yaml:"burst"`
}

// The bounds of a [RateLimit].
const (
	MinRatePerSecond = 1.0 / 3600 // one an hour
	MaxRatePerSecond = 1e6
	MaxRateBurst     = 1_000_000
)

// Validate reports what is wrong with l, naming the field as in YAML.
func (l RateLimit) Validate() error {
	switch {
	case math.IsNaN(l.PerSecond) || l.PerSecond < MinRatePerSecond || l.PerSecond > MaxRatePerSecond:
		return fmt.Errorf("per_second %v is outside 1/3600 (one an hour) to %d", l.PerSecond, int(MaxRatePerSecond))
	case l.Burst < 0 || l.Burst > MaxRateBurst:
		return fmt.Errorf("burst %d is outside 0 (default: one second's worth) to %d", l.Burst, MaxRateBurst)
	}
	return nil
}

// withDefaults fills in Burst.
func (l RateLimit) withDefaults() RateLimit {
	if l.Burst == 0 {
		l.Burst = max(1, int(math.Ceil(l.PerSecond)))
	}
	return l
}

// scaled is l with its rate and burst times f (0 < f ≤ 1), burst at
// least 1.
func (l RateLimit) scaled(f float64) RateLimit {
	if f >= 1 {
		return l
	}
	return RateLimit{PerSecond: max(l.PerSecond*f, MinRatePerSecond), Burst: max(1, int(float64(l.Burst)*f))}
}

// interval is the time between two deliveries at the sustained rate.
func (l RateLimit) interval() time.Duration {
	return time.Duration(float64(time.Second) / l.PerSecond)
}

// RateLimiter keeps the budgets of rate-limited deliveries, by key: the
// bridge asks it before each delivery that a [Subscription.RateLimit] or
// [Config.EndpointLimits] covers. [RedisRateLimiter] shares the budgets
// between every replica on one Redis; [MemoryRateLimiter] keeps them in
// the process.
type RateLimiter interface {
	// Allow takes one delivery from key's budget under limit and returns
	// 0; or, when the budget is spent, takes nothing and returns how long
	// until one delivery would be allowed. The bridge's keys name the
	// configured limit ("subscription:<id>@<per_second>/<burst>"), so a
	// changed limit is a new key with a fresh budget; under one key the
	// limit differs from one call to the next only as the bridge lowers
	// it after a 429, and the budget spent so far carries over. Allow is called
	// concurrently, must return within ctx, and an error means the
	// budget is unknown (the bridge then defers the delivery).
	Allow(ctx context.Context, key string, limit RateLimit) (time.Duration, error)
}

// RedisRateLimiter is a [RateLimiter] in Redis, shared by every replica
// on it: a GCRA (generic cell rate algorithm) per key, one Lua script call
// per delivery (github.com/go-redis/redis_rate). Its keys are
// "rate:" + Prefix + key; give Prefix a hash tag ("{events}:webhook:")
// so that on Redis Cluster they live in the slot of the bridge's stream.
// Each key expires once its budget is full again. The script reads the
// time from Redis (TIME), so replicas' clocks need not agree.
type RedisRateLimiter struct {
	// Client is the Redis the budgets live in; never closed here.
	Client goredis.UniversalClient
	// Prefix is put before every key.
	Prefix string
	// Timeout bounds each call.
	// default: 1s
	Timeout time.Duration
}

// Allow implements [RateLimiter].
func (r RedisRateLimiter) Allow(ctx context.Context, key string, limit RateLimit) (time.Duration, error) {
	limit = limit.withDefaults()
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// One delivery per Period: the script's emission interval is
	// Period/Rate, so fractional rates need no rounding.
	// go-redis honours a context's deadline only on clients made with
	// ContextTimeoutEnabled; the call runs aside so that Timeout holds on
	// any client (a late answer is dropped: the delivery was deferred).
	type answer struct {
		res *redis_rate.Result
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := redis_rate.NewLimiter(r.Client).Allow(ctx, r.Prefix+key, redis_rate.Limit{Rate: 1, Period: limit.interval(), Burst: limit.Burst})
		done <- answer{res, err}
	}()
	var res *redis_rate.Result
	select {
	case a := <-done:
		if a.err != nil {
			return 0, fmt.Errorf("webhook: rate limiter: %w", a.err)
		}
		res = a.res
	case <-ctx.Done():
		return 0, fmt.Errorf("webhook: rate limiter: no answer within %s", timeout)
	}
	if res.Allowed > 0 {
		return 0, nil
	}
	return max(res.RetryAfter, time.Millisecond), nil
}

// MemoryRateLimiter is a [RateLimiter] in the process
// (golang.org/x/time/rate): for one bridge, or replicas that each take
// their own share. The zero value is ready; it keeps a token bucket per
// key it was asked about.
type MemoryRateLimiter struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// Allow implements [RateLimiter].
func (m *MemoryRateLimiter) Allow(_ context.Context, key string, limit RateLimit) (time.Duration, error) {
	limit = limit.withDefaults()
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]*rate.Limiter{}
	}
	l, ok := m.m[key]
	if !ok {
		l = rate.NewLimiter(rate.Limit(limit.PerSecond), limit.Burst)
		m.m[key] = l
	} else if l.Limit() != rate.Limit(limit.PerSecond) || l.Burst() != limit.Burst {
		l.SetLimitAt(now, rate.Limit(limit.PerSecond))
		l.SetBurstAt(now, limit.Burst)
	}
	if l.AllowN(now, 1) {
		return 0, nil
	}
	missing := 1 - l.TokensAt(now)
	return max(time.Duration(missing/limit.PerSecond*float64(time.Second)), time.Millisecond), nil
}

var errRateLimited = errors.New("rate limited")

// throttle is an endpoint's answer to its 429s: a factor on the rate of
// every limit its deliveries pass, halved by each 429 (down to
// minThrottle), held for the Retry-After period, then back to 1 in a
// straight line over as long again.
type throttle struct {
	factor float64       // at its lowest; 0 means 1 (none)
	until  time.Time     // the factor holds until then
	ramp   time.Duration // then climbs back to 1 over this long
}

// minThrottle is the lowest factor 429s can bring a rate to.
const minThrottle = 1.0 / 64

// at returns the factor in force at now, in (0, 1].
func (t throttle) at(now time.Time) float64 {
	if t.factor == 0 || t.factor >= 1 {
		return 1
	}
	if now.Before(t.until) {
		return t.factor
	}
	if t.ramp <= 0 {
		return 1
	}
	f := t.factor + (1-t.factor)*float64(now.Sub(t.until))/float64(t.ramp)
	return min(f, 1)
}

// tooMany records a 429 at now that asked for hold (Retry-After; at
// least a second).
func (t *throttle) tooMany(now time.Time, hold time.Duration) {
	hold = max(hold, time.Second)
	t.factor = max(t.at(now)/2, minThrottle)
	t.until = now.Add(hold)
	t.ramp = hold
}

// limitKeys are the rate limits a delivery of rt passes: its
// subscription's and its endpoint's, by limiter key.
func (b *Bridge) limitKeys(rt *route) (keys [2]string, limits [2]RateLimit, n int) {
	if rt.sub.RateLimit != nil {
		l := rt.sub.RateLimit.withDefaults()
		keys[n], limits[n] = "subscription:"+rt.sub.ID+l.keySuffix(), l
		n++
	}
	if l, ok := b.endpointLimits[rt.endpoint]; ok {
		keys[n], limits[n] = "endpoint:"+rt.endpoint+l.keySuffix(), l
		n++
	}
	return keys, limits, n
}

// keySuffix names the configured limit in its limiter key, so that a
// changed limit starts a budget of its own at once instead of serving out
// what the old one owed (a limit raised from one an hour would otherwise
// wait out the hour).
func (l RateLimit) keySuffix() string {
	return "@" + strconv.FormatFloat(l.PerSecond, 'g', -1, 64) + "/" + strconv.Itoa(l.Burst)
}

// rateLimit asks the limiter for each limit a delivery of rt passes, at
// the endpoint's 429 factor. It returns 0 when the delivery may go, else
// when to try again; a limiter error defers it by a second.
func (b *Bridge) rateLimit(ctx context.Context, rt *route, ep *endpoint, now time.Time) (time.Time, error) {
	if b.cfg.RateLimiter == nil {
		return time.Time{}, nil
	}
	keys, limits, n := b.limitKeys(rt)
	if n == 0 {
		return time.Time{}, nil
	}
	f := ep.throttleAt(now)
	for i := range n {
		l := limits[i].scaled(f)
		wait, err := b.cfg.RateLimiter.Allow(ctx, keys[i], l)
		if err != nil {
			return now.Add(time.Second), err
		}
		if wait > 0 {
			// Spaced at the configured pace: a backlog refused while a 429
			// lowered the limit must not keep the lowered pace after it
			// recovers (those refused too soon are refused again).
			return b.spread(keys[i], now.Add(wait), limits[i]), nil
		}
	}
	return time.Time{}, nil
}

// spread returns when a delivery the limiter refused should come back:
// no sooner than at, and after the others this replica sent back for the
// same key, one interval of the limit apart, so that a backlog returns
// at the limit's pace rather than all at once.
func (b *Bridge) spread(key string, at time.Time, l RateLimit) time.Time {
	b.spreadMu.Lock()
	defer b.spreadMu.Unlock()
	if len(b.spreadNext) > 4096 { // keys of subscriptions since removed
		now := time.Now()
		for k, next := range b.spreadNext {
			if next.Before(now) {
				delete(b.spreadNext, k)
			}
		}
	}
	if next := b.spreadNext[key]; next.After(at) {
		at = next
	}
	b.spreadNext[key] = at.Add(l.interval())
	return at
}

// throttleAt returns the endpoint's 429 factor at now.
func (e *endpoint) throttleAt(now time.Time) float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.throttle.at(now)
}

// tooMany lowers the endpoint's rate after a 429.
func (e *endpoint) tooMany(now time.Time, hold time.Duration) (factor float64, until time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.throttle.tooMany(now, hold)
	return e.throttle.factor, e.throttle.until
}
