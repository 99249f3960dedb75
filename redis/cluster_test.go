package redis_test

import (
	"context"
	"fmt"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
	"github.com/switchyard-go/switchyard/redis"
)

// startCluster starts a 3-master Redis Cluster on loopback ports for one
// test and returns it and a client of it.
func startCluster(t *testing.T) (*redistest.Cluster, *goredis.ClusterClient) {
	t.Helper()
	dir := t.TempDir()
	c, err := redistest.StartCluster(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = client.Close() })
	if err := client.ForEachMaster(context.Background(), func(ctx context.Context, m *goredis.Client) error {
		return m.Ping(ctx).Err()
	}); err != nil {
		t.Fatal(err)
	}
	return c, client
}

// TestCluster runs the conformance suite on a Redis Cluster of three
// masters, then checks that a partitioned topic spreads over them and is
// consumed whole, and that idle consumers are removed from each
// partition's group (its lease keys in another slot than most partitions).
func TestCluster(t *testing.T) {
	_, client := startCluster(t)
	t.Run("Conformance", func(t *testing.T) {
		pubsubtest.Run(t, harness(client, nil))
	})
	t.Run("Partitions", func(t *testing.T) { testPartitions(t, client) })
	t.Run("ForgetIdleConsumers", func(t *testing.T) { testForgetIdleConsumers(t, client) })
}

func testPartitions(t *testing.T, client goredis.UniversalClient) {
	const partitions = 6
	stream := uniqueName("partitioned")
	ctx := context.Background()
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream, Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	rec := pubsubtest.NewRecorder()
	for i := range 2 {
		subscribe(t, client, redis.SubscriberConfig{
			Streams: []string{stream}, Partitions: partitions, Group: "g", Consumer: fmt.Sprint("c", i), Concurrency: 2,
		}, rec.Handle, nil)
	}
	want := make([]pubsub.Event, 300)
	for i := range want {
		want[i] = pubsub.NewEvent(ctx, "spread", []byte(fmt.Sprint(i)))
	}
	if err := pub.Emit(ctx, want...); err != nil { // one pipeline over several nodes
		t.Fatal(err)
	}
	got := rec.WaitForN(t, len(want), wait)
	counts := map[pubsub.ID]int{}
	for _, ev := range got {
		counts[ev.ID]++
	}
	for _, ev := range want {
		if counts[ev.ID] != 1 {
			t.Errorf("event %s handled %d times, want once", ev.ID, counts[ev.ID])
		}
	}

	nodes := map[string]bool{}
	for _, p := range redis.PartitionStreams(stream, partitions) {
		n, err := client.XLen(ctx, p).Result()
		if err != nil || n == 0 {
			t.Errorf("partition %s holds %d entries (%v), want some", p, n, err)
		}
		cc := client.(*goredis.ClusterClient)
		node, err := cc.MasterForKey(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		nodes[node.Options().Addr] = true
	}
	if len(nodes) < 2 {
		t.Errorf("the %d partitions all live on %v; want them spread over the masters", partitions, nodes)
	}
}
