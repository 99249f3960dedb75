package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisHealthTTL is how long a [RedisHealth] minute key (and a
// subscription's index of them) lives after its last write: a bit over
// HealthWindow, so that a minute is kept while any window can hold it,
// with room for replicas' clocks to differ, and then goes without a
// janitor.
const RedisHealthTTL = HealthWindow + 5*time.Minute

// RedisHealthSummaryTTL is how long a subscription's summary (last
// success and failure, failures in a row, failing since) lives after its
// last write: a subscription removed without the admin API (from the
// config file) leaves nothing behind for long, and one this quiet starts
// afresh. Set disable_after below it.
const RedisHealthSummaryTTL = 30 * 24 * time.Hour

// RedisHealthConfig configures [NewRedisHealth].
type RedisHealthConfig struct {
	// Client is the Redis the stats live in; it is the caller's and is
	// never closed here.
	// default: none, required
	Client goredis.UniversalClient
	// Prefix starts every key, as in "{events}:webhook:health". It must
	// hold a hash tag ("{...}", not empty, the first "{" of the prefix)
	// so that every key is in one Redis Cluster slot: Observe changes
	// every subscription of a batch in one script call.
	// default: none, required
	Prefix string
}

// Validate names the first field of c that is missing or wrong.
func (c RedisHealthConfig) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("webhook: RedisHealthConfig.Client is nil")
	case c.Prefix == "":
		return errors.New("webhook: RedisHealthConfig.Prefix is empty")
	case !hasHashTag(c.Prefix):
		return fmt.Errorf("webhook: RedisHealthConfig.Prefix %q holds no hash tag such as {events}: its keys would spread over Redis Cluster slots", c.Prefix)
	}
	return nil
}

// RedisHealth is a [HealthStore] in Redis, shared by every bridge replica
// on it: their samples add up. Make it with [NewRedisHealth].
//
// # Keys
//
// With P the prefix and S a subscription ID with '%', '{', '}' and ':'
// percent-encoded ("%25", "%7B", "%7D", "%3A"), so that no ID forms a hash
// tag or reaches into another ID's keys:
//
//   - P:s:S is a hash, the subscription's summary: ls_at and ls_status
//     (last success), lf_at, lf_status and lf_error (last failure), cf
//     (consecutive failures) and fs (failing since). It expires
//     [RedisHealthSummaryTTL] after its last write; Forget deletes it.
//   - P:m:S:M is a hash of the counts of unix minute M (unix seconds / 60):
//     ok, fail and limited, and b0 … b15, the attempts whose latency fell
//     in each bucket of the histogram (1ms, 2ms, 5ms, … 1min, and b15
//     above a minute). It expires [RedisHealthTTL] after its last write.
//   - P:i:S is a sorted set of the minutes M that may still have a key,
//     scored by the time of their last write (Redis's clock, unix ms), so
//     that Forget finds them; members whose key has expired are dropped
//     as new ones come, and the set expires with the last of them.
//
// Times are stored as unix seconds, a dot and nine digits of nanoseconds
// ("1772366430.000000000"): exact, and compared in Lua without the loss a
// double would bring to unix nanoseconds.
//
// Observe changes every subscription of a batch in one Lua script call,
// atomically; a key of the wrong type fails the whole batch before any
// write, and a count that is not an integer counts again from zero.
// Stats reads around keys of the wrong type and fields that do not parse.
//
// A minute stays until its key expires, whereas [MemoryHealth] drops a
// minute once it observes one an hour newer; the two differ only for a
// Stats whose now lies before the newest sample.
type RedisHealth struct {
	client goredis.UniversalClient
	prefix string
}

// NewRedisHealth returns a [RedisHealth] with cfg, once cfg is valid.
func NewRedisHealth(cfg RedisHealthConfig) (*RedisHealth, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &RedisHealth{client: cfg.Client, prefix: cfg.Prefix}, nil
}

// healthKeyID encodes a subscription ID for a key: '%', '{', '}' and ':'
// percent-encoded, so that it holds no brace and no separator and no two
// IDs encode alike.
func healthKeyID(id string) string {
	if !strings.ContainsAny(id, "%{}:") {
		return id
	}
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		switch c := id[i]; c {
		case '%', '{', '}', ':':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (r *RedisHealth) summaryKey(id string) string { return r.prefix + ":s:" + healthKeyID(id) }
func (r *RedisHealth) indexKey(id string) string   { return r.prefix + ":i:" + healthKeyID(id) }
func (r *RedisHealth) minuteKey(id string, minute int64) string {
	return r.prefix + ":m:" + healthKeyID(id) + ":" + strconv.FormatInt(minute, 10)
}

// healthMinuteFields are the fields of a minute hash, in the order of
// healthMinute's counts: ok, fail, limited, then the buckets.
var healthMinuteFields = func() []string {
	f := []string{"ok", "fail", "limited"}
	for i := range len(healthBuckets) + 1 {
		f = append(f, "b"+strconv.Itoa(i))
	}
	return f
}()

// encodeHealthTime is t as stored: "<unix seconds>.<nine digits of ns>".
func encodeHealthTime(t time.Time) string {
	return strconv.FormatInt(t.Unix(), 10) + "." + fmt.Sprintf("%09d", t.Nanosecond())
}

// decodeHealthTime reads what encodeHealthTime wrote, as strictly as the
// script does: digits, with a "-" before the seconds at most, and no more
// than 15 digits of seconds (exact in the script's doubles).
func decodeHealthTime(s string) (time.Time, bool) {
	sec, ns, ok := strings.Cut(s, ".")
	digits := strings.TrimPrefix(sec, "-")
	if !ok || len(ns) != 9 || digits == "" || len(digits) > 15 || !allDigits(digits) || !allDigits(ns) {
		return time.Time{}, false
	}
	a, err1 := strconv.ParseInt(sec, 10, 64)
	b, err2 := strconv.ParseInt(ns, 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, false
	}
	return time.Unix(a, b).UTC(), true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Observe implements [HealthStore]: it reduces samples with the memory
// store's rules and applies every subscription's delta in one Lua script
// call, atomically. A key of the wrong type fails the call before
// anything is written, with an error that names the key.
func (r *RedisHealth) Observe(ctx context.Context, samples []HealthSample) error {
	if len(samples) == 0 {
		return ctx.Err()
	}
	deltas := healthDeltas(samples)
	ids := make([]string, 0, len(deltas))
	for id := range deltas {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	// KEYS, per subscription: summary, index, then its minutes.
	// ARGV: the TTL (ms) and the number of subscriptions, then per
	// subscription: the number of minutes; last success at and status;
	// last failure at, status and error ("" at for none); "1" when the
	// batch held a success, the failures after the last success and the
	// first of them; then per minute: the minute, the number of counts,
	// and each count as field and value.
	keys := make([]string, 0, 3*len(ids))
	args := make([]any, 0, 2+16*len(ids))
	args = append(args, RedisHealthTTL.Milliseconds(), len(ids))
	for _, id := range ids {
		d := deltas[id]
		keys = append(keys, r.summaryKey(id), r.indexKey(id))
		minutes := make([]int64, 0, len(d.minutes))
		for m := range d.minutes {
			minutes = append(minutes, m)
		}
		slices.Sort(minutes)
		args = append(args, len(minutes))
		if d.lastSuccess != nil {
			args = append(args, encodeHealthTime(d.lastSuccess.At), d.lastSuccess.Status)
		} else {
			args = append(args, "", 0)
		}
		if d.lastFailure != nil {
			args = append(args, encodeHealthTime(d.lastFailure.At), d.lastFailure.Status, d.lastFailure.Error)
		} else {
			args = append(args, "", 0, "")
		}
		saw, first := "0", ""
		if d.sawSuccess {
			saw = "1"
		}
		if !d.firstFailure.IsZero() {
			first = encodeHealthTime(d.firstFailure)
		}
		args = append(args, saw, d.failures, first)
		for _, minute := range minutes {
			keys = append(keys, r.minuteKey(id, minute))
			m := d.minutes[minute]
			counts := append([]int64{m.ok, m.fail, m.limited}, m.buckets[:]...)
			n := 0
			for _, c := range counts {
				if c != 0 {
					n++
				}
			}
			args = append(args, minute, n)
			for i, c := range counts {
				if c != 0 {
					args = append(args, healthMinuteFields[i], c)
				}
			}
		}
	}
	if err := observeScript.Run(ctx, r.client, keys, args...).Err(); err != nil {
		return r.redisError(ctx, "observing samples of "+strconv.Itoa(len(ids))+" subscriptions", err)
	}
	return nil
}

// redisError returns ctx's error when it ended the call, else err with
// what failed.
func (r *RedisHealth) redisError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return ctx.Err()
	}
	return fmt.Errorf("webhook: health in Redis (%s): %s: %w", r.prefix, what, err)
}

// Stats implements [HealthStore]: one pipeline reads, with HGETALL, each
// subscription's summary and the minute keys of the window ending at now
// (60 per subscription). A key of the wrong type is skipped, and a field
// that does not parse counts as absent or zero.
func (r *RedisHealth) Stats(ctx context.Context, now time.Time, ids ...string) (map[string]HealthStats, error) {
	if len(ids) == 0 {
		return map[string]HealthStats{}, ctx.Err()
	}
	const perWindow = int64(HealthWindow / time.Minute)
	last := now.Unix() / 60
	type read struct {
		summary *goredis.MapStringStringCmd
		minutes [perWindow]*goredis.MapStringStringCmd
	}
	reads := make([]read, len(ids))
	_, err := r.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			reads[i].summary = p.HGetAll(ctx, r.summaryKey(id))
			for j := range perWindow {
				reads[i].minutes[j] = p.HGetAll(ctx, r.minuteKey(id, last-j))
			}
		}
		return nil
	})
	if err != nil && !isWrongType(err) {
		return nil, r.redisError(ctx, "reading stats of "+strconv.Itoa(len(ids))+" subscriptions", err)
	}
	out := make(map[string]HealthStats, len(ids))
	for i, id := range ids {
		found := false
		var st HealthStats
		h, err := reads[i].summary.Result()
		switch {
		case err != nil && !isWrongType(err):
			return nil, r.redisError(ctx, "reading the stats of subscription "+strconv.Quote(id), err)
		case len(h) > 0:
			found = true
			st = decodeHealthSummary(h)
		}
		minutes := make(map[int64]*healthMinute, perWindow)
		for j, cmd := range reads[i].minutes {
			h, err := cmd.Result()
			switch {
			case err != nil && !isWrongType(err):
				return nil, r.redisError(ctx, "reading the stats of subscription "+strconv.Quote(id), err)
			case len(h) > 0:
				found = true
				minutes[last-int64(j)] = decodeHealthMinute(h)
			}
		}
		if !found {
			continue
		}
		windowStats(&st, now, minutes)
		out[id] = st
	}
	return out, nil
}

// decodeHealthSummary reads a summary hash; what does not parse is left
// out (zero).
func decodeHealthSummary(h map[string]string) HealthStats {
	var st HealthStats
	status := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0
		}
		return n
	}
	if at, ok := decodeHealthTime(h["ls_at"]); ok {
		st.LastSuccess = &LastAttempt{At: at, Status: status(h["ls_status"])}
	}
	if at, ok := decodeHealthTime(h["lf_at"]); ok {
		st.LastFailure = &LastAttempt{At: at, Status: status(h["lf_status"]), Error: h["lf_error"]}
	}
	if n, err := strconv.ParseInt(h["cf"], 10, 64); err == nil {
		st.ConsecutiveFailures = n
	}
	if at, ok := decodeHealthTime(h["fs"]); ok {
		st.FailingSince = at
	}
	return st
}

// healthMinuteField is the place of each field of a minute hash among
// healthMinute's counts: ok, fail, limited, then the buckets.
var healthMinuteField = func() map[string]int {
	m := make(map[string]int, len(healthMinuteFields))
	for i, f := range healthMinuteFields {
		m[f] = i
	}
	return m
}()

// decodeHealthMinute reads a minute hash; fields it does not know and
// values that do not parse are left out (zero).
func decodeHealthMinute(h map[string]string) *healthMinute {
	var m healthMinute
	for f, v := range h {
		i, known := healthMinuteField[f]
		if !known {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		switch i {
		case 0:
			m.ok = n
		case 1:
			m.fail = n
		case 2:
			m.limited = n
		default:
			m.buckets[i-3] = n
		}
	}
	return &m
}

// Forget implements [HealthStore]: it deletes the subscription's summary,
// its index and every minute key the index names. Samples observed while
// Forget runs may leave minute keys behind; they expire.
func (r *RedisHealth) Forget(ctx context.Context, id string) error {
	keys := []string{r.summaryKey(id), r.indexKey(id)}
	minutes, err := r.client.ZRange(ctx, r.indexKey(id), 0, -1).Result()
	if err != nil && !isWrongType(err) {
		return r.redisError(ctx, "forgetting subscription "+strconv.Quote(id), err)
	}
	for _, m := range minutes {
		if n, err := strconv.ParseInt(m, 10, 64); err == nil {
			keys = append(keys, r.minuteKey(id, n))
		}
	}
	if err := r.client.Del(ctx, keys...).Err(); err != nil {
		return r.redisError(ctx, "forgetting subscription "+strconv.Quote(id), err)
	}
	return nil
}
