package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// redisNodeSize is redis-server's default stream-node-max-entries: XADD
// MAXLEN ~ n keeps fewer than n plus this many entries.
const redisNodeSize = 100

// storeKind makes empty dead-letter stores of one kind, each bounded by
// maxLen.
type storeKind struct {
	name  string
	exact bool // the bound is exact, not approximate
	make  func(t *testing.T, maxLen int) webhook.DeadLetterStore
}

// storeKinds returns the memory store and a Redis store on a redis-server
// of the test's own.
func storeKinds(t *testing.T) []storeKind {
	t.Helper()
	client := startRedis(t)
	var keys int
	return []storeKind{
		{name: "memory", exact: true, make: func(_ *testing.T, maxLen int) webhook.DeadLetterStore {
			return &webhook.MemoryDeadLetters{MaxLen: maxLen}
		}},
		{name: "redis", make: func(_ *testing.T, maxLen int) webhook.DeadLetterStore {
			keys++
			return webhook.RedisDeadLetters{Client: client, Key: fmt.Sprintf("{test}:dead:%d", keys), MaxLen: int64(maxLen)}
		}},
	}
}

func forEachStore(t *testing.T, fn func(t *testing.T, k storeKind)) {
	for _, k := range storeKinds(t) {
		t.Run(k.name, func(t *testing.T) { fn(t, k) })
	}
}

// addDeadLetters adds n dead letters for events "<prefix><i>", i from 0,
// alternating subscriptions "a" and "b".
func addDeadLetters(t *testing.T, store webhook.DeadLetterStore, prefix string, n int) {
	t.Helper()
	for i := range n {
		dl := webhook.DeadLetter{SubscriptionID: []string{"a", "b"}[i%2], Attempts: 3, LastError: "HTTP 500",
			Event: pubsub.Event{ID: pubsub.ID(prefix + strconv.Itoa(i)), Name: "t", Payload: []byte(`{}`)}}
		if err := store.Add(context.Background(), dl); err != nil {
			t.Fatal(err)
		}
	}
}

func eventIDs(dls []webhook.DeadLetter) []string {
	out := make([]string, len(dls))
	for i, dl := range dls {
		out[i] = string(dl.Event.ID)
	}
	return out
}

func storeLen(t *testing.T, store webhook.DeadLetterStore) int {
	t.Helper()
	n, err := store.Len(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func TestDeadLetterStoreStaysWithinItsBound(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		const bound = 300
		store := k.make(t, bound)
		addDeadLetters(t, store, "e", 3*bound)
		n := storeLen(t, store)
		if n < bound || n >= bound+redisNodeSize || (k.exact && n != bound) {
			t.Fatalf("Len after %d adds = %d, want about %d", 3*bound, n, bound)
		}
		// What is left is the newest n, in order: the oldest went first.
		var want []string
		for i := 3*bound - n; i < 3*bound; i++ {
			want = append(want, "e"+strconv.Itoa(i))
		}
		if got := eventIDs(allDeadLetters(t, store)); !slices.Equal(got, want) {
			t.Errorf("kept %d dead letters %v...; want the newest %d, e%d to e%d", len(got), got[:min(3, len(got))], n, 3*bound-n, 3*bound-1)
		}
		if m, ok := store.(*webhook.MemoryDeadLetters); ok && m.Dropped() != int64(3*bound-n) {
			t.Errorf("Dropped = %d, want %d", m.Dropped(), 3*bound-n)
		}
		if r, ok := store.(webhook.RedisDeadLetters); ok {
			if xlen := r.Client.XLen(context.Background(), r.Key).Val(); xlen != int64(n) {
				t.Errorf("Len = %d, XLEN = %d", n, xlen)
			}
		}

		unbounded := k.make(t, -1)
		addDeadLetters(t, unbounded, "u", 3*bound)
		if n := storeLen(t, unbounded); n != 3*bound {
			t.Errorf("with a negative bound Len = %d, want all %d", n, 3*bound)
		}
	})
}

func TestMemoryDeadLettersDefaultBound(t *testing.T) {
	m := &webhook.MemoryDeadLetters{}
	for range webhook.DefaultDeadLetterMaxLen + 5 {
		_ = m.Add(context.Background(), webhook.DeadLetter{SubscriptionID: "s"})
	}
	if n := storeLen(t, m); n != webhook.DefaultDeadLetterMaxLen || m.Dropped() != 5 {
		t.Errorf("zero MaxLen: Len %d, Dropped %d; want %d and 5", n, m.Dropped(), webhook.DefaultDeadLetterMaxLen)
	}
	page, _, _ := m.List(context.Background(), "", 1)
	if len(page) != 1 || page[0].ID != "6" {
		t.Errorf("oldest kept = %+v, want ID 6", page)
	}
}

// A walk returns every dead letter stored when it started and not removed
// before its page was read, exactly once and in order, while others add
// and remove dead letters between its pages and all along.
func TestDeadLetterPagesWhileAddingAndRemoving(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		store := k.make(t, -1)
		const stored = 250
		addDeadLetters(t, store, "old", stored)
		before := allDeadLetters(t, store)
		if len(before) != stored {
			t.Fatalf("%d dead letters stored, want %d", len(before), stored)
		}

		// Once the walk has started, a writer adds dead letters for as long
		// as it runs.
		stop, writerDone := make(chan struct{}), make(chan int)
		start := func() {
			go func() {
				n := 0
				for {
					select {
					case <-stop:
						writerDone <- n
						return
					default:
					}
					_ = store.Add(ctx, webhook.DeadLetter{SubscriptionID: "w", Event: pubsub.Event{ID: pubsub.ID("new" + strconv.Itoa(n))}})
					n++
				}
			}()
		}

		// Between pages, remove one dead letter already returned and one
		// not yet read (from the end), and add a few.
		removedUnseen := map[string]bool{}
		var seen []webhook.DeadLetter
		after, pages := "", 0
		for {
			page, next, err := store.List(ctx, after, 7)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if pages == 1 {
				start()
			}
			seen = append(seen, page...)
			if next == "" {
				break
			}
			if len(page) == 0 {
				t.Fatalf("empty page %d before the end (next %q)", pages, next)
			}
			victim := before[stored-1-len(removedUnseen)]
			removedUnseen[victim.ID] = true
			if err := store.Remove(ctx, page[0].ID, victim.ID); err != nil {
				t.Fatal(err)
			}
			addDeadLetters(t, store, "between"+strconv.Itoa(pages)+"-", 3)
			after = next
		}
		close(stop)
		written := <-writerDone

		var want []string
		for _, dl := range before {
			if !removedUnseen[dl.ID] {
				want = append(want, string(dl.Event.ID))
			}
		}
		if got := eventIDs(seen); !slices.Equal(got, want) {
			t.Errorf("walk returned %d dead letters, want the %d stored at its start and not removed ahead of it, once each, in order:\ngot  %v\nwant %v", len(got), len(want), got, want)
		}
		for i := 1; i < len(seen); i++ {
			if seen[i].ID == seen[i-1].ID {
				t.Errorf("dead letter %s returned twice", seen[i].ID)
			}
		}
		if pages < stored/8 {
			t.Errorf("%d pages of at most 7 for %d dead letters", pages, stored)
		}

		// The next walk sees everything stored now, the writers' too.
		all := allDeadLetters(t, store)
		ids := map[string]bool{}
		for _, dl := range all {
			if ids[dl.ID] {
				t.Errorf("second walk: %s twice", dl.ID)
			}
			ids[dl.ID] = true
		}
		if wantLen := storeLen(t, store); len(all) != wantLen || wantLen != len(want)-(pages-1)+written+3*(pages-1) {
			t.Errorf("second walk: %d dead letters, Len %d; want %d", len(all), wantLen, len(want)-(pages-1)+written+3*(pages-1))
		}
	})
}

func TestDeadLetterListRefusesBadCursors(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		store := k.make(t, -1)
		addDeadLetters(t, store, "e", 3)
		for _, bad := range []string{"nope", "1..x", "..", "-1", "1-", "1.5", "1..2..3", "\x00"} {
			if _, _, err := store.List(context.Background(), bad, 10); !errors.Is(err, webhook.ErrInvalidCursor) {
				t.Errorf("List(%q) error = %v, want ErrInvalidCursor", bad, err)
			}
		}
		// A dead letter's ID is a cursor too, removed or not.
		all := allDeadLetters(t, store)
		if err := store.Remove(context.Background(), all[0].ID); err != nil {
			t.Fatal(err)
		}
		page, next, err := store.List(context.Background(), all[0].ID, 10)
		if err != nil || next != "" || !slices.Equal(eventIDs(page), []string{"e1", "e2"}) {
			t.Errorf("List after a removed ID = %v, %q, %v; want e1, e2", eventIDs(page), next, err)
		}
	})
}

// emitter is a publisher that records the dead letters replayed through it
// and, like a subscription that answers 410, dead-letters each at once
// again.
type emitter struct {
	mu       sync.Mutex
	store    webhook.DeadLetterStore
	replayed map[string]int // event ID and subscription → times
	calls    int
}

func (e *emitter) Emit(ctx context.Context, evs ...pubsub.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	for _, ev := range evs {
		var r struct {
			SubscriptionID string       `json:"subscription_id"`
			Event          pubsub.Event `json:"event"`
		}
		if ev.Name != webhook.RetryEventName || json.Unmarshal(ev.Payload, &r) != nil {
			return fmt.Errorf("not a retry event: %s", ev.Name)
		}
		e.replayed[string(r.Event.ID)+"/"+r.SubscriptionID]++
		if err := e.store.Add(ctx, webhook.DeadLetter{SubscriptionID: r.SubscriptionID, Attempts: 1, LastStatus: 410, Event: r.Event}); err != nil {
			return err
		}
	}
	return nil
}

func (e *emitter) Close() error { return nil }

func TestReplayWalksPagesAndReplaysEachOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		store := k.make(t, -1)
		const stored = 1201 // three pages of a replay
		addDeadLetters(t, store, "e", stored)
		pub := &emitter{store: store, replayed: map[string]int{}}
		n, err := webhook.ReplayDeadLetters(context.Background(), store, pub, func(dl webhook.DeadLetter) bool { return dl.SubscriptionID == "a" })
		if err != nil {
			t.Fatal(err)
		}
		const as = (stored + 1) / 2
		if n != as || len(pub.replayed) != as {
			t.Errorf("replayed %d (%d distinct), want every one of subscription a's %d", n, len(pub.replayed), as)
		}
		for key, times := range pub.replayed {
			if times != 1 {
				t.Errorf("%s replayed %d times", key, times)
			}
		}
		if pub.calls < 3 {
			t.Errorf("%d Emit calls: the replay did not go page by page", pub.calls)
		}
		// Left: b's dead letters as they were, then a's again, from the
		// deliveries the replay scheduled and that failed at once.
		left := allDeadLetters(t, store)
		var bs, again int
		for _, dl := range left {
			switch {
			case dl.SubscriptionID == "b" && dl.LastStatus == 0:
				bs++
			case dl.SubscriptionID == "a" && dl.LastStatus == 410:
				again++
			default:
				t.Errorf("left after replay: %+v", dl)
			}
		}
		if bs != stored-as || again != as {
			t.Errorf("left %d of b's and %d of a's again; want %d and %d", bs, again, stored-as, as)
		}
		// The next replay takes the new ones, once.
		if n, err := webhook.ReplayDeadLetters(context.Background(), store, pub, func(dl webhook.DeadLetter) bool { return dl.LastStatus == 410 }); n != as || err != nil {
			t.Errorf("second replay = %d, %v; want %d", n, err, as)
		}
	})
}

// Each store keeps a dead letter's kind; one added without a kind, like
// an entry written before kinds were recorded, reads back as gone after a
// 410 and as exhausted otherwise.
func TestDeadLetterKindsAreStored(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		store := k.make(t, 0)
		ctx := context.Background()
		for _, dl := range []webhook.DeadLetter{
			{SubscriptionID: "s", Kind: webhook.KindOrphaned, LastStatus: 410},
			{SubscriptionID: "s", Kind: webhook.KindUndeliverable},
			{SubscriptionID: "s", LastStatus: 410},
			{SubscriptionID: "s", LastStatus: 500},
			{SubscriptionID: "s"},
		} {
			dl.Event = pubsub.Event{ID: "e", Name: "t"}
			if err := store.Add(ctx, dl); err != nil {
				t.Fatal(err)
			}
		}
		if r, ok := store.(webhook.RedisDeadLetters); ok { // as an earlier version wrote it
			old := `{"id":"","subscription_id":"s","attempts":1,"last_status":410,"last_error":"endpoint answered 410 Gone","at":"2026-01-02T03:04:05Z","event":{"id":"e","name":"t"}}`
			if err := r.Client.XAdd(ctx, &goredis.XAddArgs{Stream: r.Key, Values: []any{"dead_letter", old}}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		var got []webhook.DeadLetterKind
		for _, dl := range allDeadLetters(t, store) {
			got = append(got, dl.Kind)
		}
		want := []webhook.DeadLetterKind{webhook.KindOrphaned, webhook.KindUndeliverable, webhook.KindGone, webhook.KindExhausted, webhook.KindExhausted}
		if _, ok := store.(webhook.RedisDeadLetters); ok {
			want = append(want, webhook.KindGone)
		}
		if !slices.Equal(got, want) {
			t.Errorf("kinds %v, want %v", got, want)
		}
	})
}

func TestDeadLetterJSONWithoutAKind(t *testing.T) {
	for in, want := range map[string]webhook.DeadLetterKind{
		`{"subscription_id":"s","last_status":410}`:                   webhook.KindGone,
		`{"subscription_id":"s","last_status":500}`:                   webhook.KindExhausted,
		`{"subscription_id":"s"}`:                                     webhook.KindExhausted,
		`{"subscription_id":"s","kind":"orphaned","last_status":410}`: webhook.KindOrphaned,
		`{"subscription_id":"s","kind":"unhandled"}`:                  webhook.KindUnhandled,
	} {
		var dl webhook.DeadLetter
		if err := json.Unmarshal([]byte(in), &dl); err != nil || dl.Kind != want || dl.SubscriptionID != "s" {
			t.Errorf("%s decodes to %+v, %v; want kind %s", in, dl, err, want)
		}
	}
	b, err := json.Marshal(webhook.DeadLetter{Kind: webhook.KindGone})
	if err != nil || !strings.Contains(string(b), `"kind":"gone"`) {
		t.Errorf("Marshal = %s, %v", b, err)
	}
}

// A replay leaves an undeliverable event's dead letter in the store and
// replays the others: the backend would refuse to carry some of them, and
// the bridge would only dead-letter the rest again.
func TestReplaySkipsUndeliverableEvents(t *testing.T) {
	broker := memory.NewBroker(memory.Options{}) // Emit refuses what Validate refuses
	t.Cleanup(func() { _ = broker.Close() })
	store := &webhook.MemoryDeadLetters{}
	ctx := context.Background()
	for _, ev := range []pubsub.Event{
		{ID: "ok-1", Name: "t"},
		{ID: "bad\nid", Name: "t"},
		{ID: "long-name", Name: pubsub.Name(strings.Repeat("n", webhook.MaxNameLen+1))},
		{ID: "ok 2 with spaces", Name: "t"},
	} {
		if err := store.Add(ctx, webhook.DeadLetter{SubscriptionID: "s", Kind: webhook.KindUndeliverable, Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := webhook.ReplayDeadLetters(ctx, store, broker, nil)
	if err != nil || n != 2 {
		t.Fatalf("ReplayDeadLetters = %d, %v; want the 2 deliverable ones", n, err)
	}
	if got := eventIDs(allDeadLetters(t, store)); !slices.Equal(got, []string{"bad\nid", "long-name"}) {
		t.Errorf("left %q, want the undeliverable two", got)
	}
}
