package memory_test

import (
	"testing"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
)

// TestConformance runs the whole suite; the memory backend lacks nothing.
func TestConformance(t *testing.T) {
	pubsubtest.Run(t, pubsubtest.Harness{
		Setup: func(t *testing.T) pubsubtest.Backend {
			b := memory.NewBroker(memory.Options{})
			t.Cleanup(func() { _ = b.Close() })
			return pubsubtest.Backend{
				Publisher: b,
				NewSubscriber: func(cfg pubsubtest.SubscriberConfig) (pubsub.Subscriber, error) {
					return b.NewSubscriber(memory.SubscriberConfig{
						Group:          cfg.Group,
						Names:          cfg.Names,
						Concurrency:    cfg.Concurrency,
						MaxAttempts:    cfg.MaxAttempts,
						Backoff:        pubsub.ConstantBackoff(cfg.Backoff),
						HandlerTimeout: cfg.HandlerTimeout,
					})
				},
				DeadLetters: func() ([]pubsubtest.DeadLetter, error) {
					var out []pubsubtest.DeadLetter
					for _, dl := range b.DeadLetters() {
						out = append(out, pubsubtest.DeadLetter{Event: dl.Event, Reason: dl.Err.Error()})
					}
					return out, nil
				},
			}
		},
	})
}
