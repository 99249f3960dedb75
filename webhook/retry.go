package webhook

import (
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// DefaultSchedule is the wait before each retry: about 5s, 5m, 30m, 2h,
// 5h, 10h and 10h, each moved by up to ±20% jitter.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// RetryPolicy says when failed deliveries are tried again. The zero value
// is the default.
type RetryPolicy struct {
	// Schedule is the wait before each retry; the last one repeats.
	// default: DefaultSchedule
	Schedule []time.Duration
	// MaxAttempts is how many deliveries are tried, the first included,
	// before the event is dead-lettered for that subscription.
	// Subscriptions may set their own.
	// default: len(Schedule) + 1
	MaxAttempts int
	// Jitter moves each wait by up to ±Jitter of itself.
	// default: 0.2
	Jitter float64
	// MaxRetryAfter caps the wait a receiver may ask for with Retry-After.
	// default: 24h
	MaxRetryAfter time.Duration
}

func (p *RetryPolicy) setDefaults() {
	if len(p.Schedule) == 0 {
		p.Schedule = DefaultSchedule
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = len(p.Schedule) + 1
	}
	if p.Jitter == 0 {
		p.Jitter = 0.2
	}
	if p.MaxRetryAfter == 0 {
		p.MaxRetryAfter = 24 * time.Hour
	}
}

// wait returns how long to wait after the attempt-th delivery failed
// (1-based); a Retry-After the receiver sent wins, within MaxRetryAfter.
func (p RetryPolicy) wait(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, p.MaxRetryAfter)
	}
	i := min(attempt-1, len(p.Schedule)-1)
	return pubsub.Jitter(p.Schedule[max(i, 0)], p.Jitter)
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		// Capped before multiplying: huge values would wrap around.
		const most = int64(100 * 365 * 24 * 3600)
		return time.Duration(min(max(secs, 0), most)) * time.Second
	}
	if _, err := strconv.ParseUint(h, 10, 64); err == nil || isDigits(h) {
		return 100 * 365 * 24 * time.Hour // beyond int64: as long as can be, then capped
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// isDigits reports whether s is made of decimal digits only.
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
