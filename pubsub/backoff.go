package pubsub

import (
	"math/rand/v2"
	"time"
)

// Backoff returns how long to wait before redelivering an event that has
// failed attempt times (1 after the first failure).
type Backoff func(attempt int) time.Duration

// ExponentialBackoff waits first after the first failure and doubles the
// wait after each one up to limit, with ±20% jitter so that failures that
// began together do not retry together.
func ExponentialBackoff(first, limit time.Duration) Backoff {
	return func(attempt int) time.Duration {
		d := first
		for i := 1; i < attempt && d < limit; i++ {
			d *= 2
		}
		return Jitter(min(d, limit), 0.2)
	}
}

// ConstantBackoff waits d before every retry.
func ConstantBackoff(d time.Duration) Backoff {
	return func(int) time.Duration { return d }
}

// Jitter returns d moved at random by up to ±frac of itself.
func Jitter(d time.Duration, frac float64) time.Duration {
	if d <= 0 || frac <= 0 {
		return d
	}
	delta := (rand.Float64()*2 - 1) * frac * float64(d)
	return d + time.Duration(delta)
}
