package webhookhttp_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// TestAdversary2PayloadViewKeepsEveryByte: docs/webhook-bridge.md says a
// dead letter's payload is shown "as the payload itself when it is JSON, a
// string when it is other UTF-8 text, and base64 otherwise". Whatever the
// bytes, the answer must be valid JSON (UTF-8, RFC 8259) and the payload's
// bytes must be recoverable from the view, or an operator deciding what to
// replay reads something else than what was emitted.
func TestAdversary2PayloadViewKeepsEveryByte(t *testing.T) {
	payloads := map[string][]byte{
		"empty":                     {},
		"json object":               []byte(`{"total":120}`),
		"json string, invalid utf8": []byte("\"\xff\xfe\""),
		"json object, lone 0xc3":    []byte("{\"name\":\"caf\xc3\"}"),
		"json, overlong slash":      []byte("[\"\xc0\xaf\"]"),
		"json, surrogate bytes":     []byte("\"\xed\xa0\x80\""),
		"text":                      []byte("hello <world> & \u2028 ok"),
		"binary":                    {0, 1, 2, 0xff, 0x80},
		"text with NUL":             []byte("a\x00b"),
		"json with spaces":          []byte(`{ "a" : 1 }`),
	}
	for name, p := range payloads {
		t.Run(name, func(t *testing.T) {
			dl := webhook.DeadLetter{ID: "1", Kind: webhook.KindExhausted, SubscriptionID: "s",
				Event: pubsub.Event{ID: "e", Name: "n", Payload: p}}
			out, err := json.Marshal(webhookhttp.ViewOf(dl))
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.Valid(out) {
				t.Errorf("payload %q: the view is not UTF-8, so not JSON any strict reader (or `jq`) accepts: %q", p, out)
			}
			var back webhookhttp.DeadLetterView
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatal(err)
			}
			var got []byte
			switch back.Event.PayloadEncoding {
			case "json":
				got = back.Event.Payload
				// JSON equivalence: compare canonical forms, which keep
				// string bytes as Go decodes them.
				var a, b any
				if json.Unmarshal(got, &a) != nil || json.Unmarshal(p, &b) != nil {
					t.Fatalf("payload %q shown as json %q that does not decode", p, got)
				}
				// A JSON payload is valid UTF-8 by RFC 8259; one that is
				// not must not be shown as json, since its bytes are then
				// replaced by U+FFFD on every reader.
				if !utf8.Valid(p) {
					t.Errorf("payload %q is not UTF-8, so not JSON, but is shown with payload_encoding json (read back as %q): its bytes are lost", p, got)
				}
				return
			case "text":
				var s string
				if err := json.Unmarshal(back.Event.Payload, &s); err != nil {
					t.Fatal(err)
				}
				got = []byte(s)
			case "base64":
				var s string
				if err := json.Unmarshal(back.Event.Payload, &s); err != nil {
					t.Fatal(err)
				}
				got, err = base64.StdEncoding.DecodeString(s)
				if err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("payload_encoding %q", back.Event.PayloadEncoding)
			}
			if !bytes.Equal(got, p) {
				t.Errorf("payload %q read back from its %s view as %q", p, back.Event.PayloadEncoding, got)
			}
		})
	}
}

// TestAdversary2UnhandledWalkCoversOnlyWhatWasStored: "A walk through the
// pages (after empty, then each next) covers the dead letters stored when
// it began ... Dead letters added after the walk began wait for the next
// walk; that is also why a replay always ends". The unified listing's
// unhandled part (the redis backend's {stream}:dead) keeps no end bound:
// a walk returns entries added after it began, and a walk that meets a
// steady flow of poison never ends.
func TestAdversary2UnhandledWalkCoversOnlyWhatWasStored(t *testing.T) {
	ctx := context.Background()
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	defer client.Close()
	stream := fmt.Sprintf("adv2-walk-%d", seq.Add(1))
	store := &webhook.MemoryDeadLetters{}
	_ = store.Add(ctx, webhook.DeadLetter{Kind: webhook.KindExhausted, SubscriptionID: "s", Event: pubsub.Event{ID: "b1", Name: "n"}})
	addUnhandled := func(i int) {
		if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: redis.DeadKey(stream), Values: []any{
			"garbage", fmt.Sprint(i), "reason", "not an event",
		}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		addUnhandled(i)
	}
	all := webhookhttp.DeadLetters{Store: store, Unhandled: []webhookhttp.DeadLetterLister{webhookhttp.RedisUnhandled{Client: client, Stream: stream}}}

	// Walk one at a time; after every page, one more poison entry arrives.
	after, seen, added := "", 0, 0
	for pages := 0; ; pages++ {
		if pages > 50 {
			t.Fatalf("the walk did not end after %d pages (%d entries seen, %d added during the walk): it follows entries added after it began", pages, seen, added)
		}
		page, next, err := all.List(ctx, after, 1, "")
		if err != nil {
			t.Fatal(err)
		}
		seen += len(page)
		addUnhandled(100 + added)
		added++
		if next == "" {
			break
		}
		after = next
	}
	if seen != 4 {
		t.Errorf("a walk begun with 4 dead things stored (1 bridge dead letter, 3 unhandled) returned %d; %d were added during it", seen, added)
	}
}

// TestAdversary2DedupeWindowBelowAMillisecond: ingest.dedupe_window is a
// duration; config accepts any positive one and "negative: off". A window
// under a millisecond goes to Redis as SET ... PX 0, which Redis refuses:
// every post with an id then spends ~10 s retrying the commit and logs
// "events published but not remembered".
func TestAdversary2DedupeWindowBelowAMillisecond(t *testing.T) {
	ctx := context.Background()
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	defer client.Close()
	d := webhookhttp.RedisDedupe{Client: client, Prefix: fmt.Sprintf("adv2-dd-%d:", seq.Add(1))}
	states, err := d.Claim(ctx, "tok", []string{"a"})
	if err != nil || states[0] != webhookhttp.Claimed {
		t.Fatalf("claim: %v %v", states, err)
	}
	if err := d.Commit(ctx, "tok", []string{"a"}, 500*time.Microsecond); err != nil {
		t.Errorf("Commit with a 500µs window: %v (a positive window the config accepts)", err)
	}

	// The handler (and the bridge's config) refuse such a window at once.
	_, err = webhookhttp.New(webhookhttp.Config{Bridge: newBridge(t), Publisher: &recorder{},
		Dedupe: webhookhttp.RedisDedupe{Client: client, Prefix: fmt.Sprintf("adv2-dd-%d:", seq.Add(1))}, DedupeWindow: 500 * time.Microsecond})
	if err == nil || !strings.Contains(err.Error(), "DedupeWindow") {
		t.Errorf("a 500µs window: %v, want an error naming DedupeWindow", err)
	}
}

// TestAdversary2DedupeSurvivesRedisRestartWithoutPersistence: a Redis
// that restarts without persistence forgets every id it held (the events
// stream too). The document says so: a re-post is then accepted as new
// (202, emitted again), never answered as a duplicate of an event Redis no
// longer has.
func TestAdversary2DedupeSurvivesRedisRestartWithoutPersistence(t *testing.T) {
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Kill()
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer client.Close()
	ts, rec := api(t, webhookhttp.Config{Dedupe: webhookhttp.RedisDedupe{Client: client, Prefix: "{events}:webhook:ingest:"}})
	body := `{"name":"order.created","id":"order-1042-created","payload":{"total":1}}`
	if st, b, _ := call(t, ts, http.MethodPost, "/v1/events", "", body); st != http.StatusAccepted {
		t.Fatalf("first post: %d %s", st, b)
	}
	srv.Kill()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	st, b, _ := call(t, ts, http.MethodPost, "/v1/events", "", body)
	if n := len(rec.emitted()); n != 2 || st != http.StatusAccepted {
		t.Errorf("the same id posted again after Redis restarted without persistence: %d %s, emitted %d times; want 202, emitted again", st, strings.TrimSpace(b), n)
	}
}

// TestAdversary2DedupeBatchesAndCase: a batch of 1000 events with ids,
// posted twice, is emitted once; ids that differ only in case are
// different ids, each emitted once.
func TestAdversary2DedupeBatchesAndCase(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	defer client.Close()
	for name, d := range map[string]webhookhttp.Deduper{
		"memory": webhookhttp.NewMemoryDedupe(),
		"redis":  webhookhttp.RedisDedupe{Client: client, Prefix: fmt.Sprintf("adv2-batch-%d:", seq.Add(1))},
	} {
		t.Run(name, func(t *testing.T) {
			ts, rec := api(t, webhookhttp.Config{Dedupe: d})
			var sb strings.Builder
			sb.WriteString(`[`)
			for i := range 1000 {
				if i > 0 {
					sb.WriteString(",")
				}
				fmt.Fprintf(&sb, `{"name":"n","id":"Order-%d","payload":%d}`, i, i)
			}
			sb.WriteString(`]`)
			if st, b, _ := call(t, ts, http.MethodPost, "/v1/events", "", sb.String()); st != http.StatusAccepted {
				t.Fatalf("first batch: %d %.200s", st, b)
			}
			if st, b, _ := call(t, ts, http.MethodPost, "/v1/events", "", sb.String()); st != http.StatusOK {
				t.Errorf("the same batch again: %d %.200s", st, b)
			}
			lower := strings.ReplaceAll(sb.String(), `"Order-`, `"order-`)
			if st, b, _ := call(t, ts, http.MethodPost, "/v1/events", "", lower); st != http.StatusAccepted {
				t.Errorf("the batch with ids differing only in case: %d %.200s", st, b)
			}
			if n := len(rec.emitted()); n != 2000 {
				t.Errorf("emitted %d, want 2000", n)
			}
		})
	}
}

// TestAdversary2KindFiltersAndCursorsAcrossTheBoundary: on Redis, the
// bridge's dead letters of four kinds, then unhandled entries of the event
// and the retry stream; GET /v1/dlq walked one at a time with every kind
// filter, and without one while the walked dead letters are removed
// behind the cursor: each dead letter exactly once, of its kind; each id
// is a cursor that starts the page after it.
func TestAdversary2KindFiltersAndCursorsAcrossTheBoundary(t *testing.T) {
	ctx := context.Background()
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	defer client.Close()
	stream := fmt.Sprintf("adv2-kinds-%d", seq.Add(1))
	store := webhook.RedisDeadLetters{Client: client, Key: stream + ":webhook:dead"}
	kinds := map[webhook.DeadLetterKind]int{webhook.KindExhausted: 3, webhook.KindGone: 2, webhook.KindUndeliverable: 2, webhook.KindOrphaned: 2}
	for _, k := range []webhook.DeadLetterKind{webhook.KindExhausted, webhook.KindGone, webhook.KindUndeliverable, webhook.KindOrphaned} {
		for i := range kinds[k] {
			if err := store.Add(ctx, webhook.DeadLetter{Kind: k, SubscriptionID: "s", Event: pubsub.Event{ID: pubsub.ID(fmt.Sprintf("%s-%d", k, i)), Name: "n", Payload: []byte(`{}`)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	retries := stream + ":webhook:retries"
	for i, s := range []string{stream, stream, retries} {
		if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: redis.DeadKey(s), Values: []any{"garbage", fmt.Sprint(i), "reason", "not an event"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	kinds[webhook.KindUnhandled] = 3
	unhandled := []webhookhttp.DeadLetterLister{webhookhttp.RedisUnhandled{Client: client, Stream: stream}, webhookhttp.RedisUnhandled{Client: client, Stream: retries}}
	b, _ := bridgeOn(t, webhook.Config{DeadLetters: store})
	ts, _ := api(t, webhookhttp.Config{Bridge: b, AdminToken: "tok", Unhandled: unhandled})

	walk := func(kind string, each func(webhookhttp.DeadLetterView)) []webhookhttp.DeadLetterView {
		var all []webhookhttp.DeadLetterView
		after := ""
		for pages := 0; pages < 100; pages++ {
			st, body, _ := call(t, ts, http.MethodGet, "/v1/dlq?limit=1&kind="+kind+"&after="+after, "tok", "")
			if st != http.StatusOK {
				t.Fatalf("kind %q after %q: %d %s", kind, after, st, body)
			}
			var page webhookhttp.DeadLetterPage
			if err := json.Unmarshal([]byte(body), &page); err != nil {
				t.Fatal(err)
			}
			for _, v := range page.DeadLetters {
				all = append(all, v)
				if each != nil {
					each(v)
				}
			}
			if page.Next == "" {
				return all
			}
			after = page.Next
		}
		t.Fatalf("kind %q: the walk did not end", kind)
		return nil
	}
	for k, n := range kinds {
		got := walk(string(k), nil)
		seen := map[string]bool{}
		for _, v := range got {
			if v.Kind != k || seen[v.ID] {
				t.Errorf("kind %s: %s of kind %s (seen before: %v)", k, v.ID, v.Kind, seen[v.ID])
			}
			seen[v.ID] = true
		}
		if len(got) != n {
			t.Errorf("kind %s: %d, want %d", k, len(got), n)
		}
	}
	everything := walk("", nil)
	if len(everything) != 12 {
		t.Fatalf("%d in all, want 12", len(everything))
	}
	// Each id is a cursor: the walk from it (empty pages with a next
	// allowed, at the boundary) goes on with the next one.
	for i, v := range everything[:len(everything)-1] {
		after, first := v.ID, ""
		for tries := 0; first == "" && after != "" && tries < 5; tries++ {
			st, body, _ := call(t, ts, http.MethodGet, "/v1/dlq?limit=1&after="+after, "tok", "")
			var page webhookhttp.DeadLetterPage
			if st != http.StatusOK || json.Unmarshal([]byte(body), &page) != nil {
				t.Fatalf("after=%s: %d %s", after, st, body)
			}
			if len(page.DeadLetters) > 0 {
				first = page.DeadLetters[0].ID
			}
			after = page.Next
		}
		if first != everything[i+1].ID {
			t.Errorf("after=%s: the walk goes on with %q, want %s", v.ID, first, everything[i+1].ID)
		}
	}
	// Removing what was returned shifts nothing.
	n := 0
	walk("", func(v webhookhttp.DeadLetterView) {
		n++
		if v.Kind != webhook.KindUnhandled {
			if err := store.Remove(ctx, v.ID); err != nil {
				t.Fatal(err)
			}
		}
	})
	if n != 12 {
		t.Errorf("a walk removing behind itself returned %d, want 12", n)
	}
}
