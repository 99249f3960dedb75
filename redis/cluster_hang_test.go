package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// A Cluster master that stops answering (SIGSTOP: connections stay open,
// nothing answers) holds up its own partitions only: events of the
// partitions on the other masters go on being handled and acknowledged
// while it hangs, whatever of its own is in hand — handlers running,
// retries waiting to be handed out — and once it is back every event is
// handled, none lost. (An entry recovered from a crash runs alone, and
// its count and acknowledgement hold the others up while it waits for
// Redis: see the package doc.) Each pause is shorter than the Cluster's
// node timeout (5s), so the Cluster itself never says it is down.
func TestClusterMasterHangingHoldsUpOnlyItsPartitions(t *testing.T) {
	c, client := startCluster(t)
	t.Run("HandlersRunning", func(t *testing.T) { testHangWithHandlersRunning(t, c, client) })
	t.Run("RetriesWaiting", func(t *testing.T) { testHangWithRetriesWaiting(t, c, client) })
}

// hangSetup is a partitioned stream whose six partitions fall two on each
// master, and the master of its first partition, which is to hang.
type hangSetup struct {
	name          string
	streams       []string
	held, healthy []string // partitions on the master that hangs, and on the others
	hung          *redistest.Server
	handled       *byPrefix
}

func newHangSetup(t *testing.T, c *redistest.Cluster, client *goredis.ClusterClient) *hangSetup {
	t.Helper()
	ctx := context.Background()
	name, err := redistest.Spread(ctx, client, 3, uniqueName("hang"), func(name string) []string {
		return redis.PartitionStreams(name, 6)
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &hangSetup{name: name, streams: redis.PartitionStreams(name, 6), handled: &byPrefix{n: map[pubsub.ID]int{}}}
	m, err := client.MasterForKey(ctx, h.streams[0])
	if err != nil {
		t.Fatal(err)
	}
	h.hung = c.Node(m.Options().Addr)
	for _, s := range h.streams {
		if m, _ := client.MasterForKey(ctx, s); m.Options().Addr == h.hung.Addr {
			h.held = append(h.held, s)
		} else {
			h.healthy = append(h.healthy, s)
		}
	}
	return h
}

// hang pauses the master; the test's cleanup resumes it before the
// subscriber stops.
func (h *hangSetup) hang(t *testing.T) time.Time {
	t.Helper()
	if err := h.hung.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.hung.Resume() })
	return time.Now()
}

// othersFlow adds 20 events to each partition on the other masters and
// fails t unless they are all handled and acknowledged within 4s of the
// pause.
func (h *hangSetup) othersFlow(t *testing.T, client goredis.UniversalClient, paused time.Time) {
	t.Helper()
	ctx := context.Background()
	for _, s := range h.healthy {
		emitIDs(t, client, s, "quick-", 20)
	}
	eventually(t, "the other masters' events handled and acknowledged", func() bool {
		if h.handled.count("quick-") < 20*len(h.healthy) {
			return false
		}
		for _, s := range h.healthy {
			if p, err := client.XPending(ctx, s, "g").Result(); err != nil || p.Count > 0 {
				return false
			}
		}
		return true
	})
	if d := time.Since(paused); d > 4*time.Second {
		t.Fatalf("the other masters' %d events took %s to be handled and acknowledged while one master hung", 20*len(h.healthy), d)
	}
	t.Logf("while the master hung: the other masters' %d events handled and acknowledged in %s",
		20*len(h.healthy), time.Since(paused).Round(time.Millisecond))
}

// allDone resumes the master and waits for every event emitted to be
// handled exactly once and acknowledged.
func (h *hangSetup) allDone(t *testing.T, client goredis.UniversalClient, want int) {
	t.Helper()
	if err := h.hung.Resume(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every event handled and acknowledged", func() bool {
		for _, s := range h.streams {
			if p, err := client.XPending(context.Background(), s, "g").Result(); err != nil || p.Count > 0 {
				return false
			}
		}
		return h.handled.count("") == want
	})
	if twice := h.handled.twice(); twice > 0 {
		t.Errorf("%d of %d events handled more than once", twice, want)
	}
}

// Handlers of the hung master's entries are running and finish while it
// hangs: their acknowledgements wait for it; the other masters' do not.
func testHangWithHandlersRunning(t *testing.T, c *redistest.Cluster, client *goredis.ClusterClient) {
	h := newHangSetup(t, c, client)
	subscribe(t, client, redis.SubscriberConfig{
		Streams: []string{h.name}, Partitions: 6, Group: "g", Consumer: "c", Concurrency: 8,
	}, func(_ context.Context, ev pubsub.Event) error {
		if strings.HasPrefix(string(ev.ID), "slow-") {
			time.Sleep(30 * time.Millisecond) // a handler's work
		}
		h.handled.add(ev.ID)
		return nil
	}, nil)
	for _, s := range h.held {
		emitIDs(t, client, s, "slow-", 150)
	}
	eventually(t, "the first slow events handled", func() bool { return h.handled.count("slow-") >= 20 })
	paused := h.hang(t)
	h.othersFlow(t, client, paused)
	h.allDone(t, client, 300+20*len(h.healthy))
}

// Retries of the hung master's entries, claimed just before it hangs,
// wait to be handed out, more than the acknowledger would hold were its
// queue bounded (BatchSize 1, Concurrency 4): once handled, none of them
// blocks a worker.
func testHangWithRetriesWaiting(t *testing.T, c *redistest.Cluster, client *goredis.ClusterClient) {
	h := newHangSetup(t, c, client)
	var mu sync.Mutex
	failed := 0
	subscribe(t, client, redis.SubscriberConfig{
		Streams: []string{h.name}, Partitions: 6, Group: "g", Consumer: "c",
		BatchSize: 1, Concurrency: 4, Backoff: pubsub.ConstantBackoff(1500 * time.Millisecond),
	}, func(_ context.Context, ev pubsub.Event) error {
		if strings.HasPrefix(string(ev.ID), "retry-") {
			if ev.Meta.Attempts == 0 {
				mu.Lock()
				failed++
				mu.Unlock()
				return errors.New("fails once")
			}
			time.Sleep(20 * time.Millisecond) // a handler's work
		}
		h.handled.add(ev.ID)
		return nil
	}, nil)
	const backlog = 60
	emitIDs(t, client, h.held[0], "retry-", backlog)
	eventually(t, "every retry- event failed once", func() bool { mu.Lock(); defer mu.Unlock(); return failed >= backlog })
	eventually(t, "the first retries handled", func() bool { return h.handled.count("retry-") >= 2 })
	paused := h.hang(t)
	h.othersFlow(t, client, paused)
	h.allDone(t, client, backlog+20*len(h.healthy))
}

// emitIDs adds n events to stream, with ids prefix<stream>-<i>.
func emitIDs(t *testing.T, client goredis.UniversalClient, stream, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	evs := make([]pubsub.Event, n)
	for i := range evs {
		evs[i] = pubsub.NewEvent(ctx, "e", nil)
		evs[i].ID = pubsub.ID(fmt.Sprintf("%s%s-%d", prefix, stream, i))
	}
	if err := pub.Emit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
}

// byPrefix counts handlings per event id.
type byPrefix struct {
	mu sync.Mutex
	n  map[pubsub.ID]int
}

func (b *byPrefix) add(id pubsub.ID) {
	b.mu.Lock()
	b.n[id]++
	b.mu.Unlock()
}

// count is the number of events handled whose id starts with prefix.
func (b *byPrefix) count(prefix string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for id := range b.n {
		if strings.HasPrefix(string(id), prefix) {
			n++
		}
	}
	return n
}

// twice is the number of events handled more than once.
func (b *byPrefix) twice() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, k := range b.n {
		if k > 1 {
			n++
		}
	}
	return n
}
