package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
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
	key := fmt.Sprintf("{dlq-test-%d-%d}:webhook:dead", time.Now().UnixNano(), streamSeq.Add(1))
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
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	bridge, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: broker, DeadLetters: store})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); bridge.Run(context.Background()) }() // consumes what a replay emits
	t.Cleanup(func() { _ = bridge.Close(); <-done })
	cfg, err := parseConfig([]byte("auth:\n  admin_token: " + dlqToken + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv := &server{cfg: cfg, bridge: bridge, log: slog.New(slog.DiscardHandler), metrics: newMetrics(reg, nil, store)}
	ts := httptest.NewServer(srv.routes(reg))
	t.Cleanup(ts.Close)
	return ts, reg
}

func getDLQ(t *testing.T, ts *httptest.Server, query string) (int, dlqPage, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/dlq"+query, nil)
	req.Header.Set("Authorization", "Bearer "+dlqToken)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var page dlqPage
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
			if status != 200 || len(first.DeadLetters) != dlqDefaultLimit || first.Next == "" {
				t.Fatalf("first page = %d, %d dead letters, next %q, want the default %d and a next: %.300s", status, len(first.DeadLetters), first.Next, dlqDefaultLimit, body)
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
			if status, page, _ := getDLQ(t, ts, "?limit=1000"); status != 200 || len(page.DeadLetters) != stored+2*((stored-dlqDefaultLimit+59)/60) || page.Next != "" {
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

func eventIDs(dls []webhook.DeadLetter) []string {
	out := make([]string, len(dls))
	for i, dl := range dls {
		out[i] = string(dl.Event.ID)
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
		newMetrics(reg, nil, store)
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
		newMetrics(reg, nil, webhook.RedisDeadLetters{Client: down, Key: "k"})
		if v := gauge(t, reg, "webhook_bridge_dead_letters_stored"); v != -1 {
			t.Errorf("gauge without Redis = %v, want -1", v)
		}
	})
	t.Run("memory", func(t *testing.T) {
		store := &webhook.MemoryDeadLetters{MaxLen: 40}
		reg := prometheus.NewRegistry()
		newMetrics(reg, nil, store)
		fill(t, store, "e", 100)
		if v := gauge(t, reg, "webhook_bridge_dead_letters_stored"); v != 40 {
			t.Errorf("gauge = %v, want 40", v)
		}
		if v := gauge(t, reg, "webhook_bridge_dead_letters_dropped_total"); v != 60 {
			t.Errorf("dropped = %v, want 60", v)
		}
	})
}

// writeConfig writes a config file for the dlq commands.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func dlqLines(t *testing.T, out string) []dlqLine {
	t.Helper()
	var lines []dlqLine
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l dlqLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("dlq list line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// dlqTestSubscriptions are the subscriptions of fill's dead letters, so
// that the dlq commands accept them in --subscription.
const dlqTestSubscriptions = `
subscriptions:
  - {id: a, topic: t, url: "http://127.0.0.1:9/a"}
  - {id: b, topic: t, url: "http://127.0.0.1:9/b"}
`

// On Redis the commands page through the stream themselves.
func TestDLQCommandsPageThroughRedis(t *testing.T) {
	cfgText := backendConfig("redis") + dlqTestSubscriptions
	path := writeConfig(t, cfgText)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	client := testRedisClient(t)
	store := deadLetterStore(cfg, client)
	const stored = 2345 // three pages of dlq list
	fill(t, store, "e", stored)

	lines := dlqLines(t, cli(t, "dlq", "list", "--config", path))
	if len(lines) != stored {
		t.Fatalf("dlq list printed %d lines, want %d", len(lines), stored)
	}
	for i, l := range lines {
		if l.EventID != "e"+strconv.Itoa(i) || l.SubscriptionID != []string{"a", "b"}[i%2] || l.LastStatus != 502 {
			t.Fatalf("line %d = %+v, want event e%d", i, l, i)
		}
	}
	if lines := dlqLines(t, cli(t, "dlq", "list", "--config", path, "--subscription", "b", "--event", "e2001")); len(lines) != 1 || lines[0].EventID != "e2001" {
		t.Errorf("dlq list filtered = %+v, want e2001 alone", lines)
	}

	out := cli(t, "dlq", "replay", "--config", path, "--subscription", "a")
	if want := fmt.Sprintf("replayed %d dead letter(s)", (stored+1)/2); !strings.Contains(out, want) {
		t.Errorf("dlq replay said %q, want %q", out, want)
	}
	if n := client.XLen(context.Background(), retryStream(cfg)).Val(); n != (stored+1)/2 {
		t.Errorf("%d retry events emitted, want %d", n, (stored+1)/2)
	}
	left := dlqLines(t, cli(t, "dlq", "list", "--config", path))
	if len(left) != stored/2 {
		t.Errorf("%d dead letters left, want b's %d", len(left), stored/2)
	}
	for _, l := range left {
		if l.SubscriptionID != "b" {
			t.Errorf("left after replaying a: %+v", l)
		}
	}
}

// metricValue reads one sample from a /metrics text.
func metricValue(text, sample string) (float64, bool) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// waitMetric polls the running bridge's /metrics until sample reaches
// want; each poll is a round trip to the other process.
func waitMetric(t *testing.T, p *proc, sample string, want float64) string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		_, text := p.do(t, http.MethodGet, "/metrics", "", "")
		v, ok := metricValue(text, sample)
		if ok && v >= want {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %v within %s: last %v (found: %v)", sample, want, wait, v, ok)
		}
	}
}

// In memory the commands page through the running bridge's admin API.
func TestDLQCommandsPageThroughTheAdminAPI(t *testing.T) {
	store := &webhook.MemoryDeadLetters{}
	ts, _ := adminServer(t, store)
	path := writeConfig(t, "listen: "+ts.Listener.Addr().String()+"\nauth:\n  admin_token: "+dlqToken+"\n"+dlqTestSubscriptions)
	const stored = 2345 // three pages of dlq list
	fill(t, store, "e", stored)
	dlq := func(args ...string) string {
		t.Helper()
		var stdout, stderr strings.Builder
		if err := runDLQ(append(args, "--config", path), &stdout, &stderr); err != nil {
			t.Fatalf("dlq %v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	lines := dlqLines(t, dlq("list"))
	if len(lines) != stored {
		t.Fatalf("dlq list printed %d lines, want %d", len(lines), stored)
	}
	for i, l := range lines {
		if l.EventID != "e"+strconv.Itoa(i) {
			t.Fatalf("line %d = %+v, want event e%d", i, l, i)
		}
	}
	if lines := dlqLines(t, dlq("list", "--event", "e1500")); len(lines) != 1 || lines[0].EventID != "e1500" {
		t.Errorf("dlq list --event e1500 = %+v", lines)
	}
	if out := dlq("replay", "--subscription", "b"); !strings.Contains(out, fmt.Sprintf("replayed %d dead letter(s)", stored/2)) {
		t.Errorf("dlq replay said %q, want %d", out, stored/2)
	}
	// What is left: a's, and b's again from the bridge, which has no
	// subscription b any more, not b's as they were.
	as := 0
	for _, l := range dlqLines(t, dlq("list")) {
		switch {
		case l.SubscriptionID == "a" && l.LastStatus == 502:
			as++
		case l.SubscriptionID == "b" && l.LastStatus == 502:
			t.Errorf("not replayed: %+v", l)
		}
	}
	if as != (stored+1)/2 {
		t.Errorf("%d of a's left, want %d", as, (stored+1)/2)
	}
}

// A running bridge keeps its dead letters within dead_letters.max_len and
// shows their number in /metrics; dlq list and replay see what it keeps.
// Rounds of four refused (410) deliveries and one success keep the
// endpoint's circuit (five failures in a row) shut.
func TestRunningBridgeBoundsItsDeadLetters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		sink := httpsink.New(t, func(_ int, r *http.Request, w http.ResponseWriter) {
			if r.URL.Path == "/gone" {
				w.WriteHeader(http.StatusGone)
			}
		})
		cfg := backendConfig(backend)
		if backend == "redis" {
			// Small stream nodes, so that XADD MAXLEN ~ trims close to
			// the bound.
			srv, err := redistest.Start(t.TempDir(), "--stream-node-max-entries", "4")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Kill)
			cfg = strings.Replace(cfg, redisServer.Addr, srv.Addr, 1)
		}
		const bound, rounds = 6, 10
		p := startBridge(t, cfg+`
listen: LISTEN
auth:
  admin_token: `+dlqToken+`
dead_letters:
  max_len: `+strconv.Itoa(bound)+`
subscriptions:
  - id: gone
    topic: t
    url: `+sink.URL+`/gone
  - id: ok
    topic: ok
    url: `+sink.URL+`/ok
`)
		for r := 1; r <= rounds; r++ {
			p.emit(t, "", `[{"name": "t", "payload": {}}, {"name": "t", "payload": {}}, {"name": "t", "payload": {}}, {"name": "t", "payload": {}}]`)
			waitMetric(t, p, `webhook_bridge_dead_letters_total{subscription="gone"}`, float64(4*r))
			p.emit(t, "", `{"name": "ok", "payload": {}}`)
			waitMetric(t, p, `webhook_bridge_deliveries_total{outcome="delivered",subscription="ok"}`, float64(r))
		}
		_, text := p.do(t, http.MethodGet, "/metrics", "", "")
		stored, _ := metricValue(text, "webhook_bridge_dead_letters_stored")
		switch backend {
		case "memory":
			if dropped, _ := metricValue(text, "webhook_bridge_dead_letters_dropped_total"); stored != bound || dropped != 4*rounds-bound {
				t.Errorf("stored %v, dropped %v; want %d and %d", stored, dropped, bound, 4*rounds-bound)
			}
		case "redis":
			c, client := bridgeRedis(t, p)
			xlen := client.XLen(context.Background(), deadLetterKey(c)).Val()
			if stored != float64(xlen) || xlen < bound || xlen >= bound+4 {
				t.Errorf("gauge %v, XLEN %d; want equal, and about %d", stored, xlen, bound)
			}
		}
		lines := dlqLines(t, cli(t, "dlq", "list", "--config", p.config))
		if float64(len(lines)) != stored {
			t.Errorf("dlq list printed %d lines, the gauge says %v", len(lines), stored)
		}
		for _, l := range lines {
			if l.SubscriptionID != "gone" || l.LastStatus != 410 {
				t.Errorf("dlq list line %+v", l)
			}
		}
		if out := cli(t, "dlq", "replay", "--config", p.config); !strings.Contains(out, fmt.Sprintf("replayed %d dead letter(s)", len(lines))) {
			t.Errorf("dlq replay said %q, want %d", out, len(lines))
		}
	})
}

// An entry the bridge cannot handle at all (here, one without a name,
// written with XADD by another producer) goes to its stream's
// dead-letter stream, and /metrics counts it.
func TestUnhandledEntriesAreCounted(t *testing.T) {
	p := startBridge(t, backendConfig("redis")+"listen: LISTEN\n")
	c, client := bridgeRedis(t, p)
	if err := client.XAdd(context.Background(), &goredis.XAddArgs{Stream: c.Stream, Values: []any{"payload", "no name"}}).Err(); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, p, "webhook_bridge_unhandled_events_stored", 1)
}

// bridgeRedis returns the config of a running bridge and a client of its
// Redis, closed when the test ends.
func bridgeRedis(t *testing.T, p *proc) (*Config, goredis.UniversalClient) {
	t.Helper()
	c, err := loadConfig(p.config)
	if err != nil {
		t.Fatal(err)
	}
	client, err := redisClient(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return c, client
}
