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
)

// Observer is told what the bridge does, for metrics. Its methods are
// called concurrently and must not block.
type Observer interface {
	// Delivery reports one attempt; status is 0 without a response.
	Delivery(subscriptionID string, outcome Outcome, status int, took time.Duration)
	// RetryScheduled reports a retry due after wait.
	RetryScheduled(subscriptionID string, attempt int, wait time.Duration)
	// DeadLettered reports a delivery given up on.
	DeadLettered(subscriptionID string)
	// FilterFailed reports a filter that failed at run time (a non-match).
	FilterFailed(subscriptionID string)
}

// NopObserver ignores everything.
type NopObserver struct{}

// Delivery does nothing.
func (NopObserver) Delivery(string, Outcome, int, time.Duration) {}

// RetryScheduled does nothing.
func (NopObserver) RetryScheduled(string, int, time.Duration) {}

// DeadLettered does nothing.
func (NopObserver) DeadLettered(string) {}

// FilterFailed does nothing.
func (NopObserver) FilterFailed(string) {}
