package redis_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard-go/switchyard/internal/faultproxy"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// Redis becomes unreachable as handlers finish (the proxy refuses
// connections and resets those open), and stays so past the first tries
// to acknowledge: the acknowledgements wait for it rather than give up,
// and once it is back they land, so no event is handled twice.
func TestAcknowledgementsWaitOutAnOutage(t *testing.T) {
	proxy, err := faultproxy.New(server.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	direct := newClient(t, server.Addr)
	via := newClient(t, proxy.Addr())
	stream := uniqueName("ackoutage")
	const n = 20

	c := newCounter()
	var entered atomic.Int32
	allIn := make(chan struct{})
	release := make(chan struct{})
	var reportsMu sync.Mutex
	var reports []string
	acking := make(chan struct{}) // closed on the first report of acknowledgements not taken
	var once sync.Once
	subscribe(t, via, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Concurrency: n},
		func(_ context.Context, ev pubsub.Event) error {
			if entered.Add(1) == n {
				close(allIn)
			}
			<-release
			c.add(ev)
			return nil
		}, func(_ context.Context, err error, _ *pubsub.Event) {
			reportsMu.Lock()
			reports = append(reports, err.Error())
			reportsMu.Unlock()
			if strings.Contains(err.Error(), "acknowledging") {
				once.Do(func() { close(acking) })
			}
		})
	pub, err := redis.NewPublisher(direct, redis.PublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	var ids []pubsub.ID
	for range n {
		ev := pubsub.NewEvent(context.Background(), "e", nil)
		ids = append(ids, ev.ID)
		if err := pub.Emit(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	<-allIn
	proxy.StopListening()
	proxy.ResetAll()
	close(release)
	<-acking // the tries after which an earlier version gave up
	if err := proxy.StartListening(); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, ids, wait)
	eventually(t, "every entry acknowledged", func() bool { return pendingCount(t, direct, stream, "g") == 0 })
	if dups, _ := c.duplicates(); dups > 0 {
		t.Errorf("%d handlings beyond the first, want none", dups)
	}
	reportsMu.Lock()
	defer reportsMu.Unlock()
	for _, r := range reports {
		if strings.Contains(r, "redelivered") {
			t.Errorf("reported %q: the acknowledgements were given up", r)
		}
	}
}
