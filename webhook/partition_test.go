package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
)

// startRedis returns a client of a redis-server of the test's own.
func startRedis(t *testing.T) goredis.UniversalClient {
	t.Helper()
	_, client := startHealthRedis(t)
	return client
}

// retryOf returns the retry event the bridge would emit for ev.
func retryOf(t *testing.T, ev pubsub.Event, sub string, attempts int) pubsub.Event {
	t.Helper()
	b, err := json.Marshal(map[string]any{"subscription_id": sub, "attempts": attempts, "event": ev})
	if err != nil {
		t.Fatal(err)
	}
	return pubsub.Event{ID: pubsub.ID(fmt.Sprintf("%s/%s/%d", ev.ID, sub, attempts)), Name: webhook.RetryEventName, Payload: b,
		Meta: pubsub.Meta{CreatedAtUTC: time.Now().UTC(), Attempts: attempts}}
}

func event(id, payload string) pubsub.Event {
	return pubsub.Event{ID: pubsub.ID(id), Name: "order.created", Payload: []byte(payload), Meta: pubsub.Meta{CreatedAtUTC: time.Now().UTC()}}
}

// The bridge places events where the redis package's partitioned
// Publisher does, so a producer writing to the partitions agrees with it.
func TestPartitionOfIsTheRedisPublishersChoice(t *testing.T) {
	client := startRedis(t)
	ctx := context.Background()
	const n = 6
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: "agree", Partitions: n})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var evs []pubsub.Event
	for i := range 200 {
		evs = append(evs, event("ev-"+strconv.Itoa(i), `{}`))
	}
	if err := pub.Emit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for i, stream := range redis.PartitionStreams("agree", n) {
		entries, err := client.XRange(ctx, stream, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			t.Errorf("partition %d received nothing of 200 events", i)
		}
		for _, e := range entries {
			id := e.Values["id"].(string)
			if got := webhook.PartitionOf(id, n); got != i {
				t.Errorf("event %s: the redis Publisher wrote it to partition %d, PartitionOf says %d", id, i, got)
			}
			seen++
		}
	}
	if seen != len(evs) {
		t.Errorf("%d entries in the partitions, want %d", seen, len(evs))
	}
	for _, k := range []int{-1, 0, 1} {
		if got := webhook.PartitionOf("x", k); got != 0 {
			t.Errorf("PartitionOf(x, %d) = %d, want 0", k, got)
		}
	}
}

func TestCompilePartitionKey(t *testing.T) {
	for _, tc := range []struct {
		name, src, payload, want string
		fallback                 bool
	}{
		{"empty source is the id", "", `{"c": "a"}`, "ev-1", false},
		{"string field", "data.customer", `{"customer": "acme"}`, "acme", false},
		{"nested, nil-safe", `data["body"]["customer"]`, `{"headers": {}}`, "ev-1", true},
		{"whole number", "data.n", `{"n": 42}`, "42", false},
		{"whole number written as a float", "data.n", `{"n": 42.0}`, "42", false},
		{"string of the same number", "data.n", `{"n": "42"}`, "42", false},
		{"negative zero", "data.n", `{"n": -0.0}`, "0", false},
		{"fraction", "data.n", `{"n": 1.5}`, "1.5", false},
		{"beyond 2^53", "data.n", `{"n": 12345678901234567890}`, "1.2345678901234567e+19", false},
		{"bool", "data.b", `{"b": true}`, "true", false},
		{"integer arithmetic", "len(data.items)", `{"items": [1, 2, 3]}`, "3", false},
		{"event attributes", `event.name + "/" + event.correlation_id`, `{}`, "order.created/corr", false},
		{"missing field", "data.customer", `{"other": 1}`, "ev-1", true},
		{"payload not JSON", "data.customer", `not json`, "ev-1", true},
		{"empty string", "data.customer", `{"customer": ""}`, "ev-1", true},
		{"object", "data.customer", `{"customer": {"id": 1}}`, "ev-1", true},
		{"list", "data.customer", `{"customer": [1]}`, "ev-1", true},
		{"run-time error", "data.customer + 1", `{"customer": "x"}`, "ev-1", true},
		{"conditional", `data.vip == true ? "vip" : data.region`, `{"region": "eu"}`, "eu", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := webhook.CompilePartitionKey(tc.src, nil)
			if err != nil {
				t.Fatal(err)
			}
			ev := event("ev-1", tc.payload)
			ev.Meta.CorrelationID = "corr"
			if got := k.Key(ev); got != tc.want {
				t.Errorf("Key = %q, want %q", got, tc.want)
			}
			if got := k.Fallbacks(); got != map[bool]int64{true: 1}[tc.fallback] {
				t.Errorf("Fallbacks = %d, want fallback %v", got, tc.fallback)
			}
			// A retry of the event has the event's key.
			if got := k.Key(retryOf(t, ev, "s", 2)); got != tc.want {
				t.Errorf("Key of a retry = %q, want the event's %q", got, tc.want)
			}
		})
	}
	for _, tc := range []struct{ src, want string }{
		{"data.customer +", "(line 1, column"},
		{"event.created_at", "the expression gives time.Time; want a string, a number or a bool"},
		{`{"a": 1}`, "want a string, a number or a bool"},
		{"[1, 2]", "want a string, a number or a bool"},
		{"nosuch.thing", "unknown name nosuch"},
	} {
		if _, err := webhook.CompilePartitionKey(tc.src, nil); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("CompilePartitionKey(%q) = %v, want one line saying %q", tc.src, err, tc.want)
		}
	}
}

// Events without a key are counted every time and logged once a minute
// at most, never dropped; evaluation stays within the memory budget.
func TestPartitionKeyFallbacksAreCountedAndLoggedRarely(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	k, err := webhook.CompilePartitionKey("data.customer", log)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if got := k.Key(event("ev-"+strconv.Itoa(i), `{}`)); got != "ev-"+strconv.Itoa(i) {
				t.Errorf("Key = %q, want the id", got)
			}
		})
	}
	wg.Wait()
	if k.Fallbacks() != 50 {
		t.Errorf("Fallbacks = %d, want 50", k.Fallbacks())
	}
	mu.Lock()
	lines := strings.Count(buf.String(), "partition key expression gave no key")
	mu.Unlock()
	if lines != 1 {
		t.Errorf("%d warnings logged for 50 fallbacks within a minute, want 1:\n%s", lines, buf.String())
	}

	heavy, err := webhook.CompilePartitionKey(`string(len(map(1..100000, {# * 2})))`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := heavy.Key(event("ev-h", `{}`)); got != "ev-h" || heavy.Fallbacks() != 1 {
		t.Errorf("an expression over the memory budget gave %q (%d fallbacks), want the id", got, heavy.Fallbacks())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// recorder is a DelayedPublisher that records what it is given and can
// be told to fail.
type recorder struct {
	mu     sync.Mutex
	got    []pubsub.Event
	at     []time.Time
	fail   error
	closed bool
}

func (r *recorder) Emit(ctx context.Context, evs ...pubsub.Event) error {
	return r.EmitAt(ctx, time.Time{}, evs...)
}

func (r *recorder) EmitAt(ctx context.Context, at time.Time, evs ...pubsub.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, ev := range evs {
		r.got, r.at = append(r.got, ev), append(r.at, at)
	}
	return nil
}

func (r *recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.got {
		out = append(out, string(ev.ID))
	}
	return out
}

func recorders(n int) ([]*recorder, []pubsub.DelayedPublisher) {
	rs := make([]*recorder, n)
	ps := make([]pubsub.DelayedPublisher, n)
	for i := range rs {
		rs[i] = &recorder{}
		ps[i] = rs[i]
	}
	return rs, ps
}

func TestPartitionedPublisherGroupsEventsByPartition(t *testing.T) {
	ctx := context.Background()
	const n = 4
	rs, ps := recorders(n)
	key, err := webhook.CompilePartitionKey("data.customer", nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := webhook.NewPartitionedPublisher(ps, key.Key)
	if err != nil {
		t.Fatal(err)
	}
	var evs []pubsub.Event
	want := make([][]string, n)
	for i := range 40 {
		c := "c" + strconv.Itoa(i%7)
		ev := event(fmt.Sprintf("ev-%02d", i), `{"customer": "`+c+`"}`)
		evs = append(evs, ev)
		p := webhook.PartitionOf(c, n)
		want[p] = append(want[p], string(ev.ID))
	}
	if err := pub.Emit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if got := r.ids(); !slices.Equal(got, want[i]) {
			t.Errorf("partition %d got %v, want %v (in emit order)", i, got, want[i])
		}
	}
	// A retry, delayed or not, goes where its event went.
	at := time.Now().Add(time.Hour)
	retry := retryOf(t, evs[3], "s", 1)
	if err := pub.EmitAt(ctx, at, retry); err != nil {
		t.Fatal(err)
	}
	p := webhook.PartitionOf("c3", n)
	if pub.Partition(retry) != p {
		t.Errorf("Partition of a retry = %d, want its event's %d", pub.Partition(retry), p)
	}
	last := rs[p].got[len(rs[p].got)-1]
	if last.ID != retry.ID || !rs[p].at[len(rs[p].at)-1].Equal(at) {
		t.Errorf("partition %d's last emit = %s at %v, want the retry at %v", p, last.ID, rs[p].at[len(rs[p].at)-1], at)
	}

	// An invalid event refuses the whole emit: nothing is written.
	before := 0
	for _, r := range rs {
		before += len(r.ids())
	}
	bad := event("bad\nid", `{}`)
	if err := pub.Emit(ctx, evs[0], bad); err == nil {
		t.Error("an emit holding an invalid event succeeded")
	}
	after := 0
	for _, r := range rs {
		after += len(r.ids())
	}
	if after != before {
		t.Errorf("%d events written by an emit that was refused", after-before)
	}

	// One failing partition: the others are written, and the error names
	// the partition and its events.
	boom := errors.New("boom")
	rs[1].fail = boom
	var batch []pubsub.Event
	var ofOne []string
	for i := range 20 {
		ev := event(fmt.Sprintf("f-%02d", i), `{"customer": "c`+strconv.Itoa(i%7)+`"}`)
		batch = append(batch, ev)
		if webhook.PartitionOf("c"+strconv.Itoa(i%7), n) == 1 {
			ofOne = append(ofOne, string(ev.ID))
		}
	}
	err = pub.Emit(ctx, batch...)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "partition 1 of 4: events "+ofOne[0]) {
		t.Errorf("error = %v, want one naming partition 1 and %s", err, ofOne[0])
	}
	for i, r := range rs {
		if i == 1 {
			continue
		}
		if ids := r.ids(); !strings.HasPrefix(ids[len(ids)-1], "f-") {
			t.Errorf("partition %d was not written when partition 1 failed", i)
		}
	}
	rs[1].fail = nil

	// A context already done: its error, as it is.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := pub.Emit(cctx, batch...); err != context.Canceled {
		t.Errorf("Emit with a cancelled context = %v, want context.Canceled itself", err)
	}

	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	for i, r := range rs {
		if !r.closed {
			t.Errorf("partition %d's publisher not closed", i)
		}
	}
	if err := pub.Emit(ctx, evs[0]); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Emit after Close = %v, want ErrClosed", err)
	}
	if _, err := webhook.NewPartitionedPublisher(nil, nil); err == nil {
		t.Error("NewPartitionedPublisher with no partition succeeded")
	}
}

// On Redis, each partition's publisher routes events to the partition's
// stream and retries to the partition's retry stream (its delayed set
// when delayed), all in the partition's Cluster slot.
func TestPartitionedPublisherOnRedis(t *testing.T) {
	client := startRedis(t)
	ctx := context.Background()
	const n = 3
	streams := redis.PartitionStreams("orders", n)
	var ps []pubsub.DelayedPublisher
	for _, s := range streams {
		p, err := redis.NewPublisher(client, redis.PublisherConfig{Route: func(name pubsub.Name) string {
			if name == webhook.RetryEventName {
				return redis.HelperKey(s, "webhook:retries")
			}
			return s
		}})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	pub, err := webhook.NewPartitionedPublisher(ps, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var evs []pubsub.Event
	for i := range 30 {
		evs = append(evs, event("o-"+strconv.Itoa(i), `{}`))
	}
	if err := pub.Emit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	single := event("o-single", `{}`)
	if err := pub.Emit(ctx, single); err != nil {
		t.Fatal(err)
	}
	retries := []pubsub.Event{retryOf(t, evs[0], "s", 1), retryOf(t, evs[1], "s", 1)}
	if err := pub.EmitAt(ctx, time.Now().Add(time.Hour), retries...); err != nil {
		t.Fatal(err)
	}
	now := retryOf(t, evs[2], "s", 2)
	if err := pub.Emit(ctx, now); err != nil {
		t.Fatal(err)
	}
	for i, s := range streams {
		entries, err := client.XRange(ctx, s, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if id := e.Values["id"].(string); webhook.PartitionOf(id, n) != i {
				t.Errorf("%s in %s, want partition %d", id, s, webhook.PartitionOf(id, n))
			}
		}
		retryStream := redis.HelperKey(s, "webhook:retries")
		delayed := client.ZCard(ctx, redis.DelayedKey(retryStream)).Val()
		queued := client.XLen(ctx, retryStream).Val()
		var wantDelayed, wantQueued int64
		for _, r := range retries {
			_, inner, _, _ := webhook.UnwrapRetry(r)
			if webhook.PartitionOf(string(inner.ID), n) == i {
				wantDelayed++
			}
		}
		if webhook.PartitionOf(string(evs[2].ID), n) == i {
			wantQueued++
		}
		if delayed != wantDelayed || queued != wantQueued {
			t.Errorf("partition %d: %d delayed retries and %d in its retry stream, want %d and %d", i, delayed, queued, wantDelayed, wantQueued)
		}
		slot := func(key string) int64 { return int64(redisSlot(key)) }
		if slot(s) != slot(retryStream) || slot(s) != slot(redis.DelayedKey(retryStream)) {
			t.Errorf("partition %d: its retry stream or delayed set is not in its slot", i)
		}
	}
}

// redisSlot is Redis Cluster's slot of key (CRC16 of its hash tag, mod
// 16384).
func redisSlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for _, b := range []byte(key) {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

// partitionedStores returns a PartitionedDeadLetters of n partitions and
// drained stores of kind k, with the stores themselves.
func partitionedStores(t *testing.T, k storeKind, n, drained int) (webhook.PartitionedDeadLetters, []webhook.DeadLetterStore) {
	var all []webhook.DeadLetterStore
	for range n + drained {
		all = append(all, k.make(t, -1))
	}
	return webhook.PartitionedDeadLetters{Partitions: all[:n], Drained: all[n:]}, all
}

func TestPartitionedDeadLetters(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		const n = 3
		d, stores := partitionedStores(t, k, n, 1)
		// Something left in the drained store, as from before.
		if err := stores[n].Add(ctx, webhook.DeadLetter{SubscriptionID: "a", Event: event("old-1", `{}`)}); err != nil {
			t.Fatal(err)
		}
		addDeadLetters(t, d, "e", 20)
		// A retry event's dead letter goes to its event's partition.
		if err := d.Add(ctx, webhook.DeadLetter{SubscriptionID: "a", Event: retryOf(t, event("e3", `{}`), "a", 1)}); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			for _, dl := range allDeadLetters(t, stores[i]) {
				id := string(dl.Event.ID)
				if _, inner, _, ok := webhook.UnwrapRetry(dl.Event); ok {
					id = string(inner.ID)
				}
				if webhook.PartitionOf(id, n) != i {
					t.Errorf("dead letter of %s in partition %d, want %d", id, i, webhook.PartitionOf(id, n))
				}
			}
		}
		if got := storeLen(t, stores[n]); got != 1 {
			t.Errorf("drained store holds %d, want its 1: Add wrote to it", got)
		}
		if got := storeLen(t, d); got != 22 {
			t.Errorf("Len = %d, want 22", got)
		}

		// A walk at limit 1 returns each once, partition after partition,
		// the drained store last, with IDs unique across stores.
		var walked []webhook.DeadLetter
		after, pages := "", 0
		for {
			page, next, err := d.List(ctx, after, 1)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			walked = append(walked, page...)
			if next == "" {
				break
			}
			if pages > 100 {
				t.Fatal("the walk does not end")
			}
			after = next
		}
		ids := map[string]bool{}
		for _, dl := range walked {
			if ids[dl.ID] {
				t.Errorf("ID %s twice", dl.ID)
			}
			ids[dl.ID] = true
		}
		if len(walked) != 22 || walked[len(walked)-1].Event.ID != "old-1" || !strings.HasPrefix(walked[len(walked)-1].ID, "p3:") {
			t.Fatalf("walk returned %d: %v; want 22, the drained store's old-1 last as p3:…", len(walked), eventIDs(walked))
		}
		// Pages span stores.
		if page, _, err := d.List(ctx, "", 100); err != nil || len(page) != 22 {
			t.Errorf("one page of 100 = %d dead letters (%v), want all 22", len(page), err)
		}

		// An ID is a cursor: the walk goes on after it, into later stores.
		mid := walked[10]
		rest := allFrom(t, d, mid.ID)
		if !slices.Equal(eventIDs(rest), eventIDs(walked[11:])) {
			t.Errorf("after %s: %v, want %v", mid.ID, eventIDs(rest), eventIDs(walked[11:]))
		}

		// Remove routes each ID to its store and ignores strangers.
		if err := d.Remove(ctx, walked[0].ID, walked[21].ID, "p9:1", "nope", "p0:", walked[5].ID); err != nil {
			t.Fatal(err)
		}
		if got := storeLen(t, d); got != 19 {
			t.Errorf("Len after removing 3 = %d, want 19", got)
		}
		for _, bad := range []string{"nope", "p", "p4:", "p-1:", "p01:", "px:1", "unhandled:1:x", "p0:nope"} {
			if _, _, err := d.List(ctx, bad, 10); !errors.Is(err, webhook.ErrInvalidCursor) {
				t.Errorf("List(%q) = %v, want ErrInvalidCursor", bad, err)
			}
		}
	})
}

func allFrom(t *testing.T, store webhook.DeadLetterStore, after string) []webhook.DeadLetter {
	t.Helper()
	var all []webhook.DeadLetter
	for {
		page, next, err := store.List(context.Background(), after, 3)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		after = next
	}
}

// A replay through the partitioned publisher, whose every delivery is
// dead-lettered again at once, replays each dead letter once and ends:
// each comes back to its own partition's store.
func TestReplayOverPartitionsEnds(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		const n = 4
		d, _ := partitionedStores(t, k, n, 0)
		addDeadLetters(t, d, "e", 600)
		again := &emitter{store: d, replayed: map[string]int{}}
		var ps []pubsub.DelayedPublisher
		for range n {
			ps = append(ps, delayedEmitter{again})
		}
		pub, err := webhook.NewPartitionedPublisher(ps, nil)
		if err != nil {
			t.Fatal(err)
		}
		replayed, err := webhook.ReplayDeadLetters(ctx, d, pub, nil)
		if err != nil || replayed != 600 {
			t.Fatalf("replayed %d, %v; want 600", replayed, err)
		}
		for key, times := range again.replayed {
			if times != 1 {
				t.Errorf("%s replayed %d times", key, times)
			}
		}
		if len(again.replayed) != 600 || storeLen(t, d) != 600 {
			t.Errorf("%d replayed, %d stored after; want 600 and 600", len(again.replayed), storeLen(t, d))
		}
	})
}

// delayedEmitter gives the emitter an EmitAt.
type delayedEmitter struct{ *emitter }

func (d delayedEmitter) EmitAt(ctx context.Context, _ time.Time, evs ...pubsub.Event) error {
	return d.Emit(ctx, evs...)
}

// Emits racing Close either write or return ErrClosed, never panic, and
// Close waits for those in flight.
func TestPartitionedPublisherCloseWhileEmitting(t *testing.T) {
	rs, ps := recorders(3)
	pub, err := webhook.NewPartitionedPublisher(ps, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var written, refused atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				evs := []pubsub.Event{event(fmt.Sprintf("g%d-%d-a", g, i), `{}`), event(fmt.Sprintf("g%d-%d-b", g, i), `{}`)}
				switch err := pub.Emit(context.Background(), evs...); {
				case err == nil:
					written.Add(2)
				case errors.Is(err, pubsub.ErrClosed):
					refused.Add(2)
				default:
					t.Errorf("Emit = %v", err)
				}
			}
		})
	}
	// Close once some emits went through.
	for deadline := time.Now().Add(wait); written.Load() == 0 && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	total := 0
	for _, r := range rs {
		total += len(r.ids())
	}
	if int64(total) != written.Load() || written.Load()+refused.Load() != 8*200*2 {
		t.Errorf("%d recorded, %d reported written, %d refused; want recorded == written and all accounted for", total, written.Load(), refused.Load())
	}
}
