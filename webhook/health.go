package webhook

import (
	"context"
	"time"
)

// HealthWindow is the span over which a [HealthStore] reports success
// ratios and latencies.
const HealthWindow = time.Hour

// healthBuckets are the upper bounds of the latency histogram a
// [HealthStore] keeps per subscription and minute; a latency above the
// last falls in an overflow bucket, reported as the last bound.
var healthBuckets = [...]time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
}

// HealthSample is one attempt as a [HealthStore] counts it.
type HealthSample struct {
	SubscriptionID string
	At             time.Time
	// Kind says what the attempt came to for the endpoint's health.
	Kind SampleKind
	// Status is the response's status, 0 without one.
	Status int
	// Took is how long the attempt took (Succeeded and Failed only).
	Took time.Duration
	// Error says what went wrong (Failed only).
	Error string
}

// SampleKind is what an attempt came to, for a [HealthStore].
type SampleKind uint8

// The kinds of [HealthSample].
const (
	// Succeeded: the endpoint answered 2xx.
	Succeeded SampleKind = iota + 1
	// FailedSample: the endpoint answered otherwise, or not at all.
	FailedSample
	// Limited: a rate limit held the delivery back.
	Limited
)

// LastAttempt is the last success or failure of a subscription.
type LastAttempt struct {
	At     time.Time `json:"at"`
	Status int       `json:"status,omitempty"`
	Error  string    `json:"error,omitempty"`
}

// HealthStats is what a [HealthStore] knows of one subscription.
type HealthStats struct {
	// LastSuccess and LastFailure are nil when there was none (within the
	// store's memory).
	LastSuccess *LastAttempt `json:"last_success,omitempty"`
	LastFailure *LastAttempt `json:"last_failure,omitempty"`
	// ConsecutiveFailures counts the failures since the last success.
	ConsecutiveFailures int64 `json:"consecutive_failures"`
	// FailingSince is the first failure since the last success; zero
	// when the last attempt succeeded or there was none.
	FailingSince time.Time `json:"failing_since,omitzero"`
	// Over the last HealthWindow: successes, failures and deliveries held
	// back by a rate limit, and the latency percentiles of successes and
	// failures together (upper bounds of histogram buckets: 1ms, 2ms, 5ms,
	// 10ms, ... 1min; zero without attempts).
	Succeeded   int64         `json:"succeeded"`
	Failed      int64         `json:"failed"`
	RateLimited int64         `json:"rate_limited"`
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
}

// SuccessRatio is the share of successes among the attempts of the last
// HealthWindow, -1 without attempts.
func (s HealthStats) SuccessRatio() float64 {
	if n := s.Succeeded + s.Failed; n > 0 {
		return float64(s.Succeeded) / float64(n)
	}
	return -1
}

// HealthStore counts, per subscription, what its deliveries came to, for
// health reports and for disabling subscriptions that only fail.
//
// Implementations are safe for concurrent use (a shared one such as
// [RedisHealth] by several processes, whose samples it adds up); a method
// that waits on I/O gives up when ctx is done.
type HealthStore interface {
	// Observe counts samples, given in the order the attempts ended.
	Observe(ctx context.Context, samples []HealthSample) error
	// Stats returns the stats of each subscription asked for that has
	// any; now bounds the window.
	Stats(ctx context.Context, now time.Time, subscriptionIDs ...string) (map[string]HealthStats, error)
	// Forget drops what the store holds of a subscription (removed).
	Forget(ctx context.Context, subscriptionID string) error
}

// healthMinute is one subscription's counts over one minute.
type healthMinute struct {
	ok, fail, limited int64
	buckets           [len(healthBuckets) + 1]int64 // by latency; the last is the overflow
}

// healthDelta is what a batch of samples changes of one subscription's
// stats: both stores apply it the same way (see apply).
type healthDelta struct {
	lastSuccess, lastFailure *LastAttempt
	// sawSuccess: the batch holds a success; then failures counts those
	// after the last one, and firstFailure is the first of them.
	sawSuccess   bool
	failures     int64
	firstFailure time.Time
	minutes      map[int64]*healthMinute // by unix minute
}

// healthDeltas reduces samples, in the order the attempts ended, to a
// delta per subscription.
func healthDeltas(samples []HealthSample) map[string]*healthDelta {
	out := map[string]*healthDelta{}
	for _, s := range samples {
		d := out[s.SubscriptionID]
		if d == nil {
			d = &healthDelta{minutes: map[int64]*healthMinute{}}
			out[s.SubscriptionID] = d
		}
		minute := s.At.Unix() / 60
		m := d.minutes[minute]
		if m == nil {
			m = &healthMinute{}
			d.minutes[minute] = m
		}
		switch s.Kind {
		case Succeeded:
			m.ok++
			m.buckets[latencyBucket(s.Took)]++
			d.lastSuccess = later(d.lastSuccess, &LastAttempt{At: s.At, Status: s.Status})
			d.sawSuccess, d.failures, d.firstFailure = true, 0, time.Time{}
		case FailedSample:
			m.fail++
			m.buckets[latencyBucket(s.Took)]++
			d.lastFailure = later(d.lastFailure, &LastAttempt{At: s.At, Status: s.Status, Error: s.Error})
			if d.failures == 0 {
				d.firstFailure = s.At
			}
			d.failures++
		case Limited:
			m.limited++
		}
	}
	return out
}

// apply changes st by d.
func (d *healthDelta) apply(st *HealthStats) {
	st.LastSuccess = later(st.LastSuccess, d.lastSuccess)
	st.LastFailure = later(st.LastFailure, d.lastFailure)
	switch {
	case d.sawSuccess:
		st.ConsecutiveFailures, st.FailingSince = d.failures, d.firstFailure
	case d.failures > 0:
		st.ConsecutiveFailures += d.failures
		if st.FailingSince.IsZero() {
			st.FailingSince = d.firstFailure
		}
	}
}

// later returns the later of a and b, either of which may be nil.
func later(a, b *LastAttempt) *LastAttempt {
	if a == nil || (b != nil && b.At.After(a.At)) {
		return b
	}
	return a
}

// latencyBucket is the histogram bucket of d.
func latencyBucket(d time.Duration) int {
	for i, bound := range healthBuckets {
		if d <= bound {
			return i
		}
	}
	return len(healthBuckets)
}

// windowStats adds up the minutes of the HealthWindow ending at now into
// st's counts and percentiles.
func windowStats(st *HealthStats, now time.Time, minutes map[int64]*healthMinute) {
	var sum healthMinute
	last := now.Unix() / 60
	for minute, m := range minutes {
		if minute > last-int64(HealthWindow/time.Minute) && minute <= last {
			sum.ok += m.ok
			sum.fail += m.fail
			sum.limited += m.limited
			for i, n := range m.buckets {
				sum.buckets[i] += n
			}
		}
	}
	st.Succeeded, st.Failed, st.RateLimited = sum.ok, sum.fail, sum.limited
	st.P50, st.P99 = percentile(&sum, 0.50), percentile(&sum, 0.99)
}

// percentile is the upper bound of the bucket holding the q-th latency,
// zero without any.
func percentile(m *healthMinute, q float64) time.Duration {
	var total int64
	for _, n := range m.buckets {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := int64(q*float64(total-1)) + 1 // 1-based
	var seen int64
	for i, n := range m.buckets {
		if seen += n; seen >= rank {
			return healthBuckets[min(i, len(healthBuckets)-1)]
		}
	}
	return healthBuckets[len(healthBuckets)-1]
}
