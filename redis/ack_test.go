package redis_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/switchyard-go/switchyard/internal/faultproxy"
	"github.com/switchyard-go/switchyard/internal/redistest"
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

// A script keeps Redis busy for a second (it answers BUSY to everything
// else) as 20 handlers finish: a fault that passes, like LOADING, so the
// acknowledgements wait for it and land; none is given up and handled
// again.
func TestAcknowledgementsWaitOutABusyScript(t *testing.T) {
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	client := newClient(t, srv.Addr)
	ctx := context.Background()
	if err := client.ConfigSet(ctx, "busy-reply-threshold", "100").Err(); err != nil {
		t.Fatal(err)
	}
	stream := uniqueName("ackbusy")
	const n = 20
	c := newCounter()
	var entered atomic.Int32
	allIn := make(chan struct{})
	release := make(chan struct{})
	var mu sync.Mutex
	var reports []string
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Concurrency: n},
		func(_ context.Context, ev pubsub.Event) error {
			if entered.Add(1) == n {
				close(allIn)
			}
			<-release
			c.add(ev)
			return nil
		}, func(_ context.Context, err error, _ *pubsub.Event) {
			mu.Lock()
			reports = append(reports, err.Error())
			mu.Unlock()
		})
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	var ids []pubsub.ID
	for range n {
		ev := pubsub.NewEvent(ctx, "e", nil)
		ids = append(ids, ev.ID)
		if err := pub.Emit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	<-allIn
	scripter := goredis.NewClient(&goredis.Options{Addr: srv.Addr, ReadTimeout: -1})
	defer scripter.Close()
	go func() { _ = scripter.Eval(context.Background(), "while true do end", nil).Err() }()
	killer := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer killer.Close()
	// Redis answers BUSY once the script has run past the threshold.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := killer.Ping(ctx).Err()
		if err != nil && strings.HasPrefix(err.Error(), "BUSY") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no BUSY: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling for BUSY
	}
	close(release)
	time.Sleep(time.Second) // the script keeps Redis busy for a second
	if err := killer.ScriptKill(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, ids, wait)
	// An entry given up would stay pending and be handled again before
	// it is acknowledged: once none is pending, every handling is counted.
	eventually(t, "every entry acknowledged", func() bool { return pendingCount(t, client, stream, "g") == 0 })
	dups, _ := c.duplicates()
	mu.Lock()
	defer mu.Unlock()
	gaveUp := 0
	for _, r := range reports {
		if strings.Contains(r, "redelivered") {
			gaveUp++
			if gaveUp == 1 {
				t.Logf("reported: %s", r)
			}
		}
	}
	t.Logf("%d events, %d handlings beyond the first, %d give-up reports", n, dups, gaveUp)
	if dups > 0 || gaveUp > 0 {
		t.Errorf("BUSY (a fault that passes) made the acknowledgements be given up: %d handled twice", dups)
	}
}

// Acknowledgements of two streams wait out an outage (one server, one
// acknowledger for both); meanwhile one stream is deleted and made a
// string. Once Redis is back the other's are acknowledged, none handled
// twice, and consuming it goes on; those of the string are given up
// (WRONGTYPE does not pass) and reported, naming only them.
func TestAcknowledgementsOfAStreamMadeAStringAreGivenUp(t *testing.T) {
	proxy, err := faultproxy.New(server.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	direct := newClient(t, server.Addr)
	via := newClient(t, proxy.Addr())
	ctx := context.Background()
	a, b := uniqueName("acktypeA"), uniqueName("acktypeB")
	const n = 10
	c := newCounter()
	var entered atomic.Int32
	allIn := make(chan struct{})
	release := make(chan struct{})
	var mu sync.Mutex
	var reports []string
	var ackReports atomic.Int32
	subscribe(t, via, redis.SubscriberConfig{Streams: []string{a, b}, Group: "g", Concurrency: 2 * n},
		func(_ context.Context, ev pubsub.Event) error {
			if entered.Add(1) == 2*n {
				close(allIn)
			}
			<-release
			c.add(ev)
			return nil
		}, func(_ context.Context, err error, _ *pubsub.Event) {
			mu.Lock()
			reports = append(reports, err.Error())
			mu.Unlock()
			if strings.Contains(err.Error(), "acknowledging") {
				ackReports.Add(1)
			}
		})
	emit := func(stream string, k int) []pubsub.ID {
		pub, err := redis.NewPublisher(direct, redis.PublisherConfig{Stream: stream})
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close()
		var ids []pubsub.ID
		for range k {
			ev := pubsub.NewEvent(ctx, "e", nil)
			ids = append(ids, ev.ID)
			if err := pub.Emit(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		return ids
	}
	emit(a, n)
	idsB := emit(b, n)
	<-allIn
	proxy.StopListening()
	proxy.ResetAll()
	close(release)
	eventually(t, "acks failing", func() bool { return ackReports.Load() > 0 })
	if err := direct.Del(ctx, a).Err(); err != nil {
		t.Fatal(err)
	}
	if err := direct.Set(ctx, a, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := proxy.StartListening(); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, idsB, wait)
	eventually(t, "B acknowledged", func() bool { return pendingCount(t, direct, b, "g") == 0 })
	more := emit(b, n)
	c.waitFor(t, more, wait)
	eventually(t, "B's later entries acknowledged", func() bool { return pendingCount(t, direct, b, "g") == 0 })
	eventually(t, "the acknowledgements of the string given up", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(reports, func(r string) bool { return strings.Contains(r, "redelivered") })
	})
	mu.Lock()
	defer mu.Unlock()
	for _, r := range reports {
		if strings.Contains(r, "redelivered") && (!strings.Contains(r, "acknowledging 10 entries") || !strings.Contains(r, "WRONGTYPE")) {
			t.Errorf("reported %q, want the 10 entries of the string given up for WRONGTYPE", r)
		}
	}
	if dups, _ := c.duplicates(); dups > 0 {
		t.Errorf("%d handlings beyond the first", dups)
	}
}
