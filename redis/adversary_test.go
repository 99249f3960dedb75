package redis_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// The tests in this file attack the promises of the package doc
// ("Delivery semantics") from outside. Each one fails while the defect it
// names is present.

// attemptsLog records Meta.Attempts of every handler run.
type attemptsLog struct {
	mu  sync.Mutex
	got []int
}

func (a *attemptsLog) add(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, n)
}

func (a *attemptsLog) snapshot() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.got...)
}

// An entry taken over from a dead consumer (or recovered from this
// consumer's own pending list) whose handler keeps failing must get
// MaxAttempts deliveries, Attempts growing by one per redelivery, and be
// dead-lettered with the handler's error. A retry of such a "claimed"
// entry is counted twice (the retry's XCLAIM and then startScript), so
// Attempts jumps by 2 and the entry is dead-lettered early with the
// crash-or-hang reason although every run had an outcome.
func TestAdversaryRetryOfClaimedEntryCountsOnce(t *testing.T) {
	for _, how := range []string{"taken over", "own pending list"} {
		t.Run(how, func(t *testing.T) {
			client := newClient(t, server.Addr)
			stream, group := uniqueName("claimedretry"), "g"
			makeGroup(t, client, stream, group)
			emitN(t, newPublisher(t, client, stream), "job", 1)
			holder := "dead-consumer"
			if how == "own pending list" {
				holder = "worker"
			}
			if n := len(takePending(t, client, stream, group, holder)); n != 1 {
				t.Fatalf("took %d", n)
			}
			// One delivery without an outcome (a crash), then a live
			// consumer whose handler fails every time.
			runs := &attemptsLog{}
			dead := make(chan error, 1)
			subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: group, Consumer: "worker",
				MaxAttempts: 5, Backoff: pubsub.ConstantBackoff(10 * time.Millisecond),
				ClaimIdle: 100 * time.Millisecond, ClaimInterval: 20 * time.Millisecond},
				func(_ context.Context, ev pubsub.Event) error {
					runs.add(ev.Meta.Attempts)
					return errors.New("transient failure")
				},
				func(_ context.Context, err error, _ *pubsub.Event) {
					if errors.Is(err, pubsub.ErrDeadLetter) {
						select {
						case dead <- err:
						default:
						}
					}
				})
			var err error
			select {
			case err = <-dead:
			case <-time.After(wait):
				t.Fatalf("not dead-lettered; handler runs with Attempts %v", runs.snapshot())
			}
			got := runs.snapshot()
			// Delivery 1 was the crash; deliveries 2..5 reach the handler
			// with Attempts 1..4.
			want := []int{1, 2, 3, 4}
			if !equalInts(got, want) {
				t.Errorf("handler runs saw Attempts %v, want %v", got, want)
			}
			if strings.Contains(err.Error(), "without an outcome") {
				t.Errorf("dead-lettered as crash/hang although every run returned an error: %v", err)
			}
			var entries []goredis.XMessage
			eventually(t, "the dead letter", func() bool {
				entries, _ = client.XRange(context.Background(), redis.DeadKey(stream), "-", "+").Result()
				return len(entries) == 1
			})
			t.Logf("dead_reason=%q dead_attempts=%v", entries[0].Values["dead_reason"], entries[0].Values["dead_attempts"])
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
