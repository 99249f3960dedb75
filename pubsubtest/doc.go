// Package pubsubtest holds the conformance suite that every pubsub backend
// passes, and helpers for testing code that emits and consumes events.
//
// # For backend authors
//
// A backend proves the delivery semantics of package pubsub with a short
// test that builds a [Harness] and calls [Run]:
//
//	func TestConformance(t *testing.T) {
//		pubsubtest.Run(t, pubsubtest.Harness{
//			Setup: func(t *testing.T) pubsubtest.Backend { … },
//		})
//	}
//
// Capabilities a backend does not have are declared in [Harness.Lacks],
// with the reason, and their tests are skipped rather than faked.
//
// The harness maps every field of [SubscriberConfig] onto the backend's
// own configuration, HandlerTimeout included: the tests about handler
// deadlines set it short (200ms) and block a handler, ignoring its
// context, until the test ends. They expect such a run to be abandoned
// without stalling other events, the event to be dead-lettered after
// MaxAttempts runs, and Close and a cancelled Consume to return within
// ten times HandlerTimeout plus 5s. A backend that hands an abandoned
// event out again only after a claim timeout sets that timeout short in
// its harness, and [Harness.Timeout] long enough to cover it.
//
// # For service authors
//
// A [Recorder] stands in for a publisher and records what the code under
// test emits; its handlers record what a subscriber delivers. Its Wait
// methods block until the expected events are there, or fail the test
// after a timeout, so tests need no sleeps. [IsExpectedEvent] and
// [Matches] compare an event's name and JSON payload by value.
package pubsubtest
