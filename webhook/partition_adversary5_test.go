package webhook_test

import (
	"testing"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// TestPartitionKeyLargeNumbersAdversary5: "Numbers are keys by their
// value: 42, 42.0 and "42" are one key, up to 2^53". A whole number sent
// as a JSON number by one producer and as a string by another places the
// events of one customer in one partition, up to 2^53 (payload numbers
// are 64-bit floats: larger ids are documented to be sent as strings).
func TestPartitionKeyLargeNumbersAdversary5(t *testing.T) {
	k, err := webhook.CompilePartitionKey("data.customer_id", nil)
	if err != nil {
		t.Fatal(err)
	}
	key := func(payload string) string {
		return k.Key(pubsub.Event{ID: "ev-1", Name: "order.created", Payload: []byte(payload)})
	}
	for _, tc := range []struct{ number, text string }{
		{"42", `"42"`},
		{"42.0", `"42"`},
		{"4294967296", `"4294967296"`},
		{"1e3", `"1000"`},
		{"9007199254740992", `"9007199254740992"`},
		{"-9007199254740992", `"-9007199254740992"`},
	} {
		n := key(`{"customer_id": ` + tc.number + `}`)
		s := key(`{"customer_id": ` + tc.text + `}`)
		if n != s {
			t.Errorf("customer_id %s gives the key %q, %s gives %q: one customer, two keys (partitions %d and %d of 12)",
				tc.number, n, tc.text, s, webhook.PartitionOf(n, 12), webhook.PartitionOf(s, 12))
		}
	}
	if k.Fallbacks() != 0 {
		t.Errorf("%d fallbacks", k.Fallbacks())
	}
}

// TestPartitionKeyNotOfTheEventIsRefusedAdversary5: an event's retries,
// dead letters and fan-out log are placed by evaluating the key again,
// each time; a key that is not a function of the event (now()) places
// them in a partition other than the event's. It compiles to a string,
// so nothing refuses it at load.
func TestPartitionKeyNotOfTheEventIsRefusedAdversary5(t *testing.T) {
	for _, src := range []string{`string(now().UnixNano())`, `now().Format("15:04:05.000000000")`} {
		k, err := webhook.CompilePartitionKey(src, nil)
		if err != nil {
			continue // refused: good
		}
		ev := pubsub.Event{ID: "ev-1", Name: "order.created", Payload: []byte(`{}`)}
		seen := map[int]bool{}
		for range 50 {
			seen[webhook.PartitionOf(k.Key(ev), 12)] = true
		}
		t.Errorf("partition_key %s is accepted, and places one event in %d of 12 partitions over 50 evaluations", src, len(seen))
	}
}

// TestPartitionKeyOnAttemptsMovesRetriesAdversary5 records what
// event.attempts (documented as a bad idea, accepted at load) does: the
// event is placed with attempts 0 as posted, its retry by the event as
// delivered (attempts 1 and up), so retries, dead letters and the fan-out
// log of one event are spread over several partitions. The test fails
// to show it; the suggested fix is to refuse event.attempts at load.
func TestPartitionKeyOnAttemptsMovesRetriesAdversary5(t *testing.T) {
	k, err := webhook.CompilePartitionKey("event.attempts", nil)
	if err != nil {
		return // refused: good
	}
	const n = 12
	posted := pubsub.Event{ID: "ev-1", Name: "order.created", Payload: []byte(`{}`)}
	home := webhook.PartitionOf(k.Key(posted), n)
	var moved []int
	for attempts := 1; attempts <= 5; attempts++ {
		retry := pubsub.Event{ID: "ev-1/sub/1", Name: webhook.RetryEventName, Payload: []byte(
			`{"subscription_id":"sub","attempts":` + string(rune('0'+attempts)) + `,"event":{"id":"ev-1","name":"order.created","meta":{"attempts":` + string(rune('0'+attempts)) + `},"payload":"e30="}}`)}
		if p := webhook.PartitionOf(k.Key(retry), n); p != home {
			moved = append(moved, p)
		}
	}
	if len(moved) > 0 {
		t.Errorf("partition_key event.attempts is accepted; the event is in partition %d, its retries go to partitions %v", home, moved)
	}
}
