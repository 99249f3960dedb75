package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
	"github.com/switchyard-go/switchyard/redis"
)

// TestRedisRestart kills redis-server (SIGKILL, AOF with appendfsync
// always) while events are being emitted and consumed, and starts it
// again: every event whose Emit returned nil is handled, Emits while the
// server is down return errors, and the subscriber resumes by itself.
func TestRedisRestart(t *testing.T) {
	srv, err := redistest.Start(t.TempDir(), "--appendonly", "yes", "--appendfsync", "always")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = client.Close() })
	stream := uniqueName("restart")
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	rec := pubsubtest.NewRecorder()
	log := &errorLog{}
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Concurrency: 2}, rec.Handle, log.handle)

	var written []pubsub.Event
	emit := func(i int) error {
		ev := pubsub.NewEvent(context.Background(), "tick", []byte(fmt.Sprint(i)))
		err := pub.Emit(context.Background(), ev)
		if err == nil {
			written = append(written, ev)
		}
		return err
	}
	for i := range 100 {
		if err := emit(i); err != nil {
			t.Fatalf("Emit %d before the kill: %v", i, err)
		}
	}
	srv.Kill()
	for i := range 10 {
		if err := emit(100 + i); err == nil {
			t.Errorf("Emit %d succeeded while the server was down", 100+i)
		}
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// As a producer would, retry each event until it is written; the
	// client needs a moment to dial again after its failures.
	for i := range 100 {
		deadline := time.Now().Add(10 * time.Second)
		for emit(200+i) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("Emit %d still failing 10s after the restart", 200+i)
			}
			time.Sleep(20 * time.Millisecond) // a producer's retry pause
		}
	}

	rec.WaitUntil(t, 30*time.Second, func(got []pubsub.Event) bool {
		seen := make(map[pubsub.ID]bool, len(got))
		for _, ev := range got {
			seen[ev.ID] = true
		}
		for _, ev := range written {
			if !seen[ev.ID] {
				return false
			}
		}
		return true
	})
	if errs, _ := log.snapshot(); len(errs) == 0 {
		t.Error("the subscriber reported no error while the server was down")
	}
}
