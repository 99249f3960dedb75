package redis_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
	"github.com/switchyard-go/switchyard/redis"
)

// server is the redis-server the package's tests share; each test uses
// streams of its own.
var server *redistest.Server

// quiet drops go-redis's own log lines (dial failures in the restart
// test); the tests check errors where the API returns them.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	goredis.SetLogger(quiet{})
	if os.Getenv("SWITCHYARD_CONSUMER") != "" {
		// A consumer process of TestConsumersKilled: it uses the parent's
		// server, and is killed with SIGKILL, which would leave a server
		// of its own running.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "switchyard-redis-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server, err = redistest.Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	server.Kill()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

var unique atomic.Int64

// uniqueName returns a name no other test uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), unique.Add(1))
}

func newClient(t testing.TB, addr string) goredis.UniversalClient {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// harness runs the conformance suite on the server at addr.
func harness(client goredis.UniversalClient, lacks map[pubsubtest.Capability]string) pubsubtest.Harness {
	return pubsubtest.Harness{
		Lacks: lacks,
		Setup: func(t *testing.T) pubsubtest.Backend {
			stream := uniqueName("conformance")
			pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = pub.Close() })
			return pubsubtest.Backend{
				Publisher: pub,
				NewSubscriber: func(cfg pubsubtest.SubscriberConfig) (pubsub.Subscriber, error) {
					return redis.NewSubscriber(context.Background(), client, redis.SubscriberConfig{
						Streams:     []string{stream},
						Group:       cfg.Group,
						Consumer:    uniqueName("consumer"),
						Names:       cfg.Names,
						Concurrency: cfg.Concurrency,
						MaxAttempts: cfg.MaxAttempts,
						Backoff:     pubsub.ConstantBackoff(cfg.Backoff),
						// A hung handler's entry is taken over after
						// ClaimIdle; keep it short for the suite.
						HandlerTimeout: cfg.HandlerTimeout,
						ClaimIdle:      500 * time.Millisecond,
						Block:          50 * time.Millisecond,
						DelayedPoll:    20 * time.Millisecond,
					})
				},
				DeadLetters: func() ([]pubsubtest.DeadLetter, error) {
					return readDeadLetters(context.Background(), client, stream)
				},
			}
		},
	}
}

func readDeadLetters(ctx context.Context, client goredis.UniversalClient, stream string) ([]pubsubtest.DeadLetter, error) {
	entries, err := client.XRange(ctx, redis.DeadKey(stream), "-", "+").Result()
	if err != nil {
		return nil, err
	}
	var out []pubsubtest.DeadLetter
	for _, e := range entries {
		ev, err := redis.DecodeEntry(e.ID, e.Values)
		reason, _ := e.Values["dead_reason"].(string)
		if err != nil {
			reason += " (" + err.Error() + ")"
		}
		out = append(out, pubsubtest.DeadLetter{Event: ev, Reason: reason})
	}
	return out, nil
}

func TestConformance(t *testing.T) {
	pubsubtest.Run(t, harness(newClient(t, server.Addr), nil))
}
