package webhook

import "time"

// Outcome is how one delivery attempt ended.
type Outcome string

// The outcomes an [Observer] is told of.
const (
	// Delivered: the endpoint answered 2xx.
	Delivered Outcome = "delivered"
	// Failed: an error or another status; a retry or a dead letter follows.
	Failed Outcome = "failed"
	// Gone: the endpoint answered 410; the delivery is dead-lettered.
	Gone Outcome = "gone"
	// DryRun: the event was a dry run, matched and logged but not sent.
	DryRun Outcome = "dry_run"
	// Deferred: the endpoint's circuit was open or its slots full; the
	// delivery waits without spending an attempt.
	Deferred Outcome = "deferred"
	// RateLimited: a rate limit of the subscription or its endpoint was
	// spent; the delivery waits, re-emitted for when the limiter says,
	// without spending an attempt.
	RateLimited Outcome = "rate_limited"
)

// Observer is told what the bridge does, for metrics. Its methods are
// called concurrently and must not block.
type Observer interface {
	// Delivery reports one attempt; status is 0 without a response.
	Delivery(subscriptionID string, outcome Outcome, status int, took time.Duration)
	// RetryScheduled reports a retry due after wait.
	RetryScheduled(subscriptionID string, attempt int, wait time.Duration)
	// DeadLettered reports a delivery given up on, once the dead-letter
	// store holds it, and why.
	DeadLettered(subscriptionID string, kind DeadLetterKind)
	// FilterFailed reports a filter that failed at run time (a non-match).
	FilterFailed(subscriptionID string)
	// EventConsumed reports one source event handled (never a retry
	// event), before its deliveries: matched is how many subscriptions
	// its topic and filter route it to (dry runs included, whatever the
	// deliveries come to), filteredOut how many more had its topic but a
	// filter that said no or failed. An event the backend hands over again
	// (its handling failed) is reported again.
	EventConsumed(matched, filteredOut int)
}

// NopObserver ignores everything.
type NopObserver struct{}

// Delivery does nothing.
func (NopObserver) Delivery(string, Outcome, int, time.Duration) {}

// RetryScheduled does nothing.
func (NopObserver) RetryScheduled(string, int, time.Duration) {}

// DeadLettered does nothing.
func (NopObserver) DeadLettered(string, DeadLetterKind) {}

// EventConsumed does nothing.
func (NopObserver) EventConsumed(int, int) {}

// FilterFailed does nothing.
func (NopObserver) FilterFailed(string) {}
