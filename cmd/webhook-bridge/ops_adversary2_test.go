package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// TestAdversary2RedisPasswordNeverInErrors: "Secrets (... the Redis
// password) never appear in logs, errors ...". A redis.url Go's URL parser
// refuses (a mistyped port; a password holding a space, an '@' or a '%'
// not percent-encoded, which passwords often do) is quoted whole, password
// included, in the one error line of the bridge and of the dlq commands.
func TestAdversary2RedisPasswordNeverInErrors(t *testing.T) {
	for _, u := range []string{
		"redis://:s3cr3t-pw@127.0.0.1:notaport/0",
		"redis://:s3cr3t pw@127.0.0.1:6379/0",
		"redis://:s3cr3t@pw@127.0.0.1:6379/0",
		"redis://:s3cr3t%pw@127.0.0.1:6379/0",
		"redis://default:s3cr3t-pw@127.0.0.1:1/0",
	} {
		path := writeConfig(t, fmt.Sprintf("listen: 127.0.0.1:0\nredis:\n  url: %q\n", u))
		for _, args := range [][]string{
			{"--config", path},
			{"dlq", "list", "--config", path},
			{"dlq", "replay", "--config", path},
			{"dlq", "list", "--subscription", "s", "--config", path},
		} {
			_, stderr, code := runCLI(t, args...)
			if code != 1 {
				t.Errorf("url %q, %v: exit %d", u, args, code)
			}
			if strings.Contains(stderr, "s3cr3t") {
				t.Errorf("url %q, %v: the Redis password is in the error: %s", u, args[:len(args)-2], strings.TrimSpace(stderr))
			}
		}
	}
}

// TestAdversary2RemadeGroupDoesWhatTheStartLineSays: an operator deletes
// the bridge's group (XGROUP DESTROY) to start afresh, with start: end.
// The bridge says, at its next start, group_exists=false and "group
// starts at the end of the stream: events added before the group existed
// are skipped"; the events added while the group was gone must then be
// skipped, or the line must say otherwise; and what was delivered before
// must not be delivered again. (The group still exists on the retry
// stream, {stream}:webhook:retries, so the backend takes the events stream
// for a partition added later and makes the group at 0 there: the whole
// stream is delivered again.)
func TestAdversary2RemadeGroupDoesWhatTheStartLineSays(t *testing.T) {
	s := httpsink.New(t, nil)
	stream := fmt.Sprintf("adv2-remade-%d-%d", time.Now().UnixNano(), streamSeq.Add(1))
	cfg := fmt.Sprintf("redis:\n  url: redis://%s/0\nstream: %s\nconsumer: c1\nconcurrency: 1\nstart: end\n", redisServer.Addr, stream) + `
listen: LISTEN
subscriptions:
  - id: s
    topic: t
    url: ` + s.URL + `
`
	p := startBridge(t, cfg)
	p.emit(t, "", `{"name": "t", "payload": {}, "id": "first"}`)
	s.WaitFor(t, 1, wait)
	p.stop(syscall.SIGTERM)

	rc := testRedisClient(t)
	ctx := context.Background()
	if err := rc.XGroupDestroy(ctx, stream, "webhook-bridge").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{"id", "while-gone", "name", "t", "payload", `{}`}}).Err(); err != nil {
		t.Fatal(err)
	}
	p = runBridge(t, p.config, p.addr)
	saysSkipped := strings.Contains(p.logs(), "events added before the group existed are skipped") && strings.Contains(p.logs(), "group_exists=false")
	p.emit(t, "", `{"name": "t", "payload": {}, "id": "after"}`)
	hits := s.WaitUntil(t, wait, "the event added after the restart", func(hs []httpsink.Hit) bool {
		return len(hs) > 0 && hs[len(hs)-1].Header.Get("Webhook-Id") == "after"
	})
	var ids []string
	for _, h := range hits {
		ids = append(ids, h.Header.Get("Webhook-Id"))
	}
	if n := strings.Count(strings.Join(ids, ","), "first"); n != 1 {
		t.Errorf("the event delivered before the group was deleted was delivered %d times after it was re-made (start: end): %v", n, ids)
	}
	delivered := strings.Contains(strings.Join(ids, ","), "while-gone")
	if saysSkipped && delivered {
		t.Errorf("the start line says events added before the group existed are skipped (group_exists=false), yet the one added while the group was gone was delivered: %v\n%s", ids, p.logs())
	}
	if !saysSkipped && !delivered {
		t.Errorf("delivered %v; log:\n%s", ids, p.logs())
	}
}

// TestAdversary2RetryInIsTheRealWaitOnRedis measures, through the binary
// on Redis, the time between a failed attempt and its retry against the
// retry_in its warning logged (the delayed set is polled every 250ms).
func TestAdversary2RetryInIsTheRealWaitOnRedis(t *testing.T) {
	s := httpsink.New(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		if r.Header.Get("Webhook-Attempt") == "1" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	p := startBridge(t, backendConfig("redis")+`
listen: LISTEN
retry:
  schedule: [1500ms]
subscriptions:
  - id: s
    topic: t
    url: `+s.URL+`
`)
	p.emit(t, "", `{"name": "t", "payload": {}, "id": "r1"}`)
	hits := s.WaitFor(t, 2, wait)
	real := hits[1].At.Sub(hits[0].At)
	m := regexp.MustCompile(`retry_in=(\S+)`).FindStringSubmatch(p.logs())
	if m == nil {
		t.Fatalf("no retry_in in the log:\n%s", p.logs())
	}
	logged, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("retry_in=%s, real wait %s", logged, real)
	if d := real - logged; d < -50*time.Millisecond || d > time.Second { // the delayed-set poll (250 ms) and a loaded machine
		t.Errorf("retry_in=%s logged, the retry came %s after the attempt", logged, real)
	}
}

// TestAdversary2SlowClientDoesNotHoldTheShutdown (now: it holds the HTTP
// side at most shutdown_timeout, the bridge stops reading at once, and the
// exit is 0): "On SIGTERM or SIGINT
// the bridge stops reading and taking events ... lets them finish (up to
// shutdown_timeout), records their outcome, and exits with status 0";
// status 1 and the "abandoned" line are for deliveries still in flight.
// A client that sent its headers and trickles its body (no delivery in
// flight at all) keeps the HTTP server's Shutdown waiting: meanwhile the
// bridge waits the whole shutdown_timeout, then picks at random between
// "stopped" (status 0) and "shutdown_timeout reached: ... deliveries in
// flight abandoned" with in_flight=0 (status 1): both channels are ready
// when Shutdown returns at the deadline.
func TestAdversary2SlowClientDoesNotHoldTheShutdown(t *testing.T) {
	s := httpsink.New(t, nil)
	cfg := backendConfig("redis")
	stream := regexp.MustCompile(`stream: (\S+)`).FindStringSubmatch(cfg)[1]
	p := startBridge(t, cfg+`
listen: LISTEN
shutdown_timeout: 3s
subscriptions:
  - id: s
    topic: t
    url: `+s.URL+`
`)
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The handler is reading the body once the server answers "100
	// Continue" (it does so at the handler's first read). Accepting the
	// connection proves nothing: a request whose headers the server has
	// not read when Shutdown starts is dropped unanswered, as it should be.
	if _, err := fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("no 100 Continue: %q %v", line, err)
	}
	if _, err := fmt.Fprintf(conn, "{\"na"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	waitLog(t, p, "shutting down")
	if err := testRedisClient(t).XAdd(context.Background(), &goredis.XAddArgs{
		Stream: stream, Values: []any{"id", "after-sigterm", "name", "t", "payload", `{}`},
	}).Err(); err != nil {
		t.Fatal(err)
	}
	code := exitedWithin(t, p, wait)
	took := time.Since(start)
	for _, h := range s.Hits() {
		if h.Header.Get("Webhook-Id") == "after-sigterm" {
			t.Errorf("an event added after SIGTERM was read and delivered during the shutdown")
		}
	}
	// The client's request is in progress: it may take shutdown_timeout
	// (3s) to finish, and is then cut; no delivery is abandoned.
	if code != 0 || strings.Contains(p.logs(), "abandoned") || took > 5*time.Second || !strings.Contains(p.logs(), "were cut") {
		t.Errorf("no delivery in flight, one slow HTTP client: exit %d after %s:\n%s", code, took.Round(time.Millisecond), p.logs())
	}
}

// TestAdversary2FilterEditedWhileRetriesWaitOnTwoReplicas: two replicas on
// one Redis; 4 of 20 events (n = 5, 10, 15, 20: fewer than the 5 failures
// in a row that open a circuit) fail their first delivery; while their
// retries wait, the subscription's filter is narrowed through replica a's
// admin API to n > 10. Each retry goes to whichever replica reads it:
// those still matching (15, 20) are delivered once each, the others never
// again, and are dead-lettered as orphaned.
func TestAdversary2FilterEditedWhileRetriesWaitOnTwoReplicas(t *testing.T) {
	s := httpsink.New(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		switch r.Header.Get("Webhook-Id") {
		case "n5", "n10", "n15", "n20":
		default:
			return
		}
		if r.Header.Get("Webhook-Attempt") == "1" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	cfg := backendConfig("redis") + "listen: LISTEN\nauth:\n  admin_token: tok\nretry:\n  schedule: [1500ms]\n"
	a := startBridge(t, cfg)
	b := startBridge(t, strings.Replace(cfg, "consumer: c1", "consumer: c2", 1))
	sub := func(filter string) string {
		return `{"id": "big", "topic": "t", "url": "` + s.URL + `", "filter": "` + filter + `"}`
	}
	if st, body := a.do(t, http.MethodPost, "/v1/subscriptions", "tok", sub("data.n > 0")); st != http.StatusCreated {
		t.Fatalf("create: %d %s", st, body)
	}
	// Both replicas use it before any event.
	waitLog(t, b, "subscriptions in force\" count=1")
	var evs []string
	for i := 1; i <= 20; i++ {
		evs = append(evs, fmt.Sprintf(`{"name": "t", "id": "n%d", "payload": {"n": %d}}`, i, i))
	}
	a.emit(t, "", "["+strings.Join(evs, ",")+"]")
	s.WaitFor(t, 20, wait)
	if st, body := a.do(t, http.MethodPut, "/v1/subscriptions/big", "tok", sub("data.n > 10")); st != http.StatusOK {
		t.Fatalf("put: %d %s", st, body)
	}
	// Retries come due 1.2–1.8 s after their failure.
	var out string
	deadline := time.Now().Add(wait)
	for {
		out = cli(t, "dlq", "list", "--config", a.config)
		if (len(dlqLines(t, out)) >= 2 && len(s.Hits()) >= 22) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling another process's dead letters
	}
	second := map[string]int{}
	for _, h := range s.Hits() {
		if h.Header.Get("Webhook-Attempt") != "1" {
			second[h.Header.Get("Webhook-Id")]++
		}
	}
	for _, n := range []int{5, 10, 15, 20} {
		id := fmt.Sprintf("n%d", n)
		want := 0
		if n > 10 {
			want = 1
		}
		if second[id] != want {
			t.Errorf("%s (n=%d) retried to the subscription %d times after its filter became data.n > 10, want %d", id, n, second[id], want)
		}
	}
	orphans := map[string]bool{}
	for _, l := range dlqLines(t, out) {
		if l.Kind == "orphaned" {
			orphans[l.Event.ID] = true
		}
	}
	if len(orphans) != 2 || !orphans["n5"] || !orphans["n10"] {
		t.Errorf("orphaned dead letters %v, want n5 and n10:\n%s", orphans, out)
	}
	// The metrics of both replicas add up to what happened: 20 events
	// matched (retries excluded), 2 orphaned, 2 retries delivered.
	sum := func(sample string) float64 {
		total := 0.0
		for _, r := range []*proc{a, b} {
			_, text := r.do(t, http.MethodGet, "/metrics", "", "")
			v, _ := metricValue(text, sample)
			total += v
		}
		return total
	}
	for sample, want := range map[string]float64{
		`webhook_bridge_events_consumed_total{result="matched"}`:                  20,
		`webhook_bridge_events_consumed_total{result="filtered_out"}`:             0,
		`webhook_bridge_events_consumed_total{result="unmatched"}`:                0,
		`webhook_bridge_dead_letters_total{kind="orphaned",subscription="big"}`:   2,
		`webhook_bridge_deliveries_total{outcome="failed",subscription="big"}`:    4,
		`webhook_bridge_deliveries_total{outcome="delivered",subscription="big"}`: 18,
	} {
		if got := sum(sample); got != want {
			t.Errorf("%s summed over the replicas: %v, want %v", sample, got, want)
		}
	}
}

// TestAdversary2DLQListIsTheAPIsItems: on Redis, 2,500 dead letters of the
// bridge (payloads JSON, text and binary) and unhandled entries of the
// event stream: `dlq list` prints exactly the items of a walk of GET
// /v1/dlq, in the same order, field for field.
func TestAdversary2DLQListIsTheAPIsItems(t *testing.T) {
	p := startBridge(t, backendConfig("redis")+"listen: LISTEN\nauth:\n  admin_token: tok\n"+dlqTestSubscriptions)
	c, client := bridgeRedis(t, p)
	store := deadLetterStore(c, client)
	ctx := context.Background()
	payloads := [][]byte{[]byte(`{"a":[1,2]}`), []byte("plain <text> & more"), {0xff, 0, 1}}
	for i := range 2500 {
		if err := store.Add(ctx, webhook.DeadLetter{SubscriptionID: "a", Kind: webhook.KindExhausted, Attempts: 3, LastStatus: 500,
			Event: pubsub.Event{ID: pubsub.ID(fmt.Sprintf("e%d", i)), Name: "t", Payload: payloads[i%3]}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: c.Stream, Values: []any{"payload", fmt.Sprint("no name ", i)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitMetric(t, p, "webhook_bridge_unhandled_events_stored", 3)

	var api []string
	after := ""
	for {
		st, body := p.do(t, http.MethodGet, "/v1/dlq?limit=1000&after="+after, "tok", "")
		if st != http.StatusOK {
			t.Fatalf("GET /v1/dlq: %d %s", st, body)
		}
		var page struct {
			DeadLetters []json.RawMessage `json:"dead_letters"`
			Next        string            `json:"next"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		for _, raw := range page.DeadLetters {
			var v any
			_ = json.Unmarshal(raw, &v)
			b, _ := json.Marshal(v)
			api = append(api, string(b))
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	var listed []string
	for _, line := range strings.Split(strings.TrimSpace(cli(t, "dlq", "list", "--config", p.config)), "\n") {
		var v any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("dlq list line %q: %v", line, err)
		}
		b, _ := json.Marshal(v)
		listed = append(listed, string(b))
	}
	if len(api) != 2503 || len(listed) != len(api) {
		t.Fatalf("GET /v1/dlq walked %d items, dlq list printed %d; want 2503", len(api), len(listed))
	}
	for i := range api {
		if api[i] != listed[i] {
			t.Errorf("item %d: GET /v1/dlq %s, dlq list %s", i, api[i], listed[i])
			break
		}
	}
}

// TestAdversary2GoRedisLinesGoToTheLog: "go-redis's own messages go to the
// bridge's log at debug". Redis killed under a running bridge, then back:
// at info every line of the bridge's standard error is one of its own
// records (none of go-redis's own "redis: ..." lines); at debug go-redis's
// lines come as records prefixed "go-redis: ".
func TestAdversary2GoRedisLinesGoToTheLog(t *testing.T) {
	for _, level := range []string{"info", "debug"} {
		t.Run(level, func(t *testing.T) {
			srv, err := redistest.Start(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Kill()
			p := startBridge(t, fmt.Sprintf("redis:\n  url: redis://%s/0\nconsumer: c1\nlisten: LISTEN\nlog_level: %s\n", srv.Addr, level))
			srv.Kill()
			// The bridge notices: its readiness answers 503.
			deadline := time.Now().Add(wait)
			for {
				if st, _ := p.do(t, http.MethodGet, "/readyz", "", ""); st == http.StatusServiceUnavailable {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("readyz never said Redis is gone")
				}
				time.Sleep(20 * time.Millisecond) // polling another process
			}
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			p.stop(syscall.SIGTERM)
			for _, line := range strings.Split(strings.TrimSpace(p.logs()), "\n") {
				if !strings.HasPrefix(line, "time=") {
					t.Errorf("a line that is not one of the bridge's records: %q", line)
				}
				if level == "info" && strings.Contains(line, "go-redis") {
					t.Errorf("go-redis line at info: %q", line)
				}
			}
		})
	}
}

// TestAdversary2NonPositiveDurationsAreRefusedAtLoad: "every error is one
// line naming what is wrong". A negative shutdown_timeout is taken: every
// shutdown then ends with status 1 and "shutdown_timeout reached: ...
// deliveries in flight abandoned" with none in flight. A demo.interval of
// zero or less (the demo on) is taken too, and the bridge panics after
// saying it listens (time.NewTicker), with a goroutine dump.
func TestAdversary2NonPositiveDurationsAreRefusedAtLoad(t *testing.T) {
	for name, extra := range map[string]string{
		"shutdown_timeout -1s": "shutdown_timeout: -1s\n",
		"demo.interval -1s":    "demo:\n  enabled: true\n  interval: -1s\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := writeConfig(t, "listen: "+freeAddr(t)+"\n"+extra)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "--config", path)
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			out, _ := cmd.CombinedOutput()
			code := cmd.ProcessState.ExitCode()
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			refused := code == 1 && len(lines) == 1 && strings.Contains(lines[0], "config:")
			if !refused {
				t.Errorf("%s: exit %d, %d lines of output, not one config error line:\n%.1500s", name, code, len(lines), out)
			}
		})
	}
}
