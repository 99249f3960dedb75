package redis_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
	"github.com/switchyard-go/switchyard/redis"
)

const wait = 10 * time.Second

// errorLog collects what a subscriber reports to its ErrorHandler.
type errorLog struct {
	mu   sync.Mutex
	errs []error
	evs  []*pubsub.Event
}

func (l *errorLog) handle(_ context.Context, err error, ev *pubsub.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
	l.evs = append(l.evs, ev)
}

func (l *errorLog) snapshot() ([]error, []*pubsub.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...), append([]*pubsub.Event(nil), l.evs...)
}

// eventually polls cond, which reads state outside the test process (such
// as Redis's pending lists), until it holds; it fails t after wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", wait, what)
		}
		<-tick.C
	}
}

func pendingCount(t *testing.T, client goredis.UniversalClient, stream, group string) int64 {
	t.Helper()
	p, err := client.XPending(context.Background(), stream, group).Result()
	if err != nil {
		t.Fatalf("XPENDING %s %s: %v", stream, group, err)
	}
	return p.Count
}

func subscribe(t *testing.T, client goredis.UniversalClient, cfg redis.SubscriberConfig, h pubsub.Handler, eh pubsub.ErrorHandler) *redis.Subscriber {
	t.Helper()
	if cfg.Block == 0 {
		cfg.Block = 50 * time.Millisecond
	}
	s, err := redis.NewSubscriber(context.Background(), client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Consume(ctx, h, eh) }()
	t.Cleanup(func() { cancel(); <-done; _ = s.Close() })
	return s
}

// takePending reads every entry of stream as consumer, without
// acknowledging: what a consumer that died after reading leaves behind.
func takePending(t *testing.T, client goredis.UniversalClient, stream, group, consumer string) []string {
	t.Helper()
	res, err := client.XReadGroup(context.Background(), &goredis.XReadGroupArgs{
		Group: group, Consumer: consumer, Streams: []string{stream, ">"}, Count: 1000, Block: -1,
	}).Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range res[0].Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

func emitN(t *testing.T, pub *redis.Publisher, name string, n int) []pubsub.Event {
	t.Helper()
	evs := make([]pubsub.Event, n)
	for i := range evs {
		evs[i] = pubsub.NewEvent(context.Background(), pubsub.Name(name), []byte{byte(i)})
	}
	if err := pub.Emit(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	return evs
}

func newPublisher(t *testing.T, client goredis.UniversalClient, stream string) *redis.Publisher {
	t.Helper()
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func makeGroup(t *testing.T, client goredis.UniversalClient, stream, group string) {
	t.Helper()
	if err := client.XGroupCreateMkStream(context.Background(), stream, group, "$").Err(); err != nil {
		t.Fatal(err)
	}
}

func TestDeadConsumersEntriesAreReclaimed(t *testing.T) {
	client := newClient(t, server.Addr)
	stream, group := uniqueName("reclaim"), "g"
	makeGroup(t, client, stream, group)
	want := emitN(t, newPublisher(t, client, stream), "job", 30)
	if n := len(takePending(t, client, stream, group, "dead-consumer")); n != 30 {
		t.Fatalf("dead consumer took %d entries, want 30", n)
	}

	rec := pubsubtest.NewRecorder()
	subscribe(t, client, redis.SubscriberConfig{
		Streams: []string{stream}, Group: group, Consumer: "survivor",
		ClaimIdle: 100 * time.Millisecond, ClaimInterval: 20 * time.Millisecond, BatchSize: 7, // several XAUTOCLAIM pages
	}, rec.Handle, nil)
	got := rec.WaitForN(t, len(want), wait)
	seen := map[pubsub.ID]bool{}
	for _, ev := range got {
		if seen[ev.ID] {
			t.Errorf("event %s handled twice", ev.ID)
		}
		seen[ev.ID] = true
		if ev.Meta.Attempts != 1 {
			t.Errorf("reclaimed event %s has Attempts %d, want 1 (its second delivery)", ev.ID, ev.Meta.Attempts)
		}
	}
	pending := func() int64 {
		p, err := client.XPending(context.Background(), stream, group).Result()
		if err != nil {
			t.Fatal(err)
		}
		return p.Count
	}
	eventually(t, "no entry pending", func() bool { return pending() == 0 })
}

func TestOwnPendingEntriesAreRedeliveredOnStart(t *testing.T) {
	client := newClient(t, server.Addr)
	stream, group := uniqueName("restart"), "g"
	makeGroup(t, client, stream, group)
	pub := newPublisher(t, client, stream)
	want := emitN(t, pub, "job", 5)
	takePending(t, client, stream, group, "worker-1") // worker-1 crashed holding these

	rec := pubsubtest.NewRecorder()
	s := subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: group, Consumer: "worker-1"}, rec.Handle, nil)
	later := emitN(t, pub, "job", 1)
	got := rec.WaitForN(t, 6, wait)
	for i, ev := range want {
		if got[i].ID != ev.ID || got[i].Meta.Attempts != 1 {
			t.Errorf("delivery %d: %s with Attempts %d, want the pending %s first, with 1", i, got[i].ID, got[i].Meta.Attempts, ev.ID)
		}
	}
	if got[5].ID != later[0].ID || got[5].Meta.Attempts != 0 {
		t.Errorf("new entry delivered as %s with Attempts %d", got[5].ID, got[5].Meta.Attempts)
	}

	// With nothing pending, Close removes the consumer from the group.
	eventually(t, "no entry pending", func() bool { return pendingCount(t, client, stream, group) == 0 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	consumers, err := client.XInfoConsumers(context.Background(), stream, group).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(consumers) != 0 {
		t.Errorf("consumers after Close = %v, want none", consumers)
	}
}

func TestPoisonEntriesAreDeadLetteredAndConsumingGoesOn(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("poison")
	ctx := context.Background()
	log := &errorLog{}
	rec := pubsubtest.NewRecorder()
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g"}, rec.Handle, log.handle)

	add := func(vals ...any) {
		if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: vals}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	add("name", "good.1", "payload", "a")
	add("payload", "no name")
	add("name", "bad.attempts", "payload", "x", "attempts", "many")
	add("name", "bad.time", "payload", "x", "created_at", "yesterday")
	add("name", "good.2", "payload", "b", "unknown_field", "ignored")
	got := rec.WaitForN(t, 2, wait)
	if got[0].Name != "good.1" || got[1].Name != "good.2" {
		t.Fatalf("handled %s, %s; want good.1, good.2", got[0].Name, got[1].Name)
	}

	dls, err := readDeadLetters(ctx, client, stream)
	if err != nil {
		t.Fatal(err)
	}
	wantReasons := []string{`no "name" field`, `attempts "many" is not a non-negative integer`, `created_at "yesterday" is not RFC 3339`}
	if len(dls) != len(wantReasons) {
		t.Fatalf("%d dead letters, want %d: %+v", len(dls), len(wantReasons), dls)
	}
	for i, want := range wantReasons {
		if !strings.Contains(dls[i].Reason, want) {
			t.Errorf("dead letter %d reason %q, want it to say %q", i, dls[i].Reason, want)
		}
	}
	errs, evs := log.snapshot()
	if len(errs) != 3 {
		t.Fatalf("ErrorHandler called %d times, want 3: %v", len(errs), errs)
	}
	for i, err := range errs {
		if !errors.Is(err, pubsub.ErrMalformed) || evs[i] == nil {
			t.Errorf("ErrorHandler got %v with event %v, want ErrMalformed with the partly decoded event", err, evs[i])
		}
	}
	if evs[1].Name != "bad.attempts" {
		t.Errorf("partly decoded event has name %q", evs[1].Name)
	}
	// Poison is acknowledged, and so is what follows it.
	eventually(t, "no entry pending", func() bool { return pendingCount(t, client, stream, "g") == 0 })
}

func TestInteropWithRedisCLI(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("interop")
	host, port, _ := strings.Cut(server.Addr, ":")
	cli := func(args ...string) string {
		out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return string(out)
	}

	rec := pubsubtest.NewRecorder()
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g"}, rec.Handle, nil)
	// The command docs/wire-format.md shows.
	cli("XADD", stream, "*", "id", "evt-1", "name", "order.created", "payload", `{"order_id":7}`,
		"created_at", "2026-01-02T03:04:05.123456789Z", "correlation_id", "req-9", "attempts", "2", "dry_run", "true")
	got := rec.WaitForN(t, 1, wait)[0]
	want := pubsub.Event{ID: "evt-1", Name: "order.created", Payload: []byte(`{"order_id":7}`), Meta: pubsub.Meta{
		CreatedAtUTC: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), CorrelationID: "req-9", Attempts: 2, IsDryRun: true,
	}}
	if got.ID != want.ID || got.Name != want.Name || string(got.Payload) != string(want.Payload) ||
		!got.Meta.CreatedAtUTC.Equal(want.Meta.CreatedAtUTC) || got.Meta.CorrelationID != want.Meta.CorrelationID ||
		got.Meta.Attempts != want.Meta.Attempts || got.Meta.IsDryRun != want.Meta.IsDryRun {
		t.Errorf("consumed %+v, want %+v", got, want)
	}

	ev := pubsub.Event{ID: "evt-2", Name: "order.paid", Payload: []byte("raw \x00\xff bytes"), Meta: pubsub.Meta{
		CreatedAtUTC: time.Date(2026, 5, 6, 7, 8, 9, 1, time.UTC), CorrelationID: "req-10", Attempts: 3, IsDryRun: true,
	}}
	if err := newPublisher(t, client, stream).Emit(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	out := cli("--no-raw", "XRANGE", stream, "-", "+", "COUNT", "2")
	for _, want := range []string{`"id"`, `"evt-2"`, `"name"`, `"order.paid"`, `"payload"`, `"raw \x00\xff bytes"`,
		`"created_at"`, `"2026-05-06T07:08:09.000000001Z"`, `"correlation_id"`, `"req-10"`, `"attempts"`, `"3"`, `"dry_run"`, `"1"`} {
		if !strings.Contains(out, want) {
			t.Errorf("redis-cli XRANGE output lacks %s:\n%s", want, out)
		}
	}
}

func TestDeletedGroupIsMadeAgain(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("nogroup")
	pub := newPublisher(t, client, stream)
	log := &errorLog{}
	rec := pubsubtest.NewRecorder()
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g"}, rec.Handle, log.handle)
	first := emitN(t, pub, "before", 1)
	rec.WaitForEvent(t, func(ev pubsub.Event) bool { return ev.ID == first[0].ID }, wait)

	if err := client.XGroupDestroy(context.Background(), stream, "g").Err(); err != nil {
		t.Fatal(err)
	}
	after := emitN(t, pub, "after", 3) // added while the group is gone
	got := rec.WaitForN(t, 4, wait)
	for i, ev := range after {
		if got[1+i].ID != ev.ID {
			t.Errorf("after the group was deleted, delivery %d is %s, want %s", 1+i, got[1+i].ID, ev.ID)
		}
	}
}

func TestTrimmedWhilePendingIsAcknowledged(t *testing.T) {
	client := newClient(t, server.Addr)
	stream, group := uniqueName("trimmed"), "g"
	ctx := context.Background()
	makeGroup(t, client, stream, group)
	emitN(t, newPublisher(t, client, stream), "job", 3)
	ids := takePending(t, client, stream, group, "worker-1")
	if err := client.XDel(ctx, stream, ids[1]).Err(); err != nil {
		t.Fatal(err)
	}
	log := &errorLog{}
	rec := pubsubtest.NewRecorder()
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: group, Consumer: "worker-1"}, rec.Handle, log.handle)
	rec.WaitForN(t, 2, wait)
	eventually(t, "no entry pending", func() bool { return pendingCount(t, client, stream, group) == 0 })
	errs, _ := log.snapshot()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), ids[1]+" of stream") || !strings.Contains(errs[0].Error(), "deleted while pending") {
		t.Errorf("ErrorHandler got %v, want one report of the deleted entry %s", errs, ids[1])
	}
}

func TestDelayedEventsSurviveSubscriberRestart(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("delayed")
	ctx := context.Background()
	first, err := redis.NewSubscriber(ctx, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	ev := pubsub.NewEvent(ctx, "later", []byte("kept in redis"))
	due := time.Now().Add(200 * time.Millisecond)
	if err := newPublisher(t, client, stream).EmitAt(ctx, due, ev); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil { // no subscriber runs while the event is scheduled
		t.Fatal(err)
	}
	if n, err := client.ZCard(ctx, redis.DelayedKey(stream)).Result(); err != nil || n != 1 {
		t.Fatalf("delayed set holds %d (%v), want 1", n, err)
	}

	rec := pubsubtest.NewRecorder()
	// Two subscribers run the move; the event must arrive once.
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "a", DelayedPoll: 5 * time.Millisecond}, rec.Handle, nil)
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "b", DelayedPoll: 5 * time.Millisecond}, rec.Handle, nil)
	got := rec.WaitForN(t, 1, wait)
	// Due times are kept in milliseconds (the delayed set's scores).
	if got[0].ID != ev.ID || string(got[0].Payload) != "kept in redis" || time.Now().Before(due.Truncate(time.Millisecond)) {
		t.Errorf("got %s %q at %v, want %s after %v", got[0].ID, got[0].Payload, time.Now(), ev.ID, due)
	}
	if n, _ := client.XLen(ctx, stream).Result(); n != 1 {
		t.Errorf("stream holds %d entries after the move, want exactly 1", n)
	}
}

func TestStartBeginningReadsHistory(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("history")
	old := emitN(t, newPublisher(t, client, stream), "old", 3)
	fromStart, onlyNew := pubsubtest.NewRecorder(), pubsubtest.NewRecorder()
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "replay", Start: redis.StartBeginning}, fromStart.Handle, nil)
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "live"}, onlyNew.Handle, nil)
	fresh := emitN(t, newPublisher(t, client, stream), "new", 1)
	got := fromStart.WaitForN(t, 4, wait)
	for i, ev := range append(old, fresh...) {
		if got[i].ID != ev.ID {
			t.Errorf("StartBeginning delivery %d = %s, want %s", i, got[i].Name, ev.Name)
		}
	}
	live := onlyNew.WaitForN(t, 1, wait)
	if live[0].ID != fresh[0].ID {
		t.Errorf("StartNew group got %s first, want only the new event", live[0].Name)
	}
}

func TestRetryWaitsWithoutHoldingOthers(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("noblock")
	rec := pubsubtest.NewRecorder()
	failed := false
	h := rec.HandleWith(func(_ context.Context, ev pubsub.Event) error {
		if ev.Name == "flaky" && !failed {
			failed = true
			return errors.New("try later")
		}
		return nil
	})
	// One handler at a time: if the retry's wait held the handler, the
	// others would queue behind it.
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Concurrency: 1,
		Backoff: pubsub.ConstantBackoff(300 * time.Millisecond)}, h, nil)
	pub := newPublisher(t, client, stream)
	ctx := context.Background()
	evs := []pubsub.Event{pubsub.NewEvent(ctx, "flaky", nil), pubsub.NewEvent(ctx, "a", nil), pubsub.NewEvent(ctx, "b", nil)}
	if err := pub.Emit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	got := rec.WaitForN(t, 4, wait)
	order := []pubsub.Name{got[0].Name, got[1].Name, got[2].Name, got[3].Name}
	if order[0] != "flaky" || order[1] != "a" || order[2] != "b" || order[3] != "flaky" || got[3].Meta.Attempts != 1 {
		t.Errorf("deliveries %v (last Attempts %d), want flaky, a, b, then flaky again with Attempts 1", order, got[3].Meta.Attempts)
	}
}

func TestRetryDoesNotStealBackATakenOverEntry(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("steal")
	ctx := context.Background()
	failed := make(chan string, 1)
	var calls atomic.Int32
	log := &errorLog{}
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "a",
		Backoff: pubsub.ConstantBackoff(300 * time.Millisecond)},
		func(_ context.Context, ev pubsub.Event) error {
			if calls.Add(1) == 1 {
				failed <- string(ev.ID)
			}
			return errors.New("fails")
		}, log.handle)
	emitN(t, newPublisher(t, client, stream), "job", 1)
	<-failed
	// Another consumer takes the entry over while a waits for its retry.
	pend, err := client.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: stream, Group: "g", Start: "-", End: "+", Count: 1}).Result()
	if err != nil || len(pend) != 1 {
		t.Fatalf("pending: %v %v", pend, err)
	}
	if err := client.XClaim(ctx, &goredis.XClaimArgs{Stream: stream, Group: "g", Consumer: "b", MinIdle: 0, Messages: []string{pend[0].ID}}).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a to give up its retry", func() bool {
		errs, _ := log.snapshot()
		for _, err := range errs {
			if strings.Contains(err.Error(), "taken over") {
				return true
			}
		}
		return false
	})
	if n := calls.Load(); n != 1 {
		t.Errorf("a's handler ran %d times; the retry stole the entry back", n)
	}
	owner, _ := client.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: stream, Group: "g", Start: "-", End: "+", Count: 1}).Result()
	if len(owner) != 1 || owner[0].Consumer != "b" {
		t.Errorf("entry now belongs to %+v, want b", owner)
	}
}
