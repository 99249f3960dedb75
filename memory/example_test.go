package memory_test

import (
	"context"
	"fmt"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
)

// A round trip: a subscriber in a consumer group handles what the broker
// emits.
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	b := memory.NewBroker(memory.Options{})
	defer b.Close()

	sub, err := b.NewSubscriber(memory.SubscriberConfig{Group: "billing", Names: []pubsub.Name{"order.created"}})
	if err != nil {
		panic(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sub.Consume(ctx, func(ctx context.Context, ev pubsub.Event) error {
			fmt.Printf("%s: %s\n", ev.Name, ev.Payload)
			stop() // one event is all this example needs
			return nil
		}, nil)
	}()

	err = b.Emit(ctx,
		pubsub.NewEvent(ctx, "order.shipped", []byte(`{"order_id":6}`)), // not a name billing wants
		pubsub.NewEvent(ctx, "order.created", []byte(`{"order_id":7}`)),
	)
	if err != nil {
		panic(err)
	}
	<-done
	// Output: order.created: {"order_id":7}
}
