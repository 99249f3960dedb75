package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// WaitReplicas: with a replica in sync every Emit (single, batch and
// delayed) returns nil; with no replica it returns ErrNotReplicated for
// each event, which was written all the same; a Cluster client is refused.
func TestPublisherWaitReplicas(t *testing.T) {
	ctx := context.Background()
	t.Run("no replica", func(t *testing.T) {
		client := newClient(t, server.Addr)
		stream := uniqueName("wait")
		pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream, WaitReplicas: 1, WaitTimeout: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close()
		one := pubsub.NewEvent(ctx, "n", nil)
		if err := pub.Emit(ctx, one); !errors.Is(err, redis.ErrNotReplicated) || !strings.Contains(err.Error(), "0 of 1") {
			t.Errorf("single Emit = %v, want ErrNotReplicated", err)
		}
		two := []pubsub.Event{pubsub.NewEvent(ctx, "n", nil), pubsub.NewEvent(ctx, "n", nil)}
		if err := pub.Emit(ctx, two...); !errors.Is(err, redis.ErrNotReplicated) || !strings.Contains(err.Error(), string(two[1].ID)) {
			t.Errorf("batch Emit = %v, want ErrNotReplicated naming each event", err)
		}
		if n := client.XLen(ctx, stream).Val(); n != 3 {
			t.Errorf("XLEN = %d, want the 3 events written", n)
		}
	})
	t.Run("replica in sync", func(t *testing.T) {
		primary, err := redistest.Start(t.TempDir(), "--repl-diskless-sync-delay", "0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(primary.Kill)
		host, port, _ := strings.Cut(primary.Addr, ":")
		replica, err := redistest.Start(t.TempDir(), "--replicaof", host, port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(replica.Kill)
		rc := newClient(t, replica.Addr)
		client := newClient(t, primary.Addr)
		// In sync on both sides: the replica's link is up, and the primary
		// counts it online (only then does WAIT count its acknowledgements;
		// the replica sees its link up a moment before).
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(rc.Info(ctx, "replication").Val(), "master_link_status:up") ||
			!strings.Contains(client.Info(ctx, "replication").Val(), "state=online") {
			if time.Now().After(deadline) {
				t.Fatal("the replica never synced")
			}
			time.Sleep(20 * time.Millisecond) // a readiness poll of another process
		}
		pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: "s", WaitReplicas: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close()
		if err := pub.Emit(ctx, pubsub.NewEvent(ctx, "n", nil)); err != nil {
			t.Error(err)
		}
		if err := pub.Emit(ctx, pubsub.NewEvent(ctx, "n", nil), pubsub.NewEvent(ctx, "n", nil)); err != nil {
			t.Error(err)
		}
		if err := pub.EmitAt(ctx, time.Now().Add(time.Hour), pubsub.NewEvent(ctx, "n", nil)); err != nil {
			t.Error(err)
		}
		// A 202 means the replica holds it: read there, at once.
		if n := rc.XLen(ctx, "s").Val(); n != 3 {
			t.Errorf("the replica holds %d entries, want 3", n)
		}
	})
	t.Run("cluster client refused", func(t *testing.T) {
		cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
		defer cc.Close()
		if _, err := redis.NewPublisher(cc, redis.PublisherConfig{WaitReplicas: 1}); err == nil || !strings.Contains(err.Error(), "WaitReplicas") {
			t.Errorf("NewPublisher on a Cluster client = %v, want refused", err)
		}
		if _, err := redis.NewPublisher(cc, redis.PublisherConfig{WaitReplicas: -1}); err == nil {
			t.Error("negative WaitReplicas accepted")
		}
	})
}
