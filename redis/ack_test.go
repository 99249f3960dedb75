package redis_test

import (
	"context"
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

// heldBack consumes streams with n handlers that all start, then wait
// for release before they succeed; it keeps what the ErrorHandler heard.
type heldBack struct {
	c       *counter
	allIn   chan struct{} // closed once n handlers have started
	release chan struct{}
	acking  chan struct{} // closed on the first report about acknowledging
	mu      sync.Mutex
	reports []string
}

func holdHandlers(t *testing.T, client goredis.UniversalClient, streams []string, n int) *heldBack {
	t.Helper()
	h := &heldBack{c: newCounter(), allIn: make(chan struct{}), release: make(chan struct{}), acking: make(chan struct{})}
	var entered atomic.Int32
	var once sync.Once
	subscribe(t, client, redis.SubscriberConfig{Streams: streams, Group: "g", Concurrency: n},
		func(_ context.Context, ev pubsub.Event) error {
			if entered.Add(1) == int32(n) {
				close(h.allIn)
			}
			<-h.release
			h.c.add(ev)
			return nil
		}, func(_ context.Context, err error, _ *pubsub.Event) {
			h.mu.Lock()
			h.reports = append(h.reports, err.Error())
			h.mu.Unlock()
			if strings.Contains(err.Error(), "acknowledging") {
				once.Do(func() { close(h.acking) })
			}
		})
	return h
}

// givenUp returns the reports of acknowledgements given up.
func (h *heldBack) givenUp() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.reports {
		if strings.Contains(r, "redelivered") {
			out = append(out, r)
		}
	}
	return out
}

// emitFresh adds n new events to stream and returns their ids.
func emitFresh(t *testing.T, client goredis.UniversalClient, stream string, n int) []pubsub.ID {
	t.Helper()
	ctx := context.Background()
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var ids []pubsub.ID
	for range n {
		ev := pubsub.NewEvent(ctx, "e", nil)
		ids = append(ids, ev.ID)
		if err := pub.Emit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// proxied returns a fault proxy in front of the shared server, a client
// of the server and one through the proxy.
func proxied(t *testing.T) (proxy *faultproxy.Proxy, direct, via goredis.UniversalClient) {
	t.Helper()
	proxy, err := faultproxy.New(server.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	return proxy, newClient(t, server.Addr), newClient(t, proxy.Addr())
}

// Redis becomes unreachable as handlers finish (the proxy refuses
// connections and resets those open), and stays so past the first tries
// to acknowledge: the acknowledgements wait for it rather than give up,
// and once it is back they land, so no event is handled twice.
func TestAcknowledgementsWaitOutAnOutage(t *testing.T) {
	proxy, direct, via := proxied(t)
	stream := uniqueName("ackoutage")
	h := holdHandlers(t, via, []string{stream}, 20)
	ids := emitFresh(t, direct, stream, 20)
	<-h.allIn
	proxy.StopListening()
	proxy.ResetAll()
	close(h.release)
	<-h.acking // the tries after which an earlier version gave up
	if err := proxy.StartListening(); err != nil {
		t.Fatal(err)
	}
	h.c.waitFor(t, ids, wait)
	eventually(t, "every entry acknowledged", func() bool { return pendingCount(t, direct, stream, "g") == 0 })
	if dups, _ := h.c.duplicates(); dups > 0 {
		t.Errorf("%d handlings beyond the first, want none", dups)
	}
	for _, r := range h.givenUp() {
		t.Errorf("reported %q: the acknowledgements were given up", r)
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
	h := holdHandlers(t, client, []string{stream}, 20)
	ids := emitFresh(t, client, stream, 20)
	<-h.allIn
	scripter := goredis.NewClient(&goredis.Options{Addr: srv.Addr, ReadTimeout: -1})
	defer scripter.Close()
	go func() { _ = scripter.Eval(context.Background(), "while true do end", nil).Err() }()
	killer := newClient(t, srv.Addr)
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
	close(h.release)
	time.Sleep(time.Second) // the script keeps Redis busy for a second
	if err := killer.ScriptKill(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	h.c.waitFor(t, ids, wait)
	// An entry given up would stay pending and be handled again before
	// it is acknowledged: once none is pending, every handling is counted.
	eventually(t, "every entry acknowledged", func() bool { return pendingCount(t, client, stream, "g") == 0 })
	if dups, _ := h.c.duplicates(); dups > 0 || len(h.givenUp()) > 0 {
		t.Errorf("BUSY (a fault that passes) made the acknowledgements be given up (%q): %d handled twice", h.givenUp(), dups)
	}
}

// Acknowledgements of two streams wait out an outage (one server, one
// acknowledger for both); meanwhile one stream is deleted and made a
// string. Once Redis is back the other's are acknowledged, none handled
// twice, and consuming it goes on; those of the string are given up
// (WRONGTYPE does not pass) and reported, naming only them.
func TestAcknowledgementsOfAStreamMadeAStringAreGivenUp(t *testing.T) {
	proxy, direct, via := proxied(t)
	ctx := context.Background()
	a, b := uniqueName("acktypeA"), uniqueName("acktypeB")
	h := holdHandlers(t, via, []string{a, b}, 20)
	emitFresh(t, direct, a, 10)
	idsB := emitFresh(t, direct, b, 10)
	<-h.allIn
	proxy.StopListening()
	proxy.ResetAll()
	close(h.release)
	<-h.acking
	if err := direct.Del(ctx, a).Err(); err != nil {
		t.Fatal(err)
	}
	if err := direct.Set(ctx, a, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := proxy.StartListening(); err != nil {
		t.Fatal(err)
	}
	h.c.waitFor(t, idsB, wait)
	eventually(t, "B acknowledged", func() bool { return pendingCount(t, direct, b, "g") == 0 })
	h.c.waitFor(t, emitFresh(t, direct, b, 10), wait)
	eventually(t, "B's later entries acknowledged", func() bool { return pendingCount(t, direct, b, "g") == 0 })
	eventually(t, "the acknowledgements of the string given up", func() bool { return len(h.givenUp()) > 0 })
	for _, r := range h.givenUp() {
		if !strings.Contains(r, "acknowledging 10 entries") || !strings.Contains(r, "WRONGTYPE") {
			t.Errorf("reported %q, want the 10 entries of the string given up for WRONGTYPE", r)
		}
	}
	if dups, _ := h.c.duplicates(); dups > 0 {
		t.Errorf("%d handlings beyond the first", dups)
	}
}

// Redis serves reads but refuses acknowledgements (an ACL without XACK,
// answered NOPERM, a refusal that can pass): the subscriber waits once
// its acknowledger holds 100 batches, rather than read and hold entries
// without end, and when XACK is allowed again everything lands, none
// handled twice.
func TestAcknowledgementsRefusedHoldUpReading(t *testing.T) {
	ctx := context.Background()
	admin := newClient(t, server.Addr)
	user := uniqueName("noack")
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-xack").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Do(context.Background(), "ACL", "DELUSER", user).Err() })
	client := goredis.NewClient(&goredis.Options{Addr: server.Addr, Username: user, Password: "pw"})
	t.Cleanup(func() { _ = client.Close() })
	stream := uniqueName("acknoperm")
	c := newCounter()
	trying := make(chan struct{})
	var once sync.Once
	const batch, concurrency = 2, 4
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", BatchSize: batch, Concurrency: concurrency},
		func(_ context.Context, ev pubsub.Event) error { c.add(ev); return nil },
		func(_ context.Context, err error, _ *pubsub.Event) {
			if strings.Contains(err.Error(), "NOPERM") && strings.Contains(err.Error(), "trying again") {
				once.Do(func() { close(trying) })
			}
		})
	ids := emitFresh(t, admin, stream, 1000)
	<-trying // five tries, a few seconds: time enough to read all 1000 without a bound
	c.mu.Lock()
	handled := len(c.n)
	c.mu.Unlock()
	// The queue's bound, the batch being tried, the workers waiting to
	// queue theirs and a read in hand.
	if limit := 100*batch + 2*concurrency + batch + 1; handled > limit {
		t.Errorf("%d events handled while XACK was refused, want at most %d", handled, limit)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "+xack").Err(); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, ids, wait)
	eventually(t, "every entry acknowledged", func() bool { return pendingCount(t, admin, stream, "g") == 0 })
	if dups, _ := c.duplicates(); dups > 0 {
		t.Errorf("%d handlings beyond the first", dups)
	}
	t.Logf("%d of 1000 handled while XACK was refused", handled)
}
