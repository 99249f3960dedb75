package webhook_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// Partitioned, an event's record of settled deliveries lives beside its
// partition (the key the publisher uses), and every operation finds it
// there; the records of two events do not mix, and Forget removes one.
func TestPartitionedFanoutLogStaysInItsPartition(t *testing.T) {
	client := startRedis(t)
	ctx := context.Background()
	const n = 4
	var logs []webhook.FanoutLog
	for i := range n {
		logs = append(logs, webhook.RedisFanoutLog{Client: client, Prefix: fmt.Sprintf("{events:%d}:webhook:fanout:", i)})
	}
	key := func(ev pubsub.Event) string { return string(ev.Payload) } // the customer, say
	l := webhook.PartitionedFanoutLog{Partitions: logs, Key: key}
	a, b := event("a", `acme`), event("b", `globex`)
	if err := l.Add(ctx, a, "s1", "s2"); err != nil {
		t.Fatal(err)
	}
	if err := l.Add(ctx, b, "s3"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ev   pubsub.Event
		want []string
	}{{a, []string{"s1", "s2"}}, {b, []string{"s3"}}} {
		part := webhook.PartitionOf(key(tc.ev), n)
		keys, err := client.Keys(ctx, fmt.Sprintf("{events:%d}:webhook:fanout:*", part)).Result()
		if err != nil || len(keys) == 0 {
			t.Fatalf("no record in partition %d of %s: %v %v", part, tc.ev.ID, keys, err)
		}
		got, err := l.Settled(ctx, tc.ev)
		slices.Sort(got)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Settled(%s) = %v %v, want %v", tc.ev.ID, got, err, tc.want)
		}
	}
	if err := l.Forget(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Settled(ctx, a); len(got) != 0 {
		t.Errorf("after Forget: %v", got)
	}
	if got, _ := l.Settled(ctx, b); len(got) != 1 {
		t.Errorf("forgetting a took b's record: %v", got)
	}
	// Garbage where a record should be reads as an error, not a panic.
	if err := client.Set(ctx, mustOneKey(t, client, webhook.PartitionOf("globex", n)), "junk", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Settled(ctx, b); err == nil {
		t.Error("a string where the set should be read without an error")
	}
}

func mustOneKey(t *testing.T, client goredis.UniversalClient, part int) string {
	t.Helper()
	keys, err := client.Keys(context.Background(), fmt.Sprintf("{events:%d}:webhook:fanout:*", part)).Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("partition %d: %v %v", part, keys, err)
	}
	return keys[0]
}
