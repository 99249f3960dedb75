// Command quickstart emits a few events through the in-memory broker and
// consumes them in two consumer groups, one of which fails once and is
// retried. Run it with:
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	broker := memory.NewBroker(memory.Options{})
	defer broker.Close()

	billing, err := broker.NewSubscriber(memory.SubscriberConfig{
		Group:   "billing",
		Names:   []pubsub.Name{"order.created"},
		Backoff: pubsub.ConstantBackoff(200 * time.Millisecond),
	})
	if err != nil {
		log.Fatal(err)
	}
	audit, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "audit"})
	if err != nil {
		log.Fatal(err)
	}

	var wg sync.WaitGroup
	wg.Add(4) // billing handles 1 event (after a retry), audit 3
	failedOnce := false
	go billing.Consume(ctx, func(ctx context.Context, ev pubsub.Event) error {
		if !failedOnce {
			failedOnce = true
			fmt.Printf("billing  %s attempt %d: failing on purpose\n", ev.Name, ev.Meta.Attempts)
			return errors.New("payment service unavailable")
		}
		fmt.Printf("billing  %s attempt %d: charged %s\n", ev.Name, ev.Meta.Attempts, ev.Payload)
		wg.Done()
		return nil
	}, nil)
	go audit.Consume(ctx, func(ctx context.Context, ev pubsub.Event) error {
		fmt.Printf("audit    %s correlation=%s\n", ev.Name, ev.Meta.CorrelationID)
		wg.Done()
		return nil
	}, nil)

	ctx = pubsub.WithCorrelationID(ctx, "checkout-1")
	err = broker.Emit(ctx,
		pubsub.NewEvent(ctx, "cart.closed", []byte(`{"cart_id":3}`)),
		pubsub.NewEvent(ctx, "order.created", []byte(`{"order_id":7,"total":"9.90"}`)),
		pubsub.NewEvent(ctx, "email.queued", []byte(`{"to":"ann@example.com"}`)),
	)
	if err != nil {
		log.Fatal(err)
	}
	wg.Wait()
	fmt.Println("done: every event handled")
}
