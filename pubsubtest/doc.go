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
// # For service authors
//
// A [Recorder] stands in for a publisher and records what the code under
// test emits; its handlers record what a subscriber delivers. Its Wait
// methods block until the expected events are there, or fail the test
// after a timeout, so tests need no sleeps. [IsExpectedEvent] and
// [Matches] compare an event's name and JSON payload by value.
package pubsubtest
