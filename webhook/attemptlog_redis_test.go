package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// redisLogNodeEntries is the stream-node-max-entries of the test
// servers: small, so that approximate trims are close to exact and the
// bounds can be checked tightly.
const redisLogNodeEntries = 4

// redisLogStart starts a redis-server for one test, its stream nodes
// small (see redisLogNodeEntries).
func redisLogStart(t testing.TB) *goredis.Client {
	t.Helper()
	srv, err := redistest.Start(t.TempDir(), "--stream-node-max-entries", strconv.Itoa(redisLogNodeEntries))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// redisLogClock is a clock a test moves by hand.
type redisLogClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *redisLogClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *redisLogClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// redisLogT0 is where test clocks start.
var redisLogT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func redisLogNew(t testing.TB, client goredis.UniversalClient, cfg webhook.RedisAttemptLogConfig) (*webhook.RedisAttemptLog, *redisLogClock) {
	t.Helper()
	cfg.Client = client
	l, err := webhook.NewRedisAttemptLog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clock := &redisLogClock{t: redisLogT0}
	webhook.RedisLogSetClock(l, clock.now)
	return l, clock
}

// The IDs the tests use, with bytes that could confuse keys or hash
// tags: ':' as in the key layout, braces, '%' as in the escaping, and
// unicode.
var (
	redisLogSubs   = []string{"s.1", "a:b", "{x}", "%7B", "{", "ü-ñ", "o:delivered", "x"}
	redisLogEvents = []pubsub.ID{"e1", "v:e1", "ev:e1", "{e}", "}{", "é🙂", "%", "e:1"}
)

// redisLogAttempt returns the i-th attempt of a test's made-up traffic.
func redisLogAttempt(i int) webhook.Attempt {
	statuses := []int{200, 500, 0, 410, 429}
	return webhook.Attempt{
		EventID:        redisLogEvents[i%len(redisLogEvents)],
		EventName:      "order.created",
		SubscriptionID: redisLogSubs[(i/3)%len(redisLogSubs)],
		Attempt:        i%4 + 1,
		At:             redisLogT0.Add(time.Duration(i) * time.Millisecond),
		Duration:       time.Duration(i) * time.Microsecond,
		Outcome:        webhook.Outcomes[i%len(webhook.Outcomes)],
		URL:            "https://example.com/hook",
		RequestHeaders: http.Header{"Webhook-Id": {string(redisLogEvents[i%len(redisLogEvents)])}},
		Status:         statuses[i%len(statuses)],
		ResponseBody:   "body " + strconv.Itoa(i),
	}
}

func redisLogEvent(id pubsub.ID) pubsub.Event {
	return pubsub.Event{ID: id, Name: "order.created", Payload: []byte(`{"id":"` + strings.ReplaceAll(string(id), `"`, ``) + `"}`),
		Meta: pubsub.Meta{CreatedAtUTC: redisLogT0, CorrelationID: "c-" + string(id)}}
}

// redisLogRecorded is an attempt as the main stream holds it.
type redisLogRecorded struct {
	id string
	a  webhook.Attempt
}

// redisLogMain reads the main stream directly, oldest first, keeping the
// entries that decode.
func redisLogMain(t testing.TB, client goredis.UniversalClient, prefix string) []redisLogRecorded {
	t.Helper()
	msgs, err := client.XRange(context.Background(), prefix+":a", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []redisLogRecorded
	for _, m := range msgs {
		raw, _ := m.Values["j"].(string)
		var a webhook.Attempt
		if json.Unmarshal([]byte(raw), &a) != nil {
			continue
		}
		a.ID = m.ID
		out = append(out, redisLogRecorded{m.ID, a})
	}
	return out
}

func redisLogIDms(t testing.TB, id string) int64 {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		t.Fatalf("attempt ID %q", id)
	}
	return n
}

func redisLogLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	x, _ := strconv.ParseUint(am, 10, 64)
	y, _ := strconv.ParseUint(bm, 10, 64)
	if x != y {
		return x < y
	}
	x, _ = strconv.ParseUint(as, 10, 64)
	y, _ = strconv.ParseUint(bs, 10, 64)
	return x < y
}

// redisLogSelects is the model of a query's filters.
func redisLogSelects(t testing.TB, q webhook.AttemptQuery, r redisLogRecorded) bool {
	ms := redisLogIDms(t, r.id)
	return (q.SubscriptionID == "" || r.a.SubscriptionID == q.SubscriptionID) &&
		(q.EventID == "" || r.a.EventID == q.EventID) &&
		(q.Outcome == "" || r.a.Outcome == q.Outcome) &&
		(q.Status == 0 || r.a.Status == q.Status) &&
		(q.Since.IsZero() || ms >= q.Since.UnixMilli()) &&
		(q.Until.IsZero() || ms < q.Until.UnixMilli())
}

// redisLogWalk walks q to its end, checking that the pages are newest
// first and no attempt comes twice; between pages it calls between with
// the page's number and how many attempts the walk returned so far.
func redisLogWalk(t testing.TB, l webhook.AttemptLog, q webhook.AttemptQuery, between func(page, returned int)) []webhook.Attempt {
	t.Helper()
	var all []webhook.Attempt
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page > 10000 {
			t.Fatalf("%+v: the walk does not end", q)
		}
		p, err := l.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		if len(p.Attempts) > max(q.Limit, 1) && q.Limit > 0 {
			t.Fatalf("%+v: a page of %d", q, len(p.Attempts))
		}
		for _, a := range p.Attempts {
			if seen[a.ID] {
				t.Fatalf("%+v: attempt %s twice", q, a.ID)
			}
			seen[a.ID] = true
			if n := len(all); n > 0 && !redisLogLess(a.ID, all[n-1].ID) {
				t.Fatalf("%+v: %s after %s, not newest first", q, a.ID, all[n-1].ID)
			}
			all = append(all, a)
		}
		if p.Next == "" {
			return all
		}
		q.Cursor = p.Next
		if between != nil {
			between(page, len(all))
		}
	}
}

// redisLogFill records n attempts of the made-up traffic from first on,
// in batches of batch, the clock moving 1ms between batches, with their
// events.
func redisLogFill(t testing.TB, l *webhook.RedisAttemptLog, clock *redisLogClock, first, n, batch int) {
	t.Helper()
	for i := first; i < first+n; i += batch {
		var b webhook.AttemptBatch
		evs := map[pubsub.ID]bool{}
		for j := i; j < min(i+batch, first+n); j++ {
			a := redisLogAttempt(j)
			b.Attempts = append(b.Attempts, a)
			if !evs[a.EventID] {
				evs[a.EventID] = true
				b.Events = append(b.Events, redisLogEvent(a.EventID))
			}
		}
		if err := l.Record(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		clock.add(time.Millisecond)
	}
}

func redisLogQueries(since, until time.Time) []webhook.AttemptQuery {
	return []webhook.AttemptQuery{
		{},
		{SubscriptionID: "a:b"},
		{SubscriptionID: "{x}"},
		{EventID: "v:e1"},
		{EventID: "é🙂"},
		{Outcome: webhook.Failed},
		{SubscriptionID: "ü-ñ", Outcome: webhook.Delivered},
		{SubscriptionID: "x", EventID: "e:1"},
		{EventID: "{e}", Status: 500},
		{EventID: "%", Outcome: webhook.Skipped, Status: 200},
		{Status: 429},
		{Outcome: webhook.TimedOut, Status: 200},
		{Since: since, Until: until},
		{SubscriptionID: "s.1", Since: since},
		{Outcome: webhook.Skipped, Until: until},
	}
}

// Every walk, at every page size, returns every attempt it selects
// exactly once, newest first, while attempts are recorded during the walk
// (left out: they come after its start) and retention drops old ones by
// age and by count (left out; none other is skipped).
func TestRedisLogWalks(t *testing.T) {
	client := redisLogStart(t)
	const n = 40
	since, until := redisLogT0.Add(3*time.Millisecond), redisLogT0.Add(9*time.Millisecond)
	walk := 0
	for qi, q := range redisLogQueries(since, until) {
		for limit := 1; limit <= n+1; limit++ {
			walk++
			prefix := fmt.Sprintf("{walk}:%d", walk)
			l, clock := redisLogNew(t, client, webhook.RedisAttemptLogConfig{Prefix: prefix, MaxLen: n + 5, MaxAge: time.Hour})
			redisLogFill(t, l, clock, 0, n, 3)
			recorded := redisLogMain(t, client, prefix)
			if len(recorded) != n {
				t.Fatalf("the main stream holds %d attempts, want %d", len(recorded), n)
			}
			q.Limit = limit
			trimmedAt, agedAt := len(recorded)+1, len(recorded)+1
			got := redisLogWalk(t, l, q, func(page, returned int) {
				switch page {
				case 0: // new attempts of every kind, after the walk's start
					trimmedAt = returned
					redisLogFill(t, l, clock, n, 4, 2)
					redisLogFill(t, l, clock, 0, 12, 6) // repeats of the same subscriptions, events, outcomes
				case 1: // on even limits, the oldest 8 ms go past MaxAge
					if limit%2 == 0 {
						clock.add(time.Hour - 10*time.Millisecond)
						agedAt = returned
					}
				}
			})
			after := map[string]bool{}
			for _, r := range redisLogMain(t, client, prefix) {
				after[r.id] = true
			}
			cutoff := clock.now().Add(-time.Hour).UnixMilli()
			var want []string
			selected := map[string]bool{}
			for _, r := range slices.Backward(recorded) {
				if redisLogSelects(t, q, r) {
					selected[r.id] = true
					if after[r.id] && redisLogIDms(t, r.id) >= cutoff {
						want = append(want, r.id)
					}
				}
			}
			var ids []string
			for i, a := range got {
				if !selected[a.ID] {
					t.Fatalf("query %d %+v: attempt %s %+v is not one the walk selects", qi, q, a.ID, a)
				}
				if i >= trimmedAt && !after[a.ID] {
					t.Fatalf("query %d %+v: attempt %s returned after MaxLen dropped it", qi, q, a.ID)
				}
				if i >= agedAt && redisLogIDms(t, a.ID) < cutoff {
					t.Fatalf("query %d %+v: attempt %s returned after MaxAge dropped it", qi, q, a.ID)
				}
				ids = append(ids, a.ID)
			}
			// Those retention dropped during the walk may or may not have
			// been returned before they went; every other one was.
			var kept []string
			for _, id := range ids {
				if after[id] && redisLogIDms(t, id) >= cutoff {
					kept = append(kept, id)
				}
			}
			if !slices.Equal(kept, want) {
				t.Fatalf("query %d %+v: the walk returned\n%v\nwant\n%v", qi, q, kept, want)
			}
			if limit == 1 && len(want) == 0 && qi < 12 {
				t.Fatalf("query %d %+v selects nothing: a weak test", qi, q)
			}
		}
	}
}

// A walk over a log that did not change returns what the model selects,
// records intact, and the events come back whole.
func TestRedisLogRecordsRoundTrip(t *testing.T) {
	client := redisLogStart(t)
	l, clock := redisLogNew(t, client, webhook.RedisAttemptLogConfig{Prefix: "{rt}"})
	redisLogFill(t, l, clock, 0, 30, 7)
	got := redisLogWalk(t, l, webhook.AttemptQuery{Limit: 1000}, nil)
	if len(got) != 30 {
		t.Fatalf("%d attempts, want 30", len(got))
	}
	for i, a := range got {
		want := redisLogAttempt(29 - i)
		want.ID = a.ID
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(a)
		if string(wj) != string(gj) {
			t.Fatalf("attempt %d:\n%s\nwant\n%s", i, gj, wj)
		}
	}
	for _, m := range client.XRange(context.Background(), "{rt}:a", "-", "+").Val() {
		if j, _ := m.Values["j"].(string); !strings.HasPrefix(j, `{"event_id":`) {
			t.Fatalf("entry %s holds %.40q, not the attempt without its ID", m.ID, j)
		}
	}
	if n, err := l.Len(context.Background()); err != nil || n != 30 {
		t.Fatalf("Len = %d, %v", n, err)
	}
	for _, id := range redisLogEvents {
		ev, err := l.Event(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		want := redisLogEvent(id)
		if ev.ID != id || string(ev.Payload) != string(want.Payload) || ev.Meta != want.Meta {
			t.Fatalf("event %q = %+v, want %+v", id, ev, want)
		}
	}
	if _, err := l.Event(context.Background(), "nope"); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("an unknown event: %v", err)
	}
	// An event recorded again replaces the earlier record.
	ev := redisLogEvent("e1")
	ev.Payload = []byte(`{"v":2}`)
	if err := l.Record(context.Background(), webhook.AttemptBatch{Events: []pubsub.Event{ev}}); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Event(context.Background(), "e1"); err != nil || string(got.Payload) != `{"v":2}` {
		t.Fatalf("event e1 again: %+v, %v", got, err)
	}
}

// Keys of one kind never collide with another's, whatever the IDs hold;
// every ID is in a key of its own.
func TestRedisLogKeysDoNotCollide(t *testing.T) {
	client := redisLogStart(t)
	l, clock := redisLogNew(t, client, webhook.RedisAttemptLogConfig{Prefix: "p"})
	redisLogFill(t, l, clock, 0, 3*len(redisLogSubs)*len(redisLogEvents), 5)
	keys, err := client.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, k := range keys {
		typ := client.Type(context.Background(), k).Val()
		switch {
		case k == "p:a" || strings.HasPrefix(k, "p:s:") || strings.HasPrefix(k, "p:o:"):
			if typ != "stream" {
				t.Errorf("%q is a %s", k, typ)
			}
		case strings.HasPrefix(k, "p:e:"):
			if typ != "zset" {
				t.Errorf("%q is a %s", k, typ)
			}
		case strings.HasPrefix(k, "p:ev:"):
			if typ != "string" {
				t.Errorf("%q is a %s", k, typ)
			}
		case k == "p:idx" || k == "p:evs":
			if typ != "zset" {
				t.Errorf("%q is a %s", k, typ)
			}
		default:
			t.Errorf("key %q", k)
		}
		if strings.ContainsAny(strings.TrimPrefix(k, "p"), "{}") {
			t.Errorf("key %q holds a brace after its prefix", k)
		}
		kind, _, _ := strings.Cut(strings.TrimPrefix(k, "p:"), ":")
		kinds[kind]++
	}
	want := map[string]int{"a": 1, "idx": 1, "evs": 1, "s": len(redisLogSubs), "o": len(webhook.Outcomes), "e": len(redisLogEvents), "ev": len(redisLogEvents)}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d keys of kind %q, want %d (keys %q)", kinds[k], k, n, keys)
		}
	}
	// Each index holds the attempts of its subscription, event or outcome
	// only.
	for _, sub := range redisLogSubs {
		for _, a := range redisLogWalk(t, l, webhook.AttemptQuery{SubscriptionID: sub, Limit: 1000}, nil) {
			if a.SubscriptionID != sub {
				t.Fatalf("subscription %q: %+v", sub, a)
			}
		}
	}
}

// Garbage in every key of the log is skipped: never a panic, an error,
// or an end to the walk; keys outside the log that garbage names are
// left alone.
func TestRedisLogGarbage(t *testing.T) {
	ctx := context.Background()
	client := redisLogStart(t)
	const prefix = "{g}"
	l, clock := redisLogNew(t, client, webhook.RedisAttemptLogConfig{Prefix: prefix, MaxAge: time.Hour})
	redisLogFill(t, l, clock, 0, 20, 4)
	real := redisLogMain(t, client, prefix)
	last := real[len(real)-1].id
	lastMS := redisLogIDms(t, last)

	xadd := func(key, id string, values ...any) {
		t.Helper()
		if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: key, ID: id, Values: values}).Err(); err != nil {
			t.Fatalf("XADD %s %s: %v", key, id, err)
		}
	}
	at := func(ms int64, seq int) string { return fmt.Sprintf("%d-%d", ms, seq) }
	// The main stream: no "j", not JSON, JSON of another shape.
	xadd(prefix+":a", at(lastMS+1, 0), "x", "y")
	xadd(prefix+":a", at(lastMS+1, 1), "j", "{not json")
	xadd(prefix+":a", at(lastMS+1, 2), "j", `{"at":"yesterday","attempt":"one"}`)
	xadd(prefix+":a", at(lastMS+1, 3), "j", `[1,2]`)
	// Indexes: entries without fields, of bad fields, of IDs not in the
	// main stream, and of an attempt of another subscription.
	// An index entry of an attempt that is not of it: its record says so.
	other := real[len(real)-1] // of subscription o:delivered, after every one of a:b
	if other.a.SubscriptionID == "a:b" {
		t.Fatal("the test needs another subscription's attempt")
	}
	xadd(prefix+":s:a:b", other.id, "o", string(other.a.Outcome), "c", other.a.Status)
	for _, k := range []string{prefix + ":s:a:b", prefix + ":o:failed"} {
		xadd(k, at(lastMS+1, 4), "o", "failed", "c", "nope")
		xadd(k, at(lastMS+1, 5), "zz", "1")
		xadd(k, at(lastMS+2, 0), "o", 7)
	}
	// The event index: members that do not decode, above, among and
	// below those that do; of IDs not in the main stream; of bad
	// fields; of another event's attempt.
	fixed := func(id string) string {
		ms, seq, _ := strings.Cut(id, "-")
		a, _ := strconv.ParseUint(ms, 10, 64)
		b, _ := strconv.ParseUint(seq, 10, 64)
		return fmt.Sprintf("%020d%020d", a, b)
	}
	for _, m := range []string{"zzz", "!!!", "", "00000000000000000001", fixed(real[5].id)[:30] + "x", fixed(real[5].id) + ":x:failed",
		fixed(real[5].id), fixed(real[9].id) + "!", fixed(at(lastMS+1, 1)) + ":200:failed", fixed(at(lastMS+1, 9)) + ":200:failed",
		fixed(other.id) + ":" + strconv.Itoa(other.a.Status) + ":" + string(other.a.Outcome), "1844674407370955161518446744073709551615:200:failed",
		"99999999999999999999999999999999999999999:200:failed"} {
		client.ZAdd(ctx, prefix+":e:v:e1", goredis.Z{Member: m})
	}
	// Keys of the wrong type, an event that is not JSON, and members of
	// the index set that are not the log's.
	client.Set(ctx, prefix+":e:%7Be%7D", "a string", 0)
	client.Del(ctx, prefix+":s:%7Bx%7D")
	if err := client.HSet(ctx, prefix+":s:%7Bx%7D", "a", "hash").Err(); err != nil {
		t.Fatal(err)
	}
	client.Set(ctx, "unrelated", "keep me", 0)
	client.XAdd(ctx, &goredis.XAddArgs{Stream: "unrelated-stream", ID: "1-0", Values: []any{"keep", "me"}})
	client.ZAdd(ctx, prefix+":idx", goredis.Z{Score: 0, Member: "unrelated-stream"})
	client.ZAdd(ctx, prefix+":idx", goredis.Z{Score: 0, Member: "unrelated"}, goredis.Z{Score: 0, Member: prefix + ":s:list"},
		goredis.Z{Score: 0, Member: prefix + ":o:nothing"})
	client.LPush(ctx, prefix+":s:list", "a list")

	clock.add(10 * time.Millisecond)
	// Recording goes on past the garbage.
	redisLogFill(t, l, clock, 20, 20, 4)
	real = redisLogMain(t, client, prefix)
	if len(real) != 40 {
		t.Fatalf("%d attempts decode, want 40", len(real))
	}
	for _, q := range redisLogQueries(time.Time{}, time.Time{}) {
		for _, limit := range []int{1, 3, 1000} {
			q.Limit = limit
			got := redisLogWalk(t, l, q, nil)
			var want, ids []string
			for _, r := range slices.Backward(real) {
				if redisLogSelects(t, q, r) {
					want = append(want, r.id)
				}
			}
			for _, a := range got {
				ids = append(ids, a.ID)
			}
			switch {
			case q.EventID == "{e}" || q.SubscriptionID == "{x}":
				// Their index was overwritten by another type: what was
				// written after it is lost to the index, nothing worse.
				if len(ids) != 0 {
					t.Fatalf("%+v over a broken index: %v", q, ids)
				}
			case !slices.Equal(ids, want):
				t.Fatalf("%+v: %v\nwant %v", q, ids, want)
			}
		}
	}
	client.Set(ctx, prefix+":ev:%25", "not json", 0)
	client.Set(ctx, prefix+":ev:e:1", `{"id":"another"}`, 0)
	client.Del(ctx, prefix+":ev:é🙂")
	client.HSet(ctx, prefix+":ev:é🙂", "a", "hash")
	for _, id := range []pubsub.ID{"%", "e:1", "é🙂"} {
		if _, err := l.Event(ctx, id); !errors.Is(err, webhook.ErrNotFound) {
			t.Fatalf("event %q does not decode: %v", id, err)
		}
	}
	if _, err := l.Event(ctx, "%"); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("an event that does not decode: %v", err)
	}
	clock.add(2 * time.Minute)
	if err := l.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := client.Get(ctx, "unrelated").Result(); err != nil || v != "keep me" {
		t.Fatalf("a key outside the log: %q, %v", v, err)
	}
	if n := client.XLen(ctx, "unrelated-stream").Val(); n != 1 {
		t.Fatalf("a stream outside the log holds %d entries", n)
	}
	if n := client.LLen(ctx, prefix+":s:list").Val(); n != 1 {
		t.Fatalf("a list under the prefix lost its item: %d", n)
	}
	for _, m := range []string{"unrelated", "unrelated-stream", prefix + ":s:list", prefix + ":o:nothing"} {
		if err := client.ZScore(ctx, prefix+":idx", m).Err(); !errors.Is(err, goredis.Nil) {
			t.Fatalf("index set member %q: %v", m, err)
		}
	}
	// The main stream itself of another type: an error, not a panic.
	client.Del(ctx, prefix+":a")
	client.Set(ctx, prefix+":a", "x", 0)
	if err := l.Record(ctx, webhook.AttemptBatch{Attempts: []webhook.Attempt{redisLogAttempt(0)}}); err == nil {
		t.Fatal("recording into a main stream of another type: no error")
	}
	if p, err := l.Query(ctx, webhook.AttemptQuery{}); err != nil || len(p.Attempts) != 0 {
		t.Fatalf("a main stream of another type: %+v, %v", p, err)
	}
}

// IDs keep rising when clocks disagree: a process behind another, or a
// clock that goes back, records after the newest attempt, not before.
func TestRedisLogClockBehind(t *testing.T) {
	ctx := context.Background()
	client := redisLogStart(t)
	l, clock := redisLogNew(t, client, webhook.RedisAttemptLogConfig{Prefix: "{c}"})
	other, otherClock := redisLogNew(t, client, webhook.RedisAttemptLogConfig{Prefix: "{c}"})
	otherClock.add(10 * time.Second)
	redisLogFill(t, other, otherClock, 0, 5, 5)
	redisLogFill(t, l, clock, 5, 6, 3) // 10s behind
	clock.add(-time.Minute)
	redisLogFill(t, l, clock, 11, 4, 2)
	got := redisLogWalk(t, l, webhook.AttemptQuery{Limit: 2}, nil)
	if len(got) != 15 {
		t.Fatalf("%d attempts, want 15", len(got))
	}
	for i, a := range got {
		if want := redisLogAttempt(14 - i); a.ResponseBody != want.ResponseBody {
			t.Fatalf("attempt %d is %q, want %q", i, a.ResponseBody, want.ResponseBody)
		}
	}
	// The janitor keeps the events of every attempt kept, whichever
	// clock recorded them.
	clock.add(redisLogJanitorWait)
	if err := l.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range redisLogEvents {
		if _, err := l.Event(ctx, id); err != nil {
			t.Fatalf("event %q: %v", id, err)
		}
	}
	// A garbage entry far in the future: recording goes on after it.
	if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: "{c}:a", ID: "99999999999999-5", Values: []any{"x", "y"}}).Err(); err != nil {
		t.Fatal(err)
	}
	redisLogFill(t, l, clock, 15, 2, 2)
	r := redisLogMain(t, client, "{c}")
	if id := r[len(r)-1].id; id != "99999999999999-7" {
		t.Fatalf("the newest attempt's ID is %s", id)
	}
}

// Cursors the log did not make are errors wrapping
// ErrInvalidAttemptCursor; queries out of range fail Validate.
func TestRedisLogInvalidQueries(t *testing.T) {
	ctx := context.Background()
	client := redisLogStart(t)
	l, clock := redisLogNew(t, client, webhook.RedisAttemptLogConfig{Prefix: "{q}"})
	redisLogFill(t, l, clock, 0, 10, 10)
	for _, c := range []string{"abc", "1-", "-1", "1-2-3", "18446744073709551616-0", " 1-0", "1-0 ", "+", "(1-0", "0x1-0", "-"} {
		if _, err := l.Query(ctx, webhook.AttemptQuery{Cursor: c}); !errors.Is(err, webhook.ErrInvalidAttemptCursor) {
			t.Errorf("cursor %q: %v", c, err)
		}
		if _, err := l.Query(ctx, webhook.AttemptQuery{Cursor: c, SubscriptionID: "a:b"}); !errors.Is(err, webhook.ErrInvalidAttemptCursor) {
			t.Errorf("cursor %q: %v", c, err)
		}
	}
	for _, q := range []webhook.AttemptQuery{{Outcome: "bogus"}, {Status: 42}, {Since: redisLogT0, Until: redisLogT0}} {
		if _, err := l.Query(ctx, q); err == nil {
			t.Errorf("%+v: no error", q)
		}
	}
	// The extremes are cursors all the same.
	if p, err := l.Query(ctx, webhook.AttemptQuery{Cursor: "0-0"}); err != nil || len(p.Attempts) != 0 || p.Next != "" {
		t.Errorf("cursor 0-0: %+v, %v", p, err)
	}
	if p, err := l.Query(ctx, webhook.AttemptQuery{Cursor: "18446744073709551615-18446744073709551615", Limit: 100}); err != nil || len(p.Attempts) != 10 {
		t.Errorf("the largest cursor: %d attempts, %v", len(p.Attempts), err)
	}
	if p, err := l.Query(ctx, webhook.AttemptQuery{Until: time.UnixMilli(0), Limit: 100}); err != nil || len(p.Attempts) != 0 {
		t.Errorf("until the epoch: %d attempts, %v", len(p.Attempts), err)
	}
	if _, err := webhook.NewRedisAttemptLog(webhook.RedisAttemptLogConfig{Client: client}); err == nil {
		t.Error("no prefix: no error")
	}
	if _, err := webhook.NewRedisAttemptLog(webhook.RedisAttemptLogConfig{Prefix: "p"}); err == nil {
		t.Error("no client: no error")
	}
	if _, err := webhook.NewRedisAttemptLog(webhook.RedisAttemptLogConfig{Client: client, Prefix: "p", MaxLen: -1}); err == nil {
		t.Error("a negative MaxLen: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Query(cctx, webhook.AttemptQuery{}); !errors.Is(err, context.Canceled) {
		t.Errorf("a done ctx: %v", err)
	}
}

// redisLogCount counts the keys of a log by kind, and the entries of
// its streams.
func redisLogCount(t testing.TB, client goredis.UniversalClient, prefix string) (keys map[string]int, entries map[string]int64) {
	t.Helper()
	ctx := context.Background()
	keys, entries = map[string]int{}, map[string]int64{}
	iter := client.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		kind, _, _ := strings.Cut(strings.TrimPrefix(k, prefix+":"), ":")
		keys[kind]++
		if client.Type(ctx, k).Val() == "stream" {
			entries[kind] += client.XLen(ctx, k).Val()
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return keys, entries
}

// MaxLen and MaxAge hold for the main stream and, within their slack,
// for every index; the janitor deletes indexes left empty; events and
// event indexes expire.
func TestRedisLogBounds(t *testing.T) {
	ctx := context.Background()
	client := redisLogStart(t)
	const prefix, maxLen = "{b}", 50
	maxAge := 10 * time.Minute
	l, clock := redisLogNew(t, client, webhook.RedisAttemptLogConfig{Prefix: prefix, MaxLen: maxLen, MaxAge: maxAge})
	redisLogFill(t, l, clock, 0, 1000, 16)
	main := redisLogMain(t, client, prefix)
	if n := len(main); n < maxLen || n >= maxLen+redisLogNodeEntries {
		t.Fatalf("the main stream holds %d, MaxLen %d", n, maxLen)
	}
	if n, _ := l.Len(ctx); n != int64(len(main)) {
		t.Fatalf("Len %d, XLEN %d", n, len(main))
	}
	oldest := main[0].id
	// Each index holds only what the main stream holds, bar a node.
	iter := client.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if k == prefix+":a" || client.Type(ctx, k).Val() != "stream" {
			continue
		}
		stale := client.XRange(ctx, k, "-", "("+oldest).Val()
		// Trimmed on its last write, two batches ago at most: a node, and
		// what the main stream dropped since.
		if len(stale) >= redisLogNodeEntries+2*16 {
			t.Errorf("index %q holds %d entries the main stream dropped", k, len(stale))
		}
	}
	keys, entries := redisLogCount(t, client, prefix)
	t.Logf("after 1000 attempts, MaxLen %d: keys %v, entries %v", maxLen, keys, entries)
	// The janitor trims every index exactly: each attempt is in one
	// subscription index and one outcome index.
	clock.add(redisLogJanitorWait)
	if err := l.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	main = redisLogMain(t, client, prefix)
	keys, entries = redisLogCount(t, client, prefix)
	if entries["s"] != int64(len(main)) || entries["o"] != int64(len(main)) {
		t.Fatalf("after the janitor: index entries %v, the main stream %d", entries, len(main))
	}
	if int64(keys["s"]) != client.ZCard(ctx, prefix+":idx").Val()-int64(keys["o"]) {
		t.Fatalf("index keys %v, the index set %d", keys, client.ZCard(ctx, prefix+":idx").Val())
	}

	// Every event and event index expires within MaxAge.
	for _, pat := range []string{prefix + ":ev:*", prefix + ":e:*"} {
		for _, k := range client.Keys(ctx, pat).Val() {
			if ttl := client.PTTL(ctx, k).Val(); ttl <= 0 || ttl > maxAge {
				t.Errorf("%q expires in %s", k, ttl)
			}
		}
	}
	// Writing an attempt of an event refreshes its expiry.
	client.PExpire(ctx, prefix+":ev:e1", time.Minute)
	client.PExpire(ctx, prefix+":e:e1", time.Minute)
	if err := l.Record(ctx, webhook.AttemptBatch{Attempts: []webhook.Attempt{redisLogAttempt(0)}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{prefix + ":ev:e1", prefix + ":e:e1"} {
		if ttl := client.PTTL(ctx, k).Val(); ttl <= time.Minute {
			t.Errorf("%q was not refreshed: it expires in %s", k, ttl)
		}
	}
	// An event gone is not found.
	client.Del(ctx, prefix+":ev:e1")
	if _, err := l.Event(ctx, "e1"); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("an expired event: %v", err)
	}

	// Past MaxAge, one attempt for one subscription: the rest goes, from
	// the queries at once, from the main stream on that Record, and from
	// the indexes once the janitor runs.
	clock.add(maxAge + time.Second)
	a := redisLogAttempt(1)
	a.SubscriptionID = "last"
	if err := l.Record(ctx, webhook.AttemptBatch{Attempts: []webhook.Attempt{a}}); err != nil {
		t.Fatal(err)
	}
	if p, err := l.Query(ctx, webhook.AttemptQuery{Limit: 1000}); err != nil || len(p.Attempts) != 1 || p.Attempts[0].SubscriptionID != "last" {
		t.Fatalf("past MaxAge: %+v, %v", p, err)
	}
	if p, err := l.Query(ctx, webhook.AttemptQuery{SubscriptionID: "a:b", Limit: 1000}); err != nil || len(p.Attempts) != 0 {
		t.Fatalf("past MaxAge, an index: %+v, %v", p, err)
	}
	if n := client.XLen(ctx, prefix+":a").Val(); n > redisLogNodeEntries {
		t.Fatalf("past MaxAge the main stream holds %d", n)
	}
	clock.add(redisLogJanitorWait)
	if err := l.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	keys, entries = redisLogCount(t, client, prefix)
	if keys["s"] != 1 || keys["o"] != 1 || entries["s"] != 1 || entries["o"] != 1 {
		t.Fatalf("after the janitor: keys %v, entries %v", keys, entries)
	}
	members := client.ZRange(ctx, prefix+":idx", 0, -1).Val()
	slices.Sort(members)
	if want := []string{prefix + ":o:" + string(a.Outcome), prefix + ":s:last"}; !slices.Equal(members, want) {
		t.Fatalf("index set %q, want %q", members, want)
	}

	// Record runs the janitor itself, at most once a minute.
	clock.add(maxAge + time.Second)
	a.SubscriptionID = "later"
	if err := l.Record(ctx, webhook.AttemptBatch{Attempts: []webhook.Attempt{a}}); err != nil {
		t.Fatal(err)
	}
	if err := client.Exists(ctx, prefix+":s:last").Val(); err != 0 {
		t.Fatal("Record's janitor left an index that ended")
	}
}

// Under MaxLen, events and their indexes go with their last attempt,
// once the janitor runs, not MaxAge later.
func TestRedisLogEventBounds(t *testing.T) {
	ctx := context.Background()
	client := redisLogStart(t)
	const prefix, maxLen = "{eb}", 40
	l, clock := redisLogNew(t, client, webhook.RedisAttemptLogConfig{Prefix: prefix, MaxLen: maxLen})
	for i := range 500 {
		id := pubsub.ID("event-" + strconv.Itoa(i))
		a := redisLogAttempt(i)
		a.EventID = id
		batch := webhook.AttemptBatch{Events: []pubsub.Event{redisLogEvent(id)}, Attempts: []webhook.Attempt{a}}
		if i%7 == 0 { // a retry of an older event keeps it
			a := redisLogAttempt(i)
			a.EventID = "event-0"
			batch.Attempts = append(batch.Attempts, a)
		}
		if err := l.Record(ctx, batch); err != nil {
			t.Fatal(err)
		}
		clock.add(time.Millisecond)
	}
	clock.add(redisLogJanitorWait)
	if err := l.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	inMain := map[pubsub.ID]bool{}
	main := redisLogMain(t, client, prefix)
	for _, r := range main {
		inMain[r.a.EventID] = true
	}
	keys, _ := redisLogCount(t, client, prefix)
	if keys["ev"] > len(inMain) || keys["e"] > len(inMain) || client.ZCard(ctx, prefix+":evs").Val() > int64(len(inMain)) {
		t.Fatalf("keys %v, event set %d, for %d events of %d attempts", keys, client.ZCard(ctx, prefix+":evs").Val(), len(inMain), len(main))
	}
	for id := range inMain {
		if _, err := l.Event(ctx, id); err != nil {
			t.Fatalf("event %q of an attempt kept: %v", id, err)
		}
	}
	if _, err := l.Event(ctx, "event-1"); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("event-1, all its attempts gone: %v", err)
	}
	// Garbage in the event set: its members name keys of the log only.
	client.Set(ctx, "unrelated", "keep me", 0)
	client.ZAdd(ctx, prefix+":evs", goredis.Z{Score: 0, Member: "unrelated"}, goredis.Z{Score: 0, Member: "../unrelated"})
	clock.add(redisLogJanitorWait)
	if err := l.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	if client.Get(ctx, "unrelated").Val() != "keep me" || client.ZCard(ctx, prefix+":evs").Val() > int64(len(inMain)) {
		t.Fatal("the janitor dropped a key outside the log, or kept garbage in the event set")
	}
}

// redisLogJanitorWait is past the janitor's minute.
const redisLogJanitorWait = 61 * time.Second

// Several processes record into one log at once: every attempt is kept,
// under an ID of its own.
func TestRedisLogConcurrentRecord(t *testing.T) {
	client := redisLogStart(t)
	const writers, batches, batch = 4, 25, 8
	var wg sync.WaitGroup
	var logs []*webhook.RedisAttemptLog
	for w := range writers {
		l, clock := redisLogNew(t, client, webhook.RedisAttemptLogConfig{Prefix: "{cc}"})
		logs = append(logs, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			clock.add(time.Duration(w) * time.Millisecond) // clocks that disagree
			for i := range batches {
				var b webhook.AttemptBatch
				for j := range batch {
					a := redisLogAttempt(j)
					a.ResponseBody = fmt.Sprintf("%d/%d/%d", w, i, j)
					b.Attempts = append(b.Attempts, a)
				}
				if err := l.Record(context.Background(), b); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					clock.add(time.Millisecond)
				}
			}
		}()
	}
	// Queries at the same time see whole batches only.
	for range 20 {
		p, err := logs[0].Query(context.Background(), webhook.AttemptQuery{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Attempts)%batch != 0 {
			t.Fatalf("a query saw %d attempts, not whole batches", len(p.Attempts))
		}
	}
	wg.Wait()
	got := redisLogWalk(t, logs[1], webhook.AttemptQuery{Limit: 7}, nil)
	bodies := map[string]bool{}
	for _, a := range got {
		bodies[a.ResponseBody] = true
	}
	if len(got) != writers*batches*batch || len(bodies) != len(got) {
		t.Fatalf("%d attempts, %d distinct, want %d", len(got), len(bodies), writers*batches*batch)
	}
}

// On a Redis Cluster of three masters every key of a log is in one slot,
// so that the scripts and pipelines never meet CROSSSLOT; a prefix
// without a hash tag is refused.
func TestRedisLogCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	ctx := context.Background()
	c, err := redistest.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = client.Close() })
	if err := client.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error { return m.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	if _, err := webhook.NewRedisAttemptLog(webhook.RedisAttemptLogConfig{Client: client, Prefix: "webhook:log"}); err == nil {
		t.Fatal("a Cluster and a prefix without a hash tag: no error")
	}
	const prefix = "{events}:webhook:log"
	l, clock := redisLogNew(t, client, webhook.RedisAttemptLogConfig{Prefix: prefix, MaxLen: 100, MaxAge: time.Hour})
	redisLogFill(t, l, clock, 0, 300, 32)
	for _, q := range redisLogQueries(time.Time{}, time.Time{}) {
		q.Limit = 7
		redisLogWalk(t, l, q, nil)
	}
	if _, err := l.Event(ctx, "{e}"); err != nil {
		t.Fatal(err)
	}
	clock.add(2 * time.Hour)
	if err := l.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	redisLogFill(t, l, clock, 300, 10, 10)
	// Every key is on one master, in one slot.
	slots := map[int64]bool{}
	var masters int
	var mu sync.Mutex
	err = client.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
		keys, err := m.Keys(ctx, "*").Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if len(keys) > 0 {
			masters++
		}
		for _, k := range keys {
			if !strings.HasPrefix(k, prefix+":") {
				return fmt.Errorf("key %q", k)
			}
			slots[m.ClusterKeySlot(ctx, k).Val()] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if masters != 1 || len(slots) != 1 {
		t.Fatalf("keys on %d masters, in %d slots", masters, len(slots))
	}
	if n, err := l.Len(ctx); err != nil || n < 10 {
		t.Fatalf("Len %d, %v", n, err)
	}
	if got := redisLogWalk(t, l, webhook.AttemptQuery{Limit: 3}, nil); len(got) != 10 {
		t.Fatalf("%d attempts within MaxAge, want 10", len(got))
	}
}

// A selective query over more entries than one call reads answers with
// short pages and a Next, and the walk still finds every match once.
func TestRedisLogScanLimit(t *testing.T) {
	ctx := context.Background()
	client := redisLogStart(t)
	l, clock := redisLogNew(t, client, webhook.RedisAttemptLogConfig{Prefix: "{sl}"})
	const n = 12000
	for i := 0; i < n; i += 500 {
		var b webhook.AttemptBatch
		for j := i; j < i+500; j++ {
			a := webhook.Attempt{EventID: "e", SubscriptionID: "busy", Outcome: webhook.Delivered, Status: 200, Attempt: j}
			if j == 3 || j == 7000 {
				a.Status = 418
			}
			b.Attempts = append(b.Attempts, a)
		}
		if err := l.Record(ctx, b); err != nil {
			t.Fatal(err)
		}
		clock.add(time.Millisecond)
	}
	for _, q := range []webhook.AttemptQuery{{Status: 418}, {SubscriptionID: "busy", Status: 418}, {EventID: "e", Status: 418, Outcome: webhook.Delivered}} {
		pages := 0
		var got []int
		for {
			p, err := l.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, a := range p.Attempts {
				got = append(got, a.Attempt)
			}
			if p.Next == "" {
				break
			}
			q.Cursor = p.Next
		}
		if !slices.Equal(got, []int{7000, 3}) || pages < n/5000 {
			t.Fatalf("%+v: attempts %v in %d pages", q, got, pages)
		}
	}
}

func TestRedisAttemptLogPassesTheSuite(t *testing.T) {
	client := redisLogStart(t)
	n := 0
	runAttemptLogSuite(t, func(t *testing.T) webhook.AttemptLog {
		n++
		l, err := webhook.NewRedisAttemptLog(webhook.RedisAttemptLogConfig{Client: client, Prefix: fmt.Sprintf("{suite%d}:log", n), MaxLen: 1000, MaxAge: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}
