package webhook_test

import (
	"fmt"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// A partition key on a payload field keeps one customer's events in one
// partition; an event without the field is placed by its ID.
func ExampleCompilePartitionKey() {
	key, err := webhook.CompilePartitionKey("data.customer", nil)
	if err != nil {
		panic(err)
	}
	for _, ev := range []pubsub.Event{
		{ID: "ev-1", Name: "order.created", Payload: []byte(`{"customer": "acme", "total": 12}`)},
		{ID: "ev-2", Name: "order.paid", Payload: []byte(`{"customer": "acme"}`)},
		{ID: "ev-3", Name: "order.created", Payload: []byte(`{"total": 3}`)},
	} {
		k := key.Key(ev)
		fmt.Printf("%s: key %q, partition %d of 6\n", ev.ID, k, webhook.PartitionOf(k, 6))
	}
	fmt.Println("placed by id:", key.Fallbacks())
	_, err = webhook.CompilePartitionKey("event.created_at", nil)
	fmt.Println(err)
	// Output:
	// ev-1: key "acme", partition 1 of 6
	// ev-2: key "acme", partition 1 of 6
	// ev-3: key "ev-3", partition 2 of 6
	// placed by id: 1
	// the expression gives time.Time; want a string, a number or a bool
}
