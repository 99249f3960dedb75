package webhookhttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

const advAdmin = "adv-admin-token"

// ADVERSARY: every error answer is one JSON shape with a ONE-LINE error.
// A path holding an encoded newline is echoed, decoded, into the 404's
// error text.
func TestAdversaryErrorShapeOnOddPaths(t *testing.T) {
	ts, _ := api(t, webhookhttp.Config{AdminToken: advAdmin})
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/v1/nope%0Aforged: line", http.StatusNotFound},
		{http.MethodGet, "/v1/nope%0D%0Ax", http.StatusNotFound},
		{http.MethodPost, "/v1/events/", http.StatusNotFound},
		{http.MethodPost, "/v1/events%2F", http.StatusNotFound},
		{http.MethodOptions, "/v1/events", http.StatusMethodNotAllowed},
		{http.MethodPut, "/v1/events", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/v1/dlq", http.StatusMethodNotAllowed},
		{"BREW", "/v1/subscriptions", http.StatusMethodNotAllowed},
	} {
		status, body, ct := call(t, ts, c.method, c.path, advAdmin, "")
		if status != c.status {
			t.Errorf("%s %s = %d %s, want %d", c.method, c.path, status, body, c.status)
			continue
		}
		problem(t, status, body, ct)
	}
}

// ADVERSARY: a bad cursor gives 400. A well-formed stream ID that Redis
// refuses as a start (the largest ID: nothing can follow it) gives 503,
// "Redis did not answer", instead, on both the bridge's dead letters and
// the unhandled entries.
func TestAdversaryDLQMaxIDCursorIs400(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = client.Close() })
	stream := fmt.Sprintf("adv-dlq-%d", seq.Add(1))
	store := webhook.RedisDeadLetters{Client: client, Key: stream + ":webhook:dead"}
	ctx := context.Background()
	for i := range 3 {
		if err := store.Add(ctx, webhook.DeadLetter{SubscriptionID: "s", Kind: webhook.KindGone, LastStatus: 410,
			Event: mustEvent(fmt.Sprintf("e%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	// one unhandled entry
	if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: "{" + stream + "}:dead", Values: []any{"id", "x", "reason", "bad"}}).Err(); err != nil {
		t.Fatal(err)
	}
	broker := newBridgeWithStore(t, store)
	ts, _ := api(t, webhookhttp.Config{AdminToken: advAdmin, Bridge: broker,
		Unhandled: []webhookhttp.DeadLetterLister{webhookhttp.RedisUnhandled{Client: client, Stream: "{" + stream + "}"}}})
	const max = "18446744073709551615-18446744073709551615"
	for _, after := range []string{
		max, max + ".." + max, "1-0.." + max,
		"unhandled:1:" + max, "unhandled:1:garbage", "unhandled:2:", "unhandled:0:", "unhandled:x", "1-0..", "..1-0", "1-0..2-0..3-0",
	} {
		status, body, ct := call(t, ts, http.MethodGet, "/v1/dlq?after="+urlq(after), advAdmin, "")
		switch {
		case status == http.StatusOK:
			// a valid position: fine as long as it is a page
			var page webhookhttp.DeadLetterPage
			if err := json.Unmarshal([]byte(body), &page); err != nil {
				t.Errorf("after=%s: 200 %s", after, body)
			}
		case status != http.StatusBadRequest:
			t.Errorf("GET /v1/dlq?after=%s = %d %s, want 400 naming after", after, status, strings.TrimSpace(body))
		default:
			if p := problem(t, status, body, ct); !strings.Contains(p.Error, "after") {
				t.Errorf("after=%s: 400 %q does not name after", after, p.Error)
			}
		}
	}
}

// ADVERSARY: a walk with every limit covers each dead letter exactly
// once: the bridge's, then the unhandled ones of both streams.
func TestAdversaryDLQWalkEveryLimit(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = client.Close() })
	stream := fmt.Sprintf("adv-walk-%d", seq.Add(1))
	store := webhook.RedisDeadLetters{Client: client, Key: stream + ":webhook:dead"}
	ctx := context.Background()
	want := map[string]bool{}
	for i := range 7 {
		if err := store.Add(ctx, webhook.DeadLetter{SubscriptionID: "s", Kind: webhook.KindExhausted, Event: mustEvent(fmt.Sprintf("e%d", i))}); err != nil {
			t.Fatal(err)
		}
		want["dead:"+fmt.Sprintf("e%d", i)] = true
	}
	for i, key := range []string{"{" + stream + "}:dead", "{" + stream + "}:webhook:retries:dead"} {
		for j := range 4 + i {
			id := fmt.Sprintf("u%d-%d", i, j)
			if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"id", id, "name", "n\x01", "payload", "{}", "reason", "bad"}}).Err(); err != nil {
				t.Fatal(err)
			}
			want["unhandled:"+id] = true
		}
	}
	ts, _ := api(t, webhookhttp.Config{AdminToken: advAdmin, Bridge: newBridgeWithStore(t, store),
		Unhandled: []webhookhttp.DeadLetterLister{
			webhookhttp.RedisUnhandled{Client: client, Stream: "{" + stream + "}"},
			webhookhttp.RedisUnhandled{Client: client, Stream: "{" + stream + "}:webhook:retries"},
		}})
	for limit := 1; limit <= len(want)+1; limit++ {
		seen := map[string]int{}
		after := ""
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatalf("limit %d: walk does not end", limit)
			}
			status, body, _ := call(t, ts, http.MethodGet, fmt.Sprintf("/v1/dlq?limit=%d&after=%s", limit, urlq(after)), advAdmin, "")
			if status != http.StatusOK {
				t.Fatalf("limit %d after %q: %d %s", limit, after, status, body)
			}
			var page webhookhttp.DeadLetterPage
			if err := json.Unmarshal([]byte(body), &page); err != nil {
				t.Fatal(err)
			}
			if len(page.DeadLetters) > limit {
				t.Errorf("limit %d: page of %d", limit, len(page.DeadLetters))
			}
			for _, dl := range page.DeadLetters {
				k := "dead:" + dl.Event.ID
				if dl.Kind == webhook.KindUnhandled {
					k = "unhandled:" + dl.Event.ID
				}
				seen[k]++
				// every id is a cursor too
				if s, b, _ := call(t, ts, http.MethodGet, "/v1/dlq?limit=1&after="+urlq(dl.ID), advAdmin, ""); s != http.StatusOK {
					t.Errorf("id %q as a cursor: %d %s", dl.ID, s, b)
				}
			}
			if page.Next == "" {
				break
			}
			after = page.Next
		}
		for k := range want {
			if seen[k] != 1 {
				t.Errorf("limit %d: %s seen %d times", limit, k, seen[k])
			}
		}
		if len(seen) != len(want) {
			t.Errorf("limit %d: saw %d distinct, want %d", limit, len(seen), len(want))
		}
	}
}

func urlq(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", ":", "%3A", " ", "%20").Replace(s)
}

func mustEvent(id string) pubsub.Event {
	ev := pubsub.NewEvent(context.Background(), "adv.event", []byte(`{}`))
	ev.ID = pubsub.ID(id)
	return ev
}

// newBridgeWithStore is newBridge with a dead-letter store of the test's.
func newBridgeWithStore(t testing.TB, store webhook.DeadLetterStore, subs ...webhook.Subscription) *webhook.Bridge {
	t.Helper()
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	b, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: broker, Subscriptions: subs, DeadLetters: store})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Error answers of the admin API and ingest keep the JSON shape: 413 for
// admin bodies, empty bodies, 401, 403, 404 for objects.
func TestAdversaryAdminErrorShapes(t *testing.T) {
	ts, _ := api(t, webhookhttp.Config{AdminToken: advAdmin, JWTSecret: "jwt-secret-for-adversary"})
	off, _ := api(t, webhookhttp.Config{})
	big := subBody("big", `, "filter": "`+strings.Repeat("a", 300<<10)+`"`)
	for _, c := range []struct {
		ts           *httptest.Server
		method, path string
		token, body  string
		status       int
	}{
		{ts, http.MethodPost, "/v1/subscriptions", advAdmin, big, http.StatusRequestEntityTooLarge},
		{ts, http.MethodPut, "/v1/subscriptions/x", advAdmin, big, http.StatusRequestEntityTooLarge},
		{ts, http.MethodPost, "/v1/subscriptions", advAdmin, "", http.StatusBadRequest},
		{ts, http.MethodPost, "/v1/subscriptions", advAdmin, " \n\t ", http.StatusBadRequest},
		{ts, http.MethodPost, "/v1/subscriptions", "wrong", subBody("a", ""), http.StatusUnauthorized},
		{ts, http.MethodPost, "/v1/events", "", `{"name":"a","payload":1}`, http.StatusUnauthorized},
		{ts, http.MethodPost, "/v1/events", "not.a.jwt", `{"name":"a","payload":1}`, http.StatusUnauthorized},
		{off, http.MethodGet, "/v1/dlq", advAdmin, "", http.StatusForbidden},
		{off, http.MethodPost, "/v1/events", "", "", http.StatusBadRequest},
		{off, http.MethodPost, "/v1/events", "", "[]", http.StatusBadRequest},
		{off, http.MethodPost, "/v1/events", "", "null", http.StatusBadRequest},
		{off, http.MethodPost, "/v1/events", "", `{"name":"a","payload":1} {"name":"b","payload":1}`, http.StatusBadRequest},
		{ts, http.MethodGet, "/v1/subscriptions/nope", advAdmin, "", http.StatusNotFound},
		{ts, http.MethodDelete, "/v1/subscriptions/nope", advAdmin, "", http.StatusNotFound},
		{ts, http.MethodPost, "/v1/dlq/replay?subscription=nope", advAdmin, "", http.StatusNotFound},
		{ts, http.MethodGet, "/v1/dlq?limit=0", advAdmin, "", http.StatusBadRequest},
		{ts, http.MethodGet, "/v1/dlq?limit=1001", advAdmin, "", http.StatusBadRequest},
		{ts, http.MethodGet, "/v1/dlq?kind=bogus", advAdmin, "", http.StatusBadRequest},
	} {
		status, body, ct := call(t, c.ts, c.method, c.path, c.token, c.body)
		if status != c.status {
			t.Errorf("%s %s = %d %.200s, want %d", c.method, c.path, status, body, c.status)
			continue
		}
		problem(t, status, body, ct)
	}
}
