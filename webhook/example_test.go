package webhook_test

import (
	"context"
	"fmt"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// Signing a delivery, with the Standard Webhooks specification's own test
// vector, and checking it as a receiver would.
func ExampleSign() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"test": 2432232314}`)
	sig, err := webhook.Sign([]string{secret}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
	if err != nil {
		panic(err)
	}
	fmt.Println(sig)
	fmt.Println(webhook.Verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, sig))
	// Output:
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
	// true
}

// Filters are checked when subscriptions are set; one that does not
// compile is refused with the subscription's id.
func ExampleCompile() {
	err := webhook.Compile(webhook.Subscription{
		ID: "billing", Topic: "order.created", URL: "https://billing.internal/hooks",
		Filter: `data["body"]["total"] > 100 and`,
	})
	fmt.Println(err)
	// Output:
	// webhook: subscription "billing": filter: unexpected token EOF (line 1, column 31)
}

// Walking dead letters a page at a time, oldest first, as the bridge's
// admin API and `webhook-bridge dlq` do: each page's next cursor asks for
// the following one, and "" ends the walk. Removing what a page returned
// (a replay, say) moves nothing under the cursor.
func ExampleMemoryDeadLetters_List() {
	ctx := context.Background()
	store := &webhook.MemoryDeadLetters{MaxLen: 4}
	for _, id := range []string{"e1", "e2", "e3", "e4", "e5"} {
		_ = store.Add(ctx, webhook.DeadLetter{SubscriptionID: "billing", Event: pubsub.Event{ID: pubsub.ID(id)}})
	}
	after := ""
	for {
		page, next, err := store.List(ctx, after, 3)
		if err != nil {
			panic(err)
		}
		for _, dl := range page {
			fmt.Println(dl.ID, dl.Event.ID)
			_ = store.Remove(ctx, dl.ID)
		}
		if next == "" {
			break
		}
		after = next
	}
	n, _ := store.Len(ctx)
	fmt.Println("left:", n, "dropped:", store.Dropped())
	// Output:
	// 2 e2
	// 3 e3
	// 4 e4
	// 5 e5
	// left: 0 dropped: 1
}
