package webhook_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// Once the bridge, its backend and the receiver are closed, no goroutine
// of theirs is left, retries in flight included.
func TestBridgeLeavesNoGoroutines(t *testing.T) {
	before := goleak.IgnoreCurrent()
	func() {
		s := httpsink.New(t, nil)
		failing := httpsink.New(t, httpsink.Status(500))
		broker := memory.NewBroker(memory.Options{})
		sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "bridge", Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		b, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: broker,
			Retry:         webhook.RetryPolicy{Schedule: []time.Duration{time.Hour}}, // a retry still waiting at Close
			Subscriptions: []webhook.Subscription{{ID: "ok", Topic: "*", URL: s.URL}, {ID: "fails", Topic: "*", URL: failing.URL}}})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); b.Run(context.Background()) }()
		if err := broker.Emit(context.Background(), pubsub.NewEvent(context.Background(), "t", []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
		s.WaitFor(t, 1, wait)
		failing.WaitFor(t, 1, wait)
		_ = b.Close()
		<-done
		_ = sub.Close()
		_ = broker.Close()
		s.Close()
		failing.Close()
	}()
	if err := goleak.Find(before); err != nil {
		t.Error(err)
	}
}
