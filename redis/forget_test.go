package redis_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// forgetIdle is the ForgetIdleConsumers of these tests: short, so that a
// consumer made by the test is idle enough within a moment.
const forgetIdle = 200 * time.Millisecond

// consumers returns the consumers of group on stream by name.
func consumers(t *testing.T, client goredis.UniversalClient, stream, group string) map[string]goredis.XInfoConsumer {
	t.Helper()
	list, err := client.XInfoConsumers(context.Background(), stream, group).Result()
	if err != nil {
		t.Fatalf("XINFO CONSUMERS %s %s: %v", stream, group, err)
	}
	out := make(map[string]goredis.XInfoConsumer, len(list))
	for _, c := range list {
		out[c.Name] = c
	}
	return out
}

func createConsumer(t *testing.T, client goredis.UniversalClient, stream, group string, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := client.XGroupCreateConsumer(context.Background(), stream, group, n).Err(); err != nil {
			t.Fatalf("XGROUP CREATECONSUMER %s %s %s: %v", stream, group, n, err)
		}
	}
}

// holdLease sets the lease key of a consumer name beside stream, as a
// subscriber consuming under that name (its first stream being stream)
// holds it.
func holdLease(t *testing.T, client goredis.UniversalClient, stream, group, name string) string {
	t.Helper()
	key := redis.HelperKey(stream, "consumer:"+group+":"+name)
	if err := client.Set(context.Background(), key, "another-process", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	return key
}

// waitIdle waits until every named consumer of group on stream has been
// idle at least d.
func waitIdle(t *testing.T, client goredis.UniversalClient, stream, group string, d time.Duration, names ...string) {
	t.Helper()
	eventually(t, "consumers "+strings.Join(names, ", ")+" to be idle", func() bool {
		cs := consumers(t, client, stream, group)
		for _, n := range names {
			if c, ok := cs[n]; !ok || c.Idle < d {
				return false
			}
		}
		return true
	})
}

// The script alone, where the promise lives: it removes a consumer only
// when, at that moment, it holds no pending entry, its lease is free and
// it is idle enough.
func TestForgetConsumersScript(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, server.Addr)
	stream, group := uniqueName("forget-script"), "g"
	makeGroup(t, client, stream, group)
	emitN(t, newPublisher(t, client, stream), "job", 5)
	if n := len(takePending(t, client, stream, group, "busy")); n != 5 {
		t.Fatalf("busy took %d entries, want 5", n)
	}
	createConsumer(t, client, stream, group, "stale", "leased")
	leases := []string{
		redis.HelperKey(stream, "consumer:g:stale"),
		holdLease(t, client, stream, group, "leased"),
		redis.HelperKey(stream, "consumer:g:busy"),
		redis.HelperKey(stream, "consumer:g:nobody"),
	}
	waitIdle(t, client, stream, group, forgetIdle, "stale", "leased", "busy")

	got, err := redis.ForgetConsumers(ctx, client, stream, group, forgetIdle, leases, "stale", "leased", "busy", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"removed", "leased", "pending", "gone"}; !slices.Equal(got, want) {
		t.Errorf("outcomes %q, want %q", got, want)
	}

	// Idle, but not for as long as asked: kept.
	createConsumer(t, client, stream, group, "recent")
	got, err = redis.ForgetConsumers(ctx, client, stream, group, time.Hour, []string{redis.HelperKey(stream, "consumer:g:recent")}, "recent")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"active"}; !slices.Equal(got, want) {
		t.Errorf("outcome for a consumer idle a moment: %q, want %q", got, want)
	}

	cs := consumers(t, client, stream, group)
	if _, ok := cs["stale"]; ok {
		t.Error("stale consumer still in the group")
	}
	for _, n := range []string{"leased", "busy", "recent"} {
		if _, ok := cs[n]; !ok {
			t.Errorf("consumer %s removed", n)
		}
	}
	if cs["busy"].Pending != 5 || pendingCount(t, client, stream, group) != 5 {
		t.Errorf("busy holds %d entries, the group %d; want 5 and 5", cs["busy"].Pending, pendingCount(t, client, stream, group))
	}
}

func TestForgetIdleConsumers(t *testing.T) {
	testForgetIdleConsumers(t, newClient(t, server.Addr))
}

// testForgetIdleConsumers runs a subscriber over three partitions (each
// in a slot of its own on a Cluster) beside consumers that are stale,
// hold entries, or whose names are leased, and checks that it removes
// only the stale ones, and that the entries of a crashed consumer it
// kept are taken over and handled once each.
func testForgetIdleConsumers(t *testing.T, client goredis.UniversalClient) {
	ctx := context.Background()
	base, group := uniqueName("forget"), "g"
	streams := redis.PartitionStreams(base, 3)
	for _, s := range streams {
		makeGroup(t, client, s, group)
		createConsumer(t, client, s, group, "stale-a", "stale-b", "leased", "me")
	}
	// A crashed consumer holds entries of the second partition.
	want := emitN(t, newPublisher(t, client, streams[1]), "job", 20)
	if n := len(takePending(t, client, streams[1], group, "crashed")); n != 20 {
		t.Fatalf("crashed took %d entries, want 20", n)
	}
	// "leased" consumes under a lease beside the subscriber's first
	// stream; "leased-here" beside the third partition, its own first.
	leaseKey := holdLease(t, client, streams[0], group, "leased")
	createConsumer(t, client, streams[2], group, "leased-here")
	holdLease(t, client, streams[2], group, "leased-here")

	c := newCounter()
	const claimIdle = 5 * time.Second // well past the first looks
	subscribe(t, client, redis.SubscriberConfig{
		Streams: []string{base}, Partitions: 3, Group: group, Consumer: "me",
		ClaimIdle: claimIdle, ForgetIdleConsumers: forgetIdle,
	}, func(_ context.Context, ev pubsub.Event) error {
		c.add(ev)
		return nil
	}, nil)

	gone := func(names ...string) func() bool {
		return func() bool {
			for _, s := range streams {
				cs := consumers(t, client, s, group)
				for _, n := range names {
					if _, ok := cs[n]; ok {
						return false
					}
				}
			}
			return true
		}
	}
	eventually(t, "the stale consumers to be removed from every partition", gone("stale-a", "stale-b"))
	for i, s := range streams {
		cs := consumers(t, client, s, group)
		for _, n := range []string{"me", "leased"} {
			if _, ok := cs[n]; !ok {
				t.Errorf("partition %d: consumer %s removed", i, n)
			}
		}
		if _, ok := cs["leased-here"]; i == 2 && !ok {
			t.Errorf("partition %d: consumer leased-here removed", i)
		}
		if i == 1 && cs["crashed"].Pending != 20 {
			t.Errorf("partition %d: crashed holds %d entries (present: %v), want 20 until they are taken over", i, cs["crashed"].Pending, cs["crashed"].Name != "")
		}
	}

	// Nothing lost: the crashed consumer's entries are taken over after
	// ClaimIdle and handled, each once.
	c.waitFor(t, ids(want), claimIdle+3*wait)
	if dups, _ := c.duplicates(); dups != 0 {
		t.Errorf("%d duplicate handlings", dups)
	}
	eventually(t, "the crashed consumer, its entries taken over, to be removed", gone("crashed"))

	// Once its lease is gone, the name is removed like any other.
	if err := client.Del(ctx, leaseKey).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the consumer whose lease lapsed to be removed", gone("leased"))
	for i, s := range streams {
		if _, ok := consumers(t, client, s, group)["me"]; !ok {
			t.Errorf("partition %d: the subscriber's own consumer removed", i)
		}
	}
	if n := pendingCount(t, client, streams[1], group); n != 0 {
		t.Errorf("%d entries still pending", n)
	}
}

// looks counts the subscriber's log records about looking for idle
// consumers.
type looks struct {
	mu sync.Mutex
	n  int
}

func (l *looks) Enabled(context.Context, slog.Level) bool { return true }
func (l *looks) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "looked for idle consumers") {
		l.mu.Lock()
		l.n++
		l.mu.Unlock()
	}
	return nil
}
func (l *looks) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *looks) WithGroup(string) slog.Handler      { return l }
func (l *looks) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// A negative ForgetIdleConsumers removes nothing: beside a subscriber of
// another group on the same stream that looks every forgetIdle (and has
// looked three times, removing its group's stale consumer), one set to
// never has not looked once and its group keeps its stale consumer.
func TestForgetIdleConsumersNever(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("forget-never")
	for _, g := range []string{"never", "control"} {
		makeGroup(t, client, stream, g)
		createConsumer(t, client, stream, g, "stale")
	}
	var never, control looks
	noop := func(context.Context, pubsub.Event) error { return nil }
	subscribe(t, client, redis.SubscriberConfig{
		Streams: []string{stream}, Group: "never", Consumer: "me", ClaimIdle: time.Second,
		ForgetIdleConsumers: -1, Logger: slog.New(&never),
	}, noop, nil)
	subscribe(t, client, redis.SubscriberConfig{
		Streams: []string{stream}, Group: "control", Consumer: "me", ClaimIdle: time.Second,
		ForgetIdleConsumers: forgetIdle, Logger: slog.New(&control),
	}, noop, nil)
	eventually(t, "the control subscriber to remove its stale consumer and look three times", func() bool {
		_, ok := consumers(t, client, stream, "control")["stale"]
		return !ok && control.count() >= 3
	})
	if n := never.count(); n != 0 {
		t.Errorf("the subscriber set never to remove consumers looked %d times", n)
	}
	if _, ok := consumers(t, client, stream, "never")["stale"]; !ok {
		t.Error("stale consumer removed with ForgetIdleConsumers < 0")
	}
}
