package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// A Cluster master that stops answering (SIGSTOP: connections stay open,
// nothing answers) while its partitions' entries are being handled holds
// up its own partitions only: events of the partitions on the other
// masters go on being handled and acknowledged while it hangs, and once
// it is back every event is handled, none lost.
func TestClusterMasterHangingHoldsUpOnlyItsPartitions(t *testing.T) {
	c, client := startCluster(t)
	ctx := context.Background()
	const partitions = 6
	name, err := redistest.Spread(ctx, client, 3, uniqueName("hang"), func(name string) []string {
		return redis.PartitionStreams(name, partitions)
	})
	if err != nil {
		t.Fatal(err)
	}
	streams := redis.PartitionStreams(name, partitions)
	m, err := client.MasterForKey(ctx, streams[0])
	if err != nil {
		t.Fatal(err)
	}
	hung := c.Node(m.Options().Addr)
	var healthy, held []string
	for _, s := range streams {
		if m, _ := client.MasterForKey(ctx, s); m.Options().Addr == hung.Addr {
			held = append(held, s)
		} else {
			healthy = append(healthy, s)
		}
	}

	var mu sync.Mutex
	handled := map[pubsub.ID]int{}
	count := func(prefix string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for id := range handled {
			if strings.HasPrefix(string(id), prefix) {
				n++
			}
		}
		return n
	}
	var reports sync.Map
	subscribe(t, client, redis.SubscriberConfig{
		Streams: []string{name}, Partitions: partitions, Group: "g", Consumer: "c", Concurrency: 8,
	}, func(_ context.Context, ev pubsub.Event) error {
		if strings.HasPrefix(string(ev.ID), "slow-") {
			time.Sleep(30 * time.Millisecond) // a handler's work
		}
		mu.Lock()
		handled[ev.ID]++
		mu.Unlock()
		return nil
	}, func(_ context.Context, err error, _ *pubsub.Event) { reports.Store(err.Error(), true) })
	t.Cleanup(func() { _ = hung.Resume() }) // before the subscriber stops

	emit := func(stream, prefix string, n int) []pubsub.Event {
		t.Helper()
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
		return evs
	}
	// A backlog on the master about to hang, handled slowly, so that
	// entries of it are in the handlers and their acknowledgements due
	// while it hangs.
	var all []pubsub.Event
	for _, s := range held {
		all = append(all, emit(s, "slow-", 150)...)
	}
	eventually(t, "the first slow events handled", func() bool { return count("slow-") >= 20 })
	if err := hung.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()

	// Events on the other masters, sent while it hangs: handled and
	// acknowledged before the Cluster's node timeout (5s) could call it
	// down.
	for _, s := range healthy {
		all = append(all, emit(s, "quick-", 100)...)
	}
	eventually(t, "the other masters' events handled and acknowledged", func() bool {
		if count("quick-") < 100*len(healthy) {
			return false
		}
		for _, s := range healthy {
			if p, err := client.XPending(ctx, s, "g").Result(); err != nil || p.Count > 0 {
				return false
			}
		}
		return true
	})
	if d := time.Since(paused); d > 4*time.Second {
		t.Fatalf("the other masters' %d events took %s to be handled and acknowledged while one master hung", 100*len(healthy), d)
	}
	t.Logf("while the master hung: %d events of the others handled and acknowledged in %s, %d of its own handled",
		100*len(healthy), time.Since(paused).Round(time.Millisecond), count("slow-"))
	if err := hung.Resume(); err != nil {
		t.Fatal(err)
	}

	eventually(t, "every event handled and acknowledged", func() bool {
		for _, s := range streams {
			if p, err := client.XPending(ctx, s, "g").Result(); err != nil || p.Count > 0 {
				return false
			}
		}
		return count("") == len(all)
	})
	mu.Lock()
	defer mu.Unlock()
	twice := 0
	for _, ev := range all {
		if handled[ev.ID] == 0 {
			t.Errorf("event %s was never handled", ev.ID)
		}
		if handled[ev.ID] > 1 {
			twice++
		}
	}
	t.Logf("%d events, %d handled more than once", len(all), twice)
	reports.Range(func(k, _ any) bool { t.Log("reported: ", k); return true })
}
