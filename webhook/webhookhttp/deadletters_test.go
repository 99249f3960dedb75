package webhookhttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

const dlqToken = "admin-secret"

func testRedisClient(t *testing.T) goredis.UniversalClient {
	t.Helper()
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// testStores returns an empty memory store and an empty Redis store on
// the shared redis-server.
func testStores(t *testing.T) map[string]webhook.DeadLetterStore {
	key := fmt.Sprintf("{dlq-test-%d-%d}:webhook:dead", time.Now().UnixNano(), seq.Add(1))
	return map[string]webhook.DeadLetterStore{
		"memory": &webhook.MemoryDeadLetters{MaxLen: -1},
		"redis":  webhook.RedisDeadLetters{Client: testRedisClient(t), Key: key, MaxLen: -1},
	}
}

func fill(t *testing.T, store webhook.DeadLetterStore, prefix string, n int) {
	t.Helper()
	for i := range n {
		err := store.Add(context.Background(), webhook.DeadLetter{SubscriptionID: []string{"a", "b"}[i%2], Attempts: 2, LastStatus: 502,
			Event: pubsub.Event{ID: pubsub.ID(prefix + strconv.Itoa(i)), Name: "t", Payload: []byte(`{}`)}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// adminServer serves the bridge's routes over store, in process, with a
// bridge without subscriptions.
func adminServer(t *testing.T, store webhook.DeadLetterStore) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	bridge, broker := bridgeOn(t, webhook.Config{DeadLetters: store})
	done := make(chan struct{})
	go func() { defer close(done); bridge.Run(context.Background()) }() // consumes what a replay emits
	t.Cleanup(func() { _ = bridge.Close(); <-done })
	reg := prometheus.NewRegistry()
	h, err := webhookhttp.New(webhookhttp.Config{Bridge: bridge, Publisher: broker, AdminToken: dlqToken, Gatherer: reg,
		Metrics: webhookhttp.NewMetrics(reg, webhookhttp.MetricsConfig{DeadLetters: store})})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, reg
}

func getDLQ(t *testing.T, ts *httptest.Server, query string) (int, webhookhttp.DeadLetterPage, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/dlq"+query, nil)
	req.Header.Set("Authorization", "Bearer "+dlqToken)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var page webhookhttp.DeadLetterPage
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("GET /v1/dlq%s: %v: %s", query, err, body)
		}
		if !strings.Contains(string(body), `"next":`) {
			t.Errorf("GET /v1/dlq%s answers no next: %s", query, body)
		}
	}
	return resp.StatusCode, page, string(body)
}

func TestDLQEndpointPages(t *testing.T) {
	for name, store := range testStores(t) {
		t.Run(name, func(t *testing.T) {
			ts, _ := adminServer(t, store)
			if status, page, body := getDLQ(t, ts, ""); status != 200 || page.DeadLetters == nil || len(page.DeadLetters) != 0 || page.Next != "" {
				t.Errorf("empty store: %d %s, want 200 with an empty list and no next", status, body)
			}
			const stored = 250
			fill(t, store, "e", stored)

			status, first, body := getDLQ(t, ts, "")
			if status != 200 || len(first.DeadLetters) != 100 || first.Next == "" {
				t.Fatalf("first page = %d, %d dead letters, next %q, want the default %d and a next: %.300s", status, len(first.DeadLetters), first.Next, 100, body)
			}
			// Follow the cursor with another limit, adding dead letters
			// between pages: they are not in this walk.
			got := eventIDs(first.DeadLetters)
			next := first.Next
			for pages := 1; next != ""; pages++ {
				fill(t, store, fmt.Sprintf("later%d-", pages), 2)
				status, page, body := getDLQ(t, ts, "?"+url.Values{"limit": {"60"}, "after": {next}}.Encode())
				if status != 200 || len(page.DeadLetters) > 60 {
					t.Fatalf("page %d = %d %.300s", pages+1, status, body)
				}
				got = append(got, eventIDs(page.DeadLetters)...)
				next = page.Next
			}
			var want []string
			for i := range stored {
				want = append(want, "e"+strconv.Itoa(i))
			}
			if !slices.Equal(got, want) {
				t.Errorf("pages returned %d dead letters, want e0..e%d once each, in order: %v", len(got), stored-1, got)
			}

			// A dead letter's id is a cursor too.
			if status, page, _ := getDLQ(t, ts, "?limit=2&after="+url.QueryEscape(first.DeadLetters[9].ID)); status != 200 || !slices.Equal(eventIDs(page.DeadLetters), []string{"e10", "e11"}) {
				t.Errorf("after the 10th id: %d %v, want e10, e11", status, eventIDs(page.DeadLetters))
			}
			if status, page, _ := getDLQ(t, ts, "?limit=1000"); status != 200 || len(page.DeadLetters) != stored+2*((stored-100+59)/60) || page.Next != "" {
				t.Errorf("limit=1000: %d, %d dead letters, next %q", status, len(page.DeadLetters), page.Next)
			}

			for _, bad := range []struct{ query, param string }{
				{"?limit=0", "limit"}, {"?limit=-5", "limit"}, {"?limit=1001", "limit"}, {"?limit=ten", "limit"}, {"?limit=1e3", "limit"},
				{"?after=nope", "after"}, {"?after=1..x", "after"}, {"?after=" + url.QueryEscape(first.Next+"..1"), "after"},
				{"?limit=10&after=%2D1", "after"},
			} {
				status, _, body := getDLQ(t, ts, bad.query)
				if status != http.StatusBadRequest || !strings.Contains(body, `"error":"`+bad.param) {
					t.Errorf("GET /v1/dlq%s = %d %s, want 400 naming %s", bad.query, status, body, bad.param)
				}
			}
		})
	}
}

func eventIDs(dls []webhookhttp.DeadLetterView) []string {
	out := make([]string, len(dls))
	for i, dl := range dls {
		out[i] = dl.Event.ID
	}
	return out
}

// gauge returns the value of the unlabelled metric name in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.Gauge != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestDeadLetterGaugeIsTheStoredCount(t *testing.T) {
	ctx := context.Background()
	t.Run("redis", func(t *testing.T) {
		client := testRedisClient(t)
		store := webhook.RedisDeadLetters{Client: client, Key: fmt.Sprintf("{gauge-%d}:webhook:dead", time.Now().UnixNano()), MaxLen: 150}
		reg := prometheus.NewRegistry()
		webhookhttp.NewMetrics(reg, webhookhttp.MetricsConfig{DeadLetters: store})
		if v := gauge(t, reg, "webhook_bridge_dead_letters_stored"); v != 0 {
			t.Errorf("gauge before any dead letter = %v", v)
		}
		fill(t, store, "e", 500)
		xlen := client.XLen(ctx, store.Key).Val()
		if v := gauge(t, reg, "webhook_bridge_dead_letters_stored"); v != float64(xlen) || xlen < 150 || xlen >= 250 {
			t.Errorf("gauge = %v, XLEN = %d (bound ~150)", v, xlen)
		}
		page, _, _ := store.List(ctx, "", 7)
		_ = store.Remove(ctx, page[0].ID, page[1].ID)
		if v := gauge(t, reg, "webhook_bridge_dead_letters_stored"); v != float64(xlen-2) {
			t.Errorf("gauge after removing 2 = %v, want %d", v, xlen-2)
		}

		// Redis that does not answer reads -1, within the scrape timeout.
		down := goredis.NewClient(&goredis.Options{Addr: freeAddr(t), MaxRetries: -1})
		t.Cleanup(func() { _ = down.Close() })
		reg = prometheus.NewRegistry()
		webhookhttp.NewMetrics(reg, webhookhttp.MetricsConfig{DeadLetters: webhook.RedisDeadLetters{Client: down, Key: "k"}})
		if v := gauge(t, reg, "webhook_bridge_dead_letters_stored"); v != -1 {
			t.Errorf("gauge without Redis = %v, want -1", v)
		}
	})
	t.Run("memory", func(t *testing.T) {
		store := &webhook.MemoryDeadLetters{MaxLen: 40}
		reg := prometheus.NewRegistry()
		webhookhttp.NewMetrics(reg, webhookhttp.MetricsConfig{DeadLetters: store})
		fill(t, store, "e", 100)
		if v := gauge(t, reg, "webhook_bridge_dead_letters_stored"); v != 40 {
			t.Errorf("gauge = %v, want 40", v)
		}
		if v := gauge(t, reg, "webhook_bridge_dead_letters_dropped_total"); v != 60 {
			t.Errorf("dropped = %v, want 60", v)
		}
	})
}

// GET /v1/dlq shows payloads as what they are, fields by the API's names,
// every kind, and [] when there is nothing.
func TestDeadLetterViews(t *testing.T) {
	store := &webhook.MemoryDeadLetters{}
	ts, _ := adminServer(t, store)
	status, body := getRaw(t, ts, "")
	if status != 200 || !strings.Contains(body, `"dead_letters":[]`) {
		t.Errorf("empty: %d %s, want an empty list []", status, body)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		payload string
		kind    webhook.DeadLetterKind
	}{
		{`{"total": 7}`, webhook.KindExhausted}, {"plain text, ünïcode", webhook.KindGone}, {"\x00\xff\xfe binary", webhook.KindUndeliverable}, {"", webhook.KindOrphaned},
	} {
		if err := store.Add(context.Background(), webhook.DeadLetter{SubscriptionID: "s", Kind: c.kind, Attempts: 1, LastError: "x",
			Event: pubsub.Event{ID: "e", Name: "n", Meta: pubsub.Meta{CreatedAtUTC: created, CorrelationID: "c", IsDryRun: true}, Payload: []byte(c.payload)}}); err != nil {
			t.Fatal(err)
		}
	}
	if status, body = getRaw(t, ts, ""); status != 200 {
		t.Fatalf("GET /v1/dlq: %d %s", status, body)
	}
	for _, want := range []string{
		`"payload":{"total":7},"payload_encoding":"json"`,
		`"payload":"plain text, ünïcode","payload_encoding":"text"`,
		`"payload":"AP/+IGJpbmFyeQ==","payload_encoding":"base64"`,
		`"payload":"","payload_encoding":"text"`,
		`"created_at":"2026-01-02T03:04:05Z"`, `"dry_run":true`, `"correlation_id":"c"`,
		`"kind":"exhausted"`, `"kind":"gone"`, `"kind":"undeliverable"`, `"kind":"orphaned"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /v1/dlq lacks %s: %s", want, body)
		}
	}
	for _, not := range []string{"created_at_utc", "is_dry_run", `"Payload"`} {
		if strings.Contains(body, not) {
			t.Errorf("GET /v1/dlq shows %s: %s", not, body)
		}
	}
	if status, body := getRaw(t, ts, "?kind=gone"); status != 200 || strings.Count(body, `"kind":`) != 1 {
		t.Errorf("kind=gone: %d %s", status, body)
	}
	if status, body := getRaw(t, ts, "?kind=nope"); status != 400 || !strings.Contains(body, `"error":"kind`) {
		t.Errorf("kind=nope: %d %s", status, body)
	}
}

func getRaw(t *testing.T, ts *httptest.Server, query string) (int, string) {
	t.Helper()
	status, body, _ := call(t, ts, http.MethodGet, "/v1/dlq"+query, dlqToken, "")
	return status, body
}

// What the redis backend dead-lettered before the bridge could handle it
// is listed after the bridge's own dead letters, with kind unhandled, in
// the same walk.
func TestUnhandledEntriesAreListed(t *testing.T) {
	ctx := context.Background()
	client := testRedisClient(t)
	stream := fmt.Sprintf("unhandled-%d", seq.Add(1))
	sub, err := redis.NewSubscriber(ctx, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "c",
		Start: redis.StartBeginning, Block: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	poison := []map[string]any{{"payload": "no name"}, {"name": "bad\nname", "payload": "x"}, {"name": "n", "payload": "x", "attempts": "-3"}}
	for _, v := range poison {
		client.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: v})
	}
	reported := make(chan error, len(poison))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sub.Consume(runCtx, func(context.Context, pubsub.Event) error { return nil }, func(_ context.Context, err error, _ *pubsub.Event) { reported <- err })
	}()
	for range poison {
		select {
		case <-reported:
		case <-time.After(10 * time.Second):
			t.Fatal("poison not dead-lettered within 10s")
		}
	}
	cancel()
	<-done
	_ = sub.Close()

	store := &webhook.MemoryDeadLetters{}
	fill(t, store, "d", 3)
	bridge := newBridge(t)
	h, err := webhookhttp.New(webhookhttp.Config{Bridge: bridge, Publisher: &recorder{}, AdminToken: dlqToken,
		Unhandled: []webhookhttp.DeadLetterLister{webhookhttp.RedisUnhandled{Client: client, Stream: stream}}})
	if err != nil {
		t.Fatal(err)
	}
	_ = h
	bridgeStore := webhookhttp.DeadLetters{Store: store, Unhandled: []webhookhttp.DeadLetterLister{webhookhttp.RedisUnhandled{Client: client, Stream: stream}}}
	var kinds []webhook.DeadLetterKind
	var reasons []string
	after := ""
	for pages := 0; ; pages++ {
		page, next, err := bridgeStore.List(ctx, after, 2, "")
		if err != nil || pages > 10 {
			t.Fatalf("page %d: %v", pages, err)
		}
		for _, dl := range page {
			kinds = append(kinds, dl.Kind)
			if dl.Kind == webhook.KindUnhandled {
				reasons = append(reasons, dl.LastError)
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	if len(kinds) != 6 || kinds[3] != webhook.KindUnhandled || kinds[5] != webhook.KindUnhandled {
		t.Fatalf("kinds %v, want 3 of the bridge's then 3 unhandled", kinds)
	}
	for i, want := range []string{`no "name" field`, "control character", "attempts"} {
		if !strings.Contains(reasons[i], want) {
			t.Errorf("unhandled %d: reason %q does not say %q", i, reasons[i], want)
		}
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	status, body := getRaw(t, ts, "?kind=unhandled")
	if status != 200 || strings.Count(body, `"kind":"unhandled"`) != 3 {
		t.Errorf("kind=unhandled: %d %s", status, body)
	}
}

// A cursor into a backend dead-letter stream that is empty is checked as
// any other: one that is not an entry ID of it is refused, not taken for
// the end of the walk.
func TestCursorIntoAnEmptyUnhandledSourceIsChecked(t *testing.T) {
	ctx := context.Background()
	client := testRedisClient(t)
	stream := fmt.Sprintf("empty-unhandled-%d", seq.Add(1))
	d := webhookhttp.DeadLetters{Store: &webhook.MemoryDeadLetters{}, Unhandled: []webhookhttp.DeadLetterLister{
		webhookhttp.RedisUnhandled{Client: client, Stream: stream},
	}}
	for _, bad := range []string{"unhandled:1:zz", "unhandled:1:zz|-", "unhandled:1:1-x|-"} {
		if _, _, err := d.List(ctx, bad, 10, ""); !errors.Is(err, webhook.ErrInvalidCursor) {
			t.Errorf("List(%q) = %v, want ErrInvalidCursor", bad, err)
		}
	}
	for _, good := range []string{"unhandled:1:", "unhandled:1:|-", "unhandled:1:1700000000000-0|-"} {
		page, next, err := d.List(ctx, good, 10, "")
		if err != nil || len(page) != 0 || next != "" {
			t.Errorf("List(%q) = %v, %q, %v; want an empty last page", good, page, next, err)
		}
	}
}
