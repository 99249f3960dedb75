package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
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
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

const dlqToken = "admin-secret"

func testRedisClient(t *testing.T) goredis.UniversalClient {
	t.Helper()
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = client.Close() })
	return client
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

// adminServer serves the bridge's HTTP API over store, in process, with
// subscriptions a and b delivering to a receiver that takes everything.
func adminServer(t *testing.T, store webhook.DeadLetterStore) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	sink := httpsink.New(t, nil)
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	subs := []webhook.Subscription{{ID: "a", Topic: "t", URL: sink.URL}, {ID: "b", Topic: "t", URL: sink.URL}}
	bridge, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: broker, DeadLetters: store, Subscriptions: subs})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); bridge.Run(context.Background()) }() // consumes what a replay emits
	t.Cleanup(func() { _ = bridge.Close(); <-done })
	reg := prometheus.NewRegistry()
	h, err := webhookhttp.New(webhookhttp.Config{Bridge: bridge, Publisher: broker, AdminToken: dlqToken, ReadOnly: subs, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, reg
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

func dlqLines(t *testing.T, out string) []webhookhttp.DeadLetterView {
	t.Helper()
	var lines []webhookhttp.DeadLetterView
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l webhookhttp.DeadLetterView
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
		if l.Event.ID != "e"+strconv.Itoa(i) || l.SubscriptionID != []string{"a", "b"}[i%2] || l.LastStatus != 502 {
			t.Fatalf("line %d = %+v, want event e%d", i, l, i)
		}
	}
	if lines := dlqLines(t, cli(t, "dlq", "list", "--config", path, "--subscription", "b", "--event", "e2001")); len(lines) != 1 || lines[0].Event.ID != "e2001" {
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
		if l.Event.ID != "e"+strconv.Itoa(i) {
			t.Fatalf("line %d = %+v, want event e%d", i, l, i)
		}
	}
	if lines := dlqLines(t, dlq("list", "--event", "e1500")); len(lines) != 1 || lines[0].Event.ID != "e1500" {
		t.Errorf("dlq list --event e1500 = %+v", lines)
	}
	if out := dlq("replay", "--subscription", "b"); !strings.Contains(out, fmt.Sprintf("replayed %d dead letter(s)", stored/2)) {
		t.Errorf("dlq replay said %q, want %d", out, stored/2)
	}
	// What is left: a's; b's were delivered.
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
			waitMetric(t, p, `webhook_bridge_dead_letters_total{kind="gone",subscription="gone"}`, float64(4*r))
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
