package pubsubtest

import "testing"

// Run runs the conformance suite against the backend that h sets up, one
// subtest per guarantee of package pubsub. Subtests run one after another,
// so that the goroutine check sees the backend alone.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Setup == nil {
		t.Fatal("pubsubtest: Harness.Setup is nil")
	}
	tests := []struct {
		name string
		fn   func(*testing.T, *fixture)
	}{
		{"RoundTripKeepsEveryField", testRoundTrip},
		{"GroupSplitsEvents", testGroupSplits},
		{"EachGroupGetsEveryEvent", testGroupsGetCopies},
		{"NameSubset", testNameSubset},
		{"RedeliveryIncrementsAttempts", testRedelivery},
		{"DeadLetterAfterMaxAttempts", testDeadLetter},
		{"PermanentErrorSkipsRetries", testPermanent},
		{"PanicIsAnError", testPanic},
		{"HandlerHasDeadline", testHandlerDeadline},
		{"DeadlineErrorIsRetried", testDeadlineRetried},
		{"HungHandlerIsAbandoned", testHungPoison},
		{"HandlerContextCarriesCorrelation", testHandlerContext},
		{"HandlerContextContinuesTrace", testHandlerTrace},
		{"ConcurrentEmitters", testConcurrentEmitters},
		{"OrderForSingleConsumer", testOrder},
		{"GroupKeepsEventsBetweenSubscribers", testGroupKeepsEvents},
		{"InvalidEventRefusesWholeBatch", testInvalidBatch},
		{"EmitWithDoneContext", testEmitDoneContext},
		{"NilHandlerPanics", testNilHandler},
		{"CancelStopsConsumeAfterHandlers", testCancelStopsConsume},
		{"CloseWaitsForHandlers", testCloseWaits},
		{"CloseBoundedByHungHandler", testCloseHung},
		{"CancelBoundedByHungHandler", testCancelHung},
		{"CloseTwice", testCloseTwice},
		{"EmitAfterClose", testEmitAfterClose},
		{"ConsumeAfterClose", testConsumeAfterClose},
		{"DelayedEmit", testDelayedEmit},
		{"NoGoroutineLeaks", testNoLeaks},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newFixture(t, h))
		})
	}
}
