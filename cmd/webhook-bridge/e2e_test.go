package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var streamSeq atomic.Int64

// backendConfig returns the config lines that pick a backend: nothing for
// memory, a fresh stream on the shared redis-server for redis.
func backendConfig(backend string) string {
	if backend == "memory" {
		return ""
	}
	return fmt.Sprintf("redis:\n  url: redis://%s/0\nstream: e2e-%d-%d\nconsumer: c1\n", redisServer.Addr, time.Now().UnixNano(), streamSeq.Add(1))
}

func forEachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range []string{"memory", "redis"} {
		t.Run(b, func(t *testing.T) { fn(t, b) })
	}
}

func attemptsOf(hits []httpsink.Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.Header.Get("Webhook-Attempt"))
	}
	return out
}

func TestFiltersRetriesAndSignatures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		hub := httpsink.New(t, nil)
		all := httpsink.New(t, nil)
		flaky := httpsink.New(t, func(n int, _ *http.Request, w http.ResponseWriter) {
			if n <= 2 {
				w.WriteHeader(http.StatusInternalServerError)
			}
		})
		p := startBridge(t, backendConfig(backend)+`
listen: LISTEN
retry:
  schedule: [100ms]
  max_attempts: 5
subscriptions:
  - id: hub
    topic: order.created
    filter: data["body"]["x"] == 1 and data["headers"]["y"] == "z"
    url: `+hub.URL+`/hub
    secret: `+testSecret+`
  - id: all
    topic: "*"
    url: `+all.URL+`/all
  - id: flaky
    topic: order.created
    filter: data.body.x == 1
    url: `+flaky.URL+`/flaky
`)
		ids := p.emit(t, "", `[
			{"name": "order.created", "payload": {"body": {"x": 1}, "headers": {"y": "z"}}, "correlation_id": "req-7"},
			{"name": "order.created", "payload": {"body": {"x": 2}, "headers": {"y": "z"}}},
			{"name": "order.created", "payload": {"headers": {"y": "z"}}},
			{"name": "user.joined", "payload": {"body": {"x": 1}, "headers": {"y": "z"}}}
		]`)

		fl := flaky.WaitFor(t, 3, wait)
		if got := strings.Join(attemptsOf(fl), ","); got != "1,2,3" {
			t.Errorf("flaky attempts = %s, want 1,2,3", got)
		}
		for _, h := range fl {
			if h.Header.Get("Webhook-Id") != ids[0] {
				t.Errorf("flaky got event %s, want only %s", h.Header.Get("Webhook-Id"), ids[0])
			}
		}
		allHits := all.WaitFor(t, 4, wait)
		h := hub.WaitFor(t, 1, wait)[0]
		if h.Header.Get("Webhook-Id") != ids[0] || h.Header.Get("X-Correlation-Id") != "req-7" {
			t.Errorf("hub got %s (correlation %q), want %s", h.Header.Get("Webhook-Id"), h.Header.Get("X-Correlation-Id"), ids[0])
		}
		if !verifySignature(testSecret, h.Header.Get("Webhook-Id"), h.Header.Get("Webhook-Timestamp"), h.Body, h.Header.Get("Webhook-Signature")) {
			t.Errorf("hub's signature %q does not verify", h.Header.Get("Webhook-Signature"))
		}
		var payload map[string]any
		if err := json.Unmarshal(h.Body, &payload); err != nil || payload["body"].(map[string]any)["x"] != 1.0 {
			t.Errorf("hub body %s", h.Body)
		}
		// A last event behind the rest shows nothing more is on its way
		// to the subscriptions that succeeded the first time.
		last := p.emit(t, "", `{"name": "order.created", "payload": {"body": {"x": 1}, "headers": {"y": "z"}}}`)[0]
		hub.WaitUntil(t, wait, "the last event", func(hs []httpsink.Hit) bool { return hs[len(hs)-1].Header.Get("Webhook-Id") == last })
		all.WaitUntil(t, wait, "the last event", func(hs []httpsink.Hit) bool { return hs[len(hs)-1].Header.Get("Webhook-Id") == last })
		if n := len(hub.Hits()); n != 2 {
			t.Errorf("hub got %d deliveries, want 2: one per matching event", n)
		}
		if n := len(all.Hits()); n != len(allHits)+1 || n != 5 {
			t.Errorf("all got %d deliveries, want 5: one per event, none repeated by flaky's retries", n)
		}
	})
}

func TestDeadLetterListAndReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		var healthy atomic.Bool
		down := httpsink.New(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
			if !healthy.Load() {
				w.WriteHeader(http.StatusBadGateway)
			}
		})
		p := startBridge(t, backendConfig(backend)+`
listen: LISTEN
auth:
  admin_token: admin-secret
retry:
  schedule: [50ms]
subscriptions:
  - id: down
    topic: t
    url: `+down.URL+`
    max_attempts: 2
`)
		id := p.emit(t, "", `{"name": "t", "payload": {"n": 1}}`)[0]
		down.WaitFor(t, 2, wait)

		var line webhookhttp.DeadLetterView
		deadline := time.Now().Add(wait)
		for {
			out := strings.TrimSpace(cli(t, "dlq", "list", "--config", p.config))
			if out != "" {
				if strings.Count(out, "\n") != 0 {
					t.Fatalf("dlq list printed several lines for one dead letter:\n%s", out)
				}
				if err := json.Unmarshal([]byte(out), &line); err != nil {
					t.Fatalf("dlq list line %q: %v", out, err)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the dead letter never showed in dlq list")
			}
			time.Sleep(50 * time.Millisecond) // polling another process's store
		}
		if line.Event.ID != id || line.SubscriptionID != "down" || line.Attempts != 2 || line.LastStatus != 502 || !strings.Contains(line.LastError, "502") {
			t.Errorf("dlq list = %+v", line)
		}

		healthy.Store(true)
		if out := cli(t, "dlq", "replay", "--config", p.config, "--subscription", "down", "--event", id); !strings.Contains(out, "replayed 1") {
			t.Errorf("dlq replay said %q", out)
		}
		h := down.WaitFor(t, 3, wait)[2]
		if h.Header.Get("Webhook-Id") != id || h.Header.Get("Webhook-Attempt") != "1" || string(h.Body) != `{"n": 1}` {
			t.Errorf("replayed delivery: id %s attempt %s body %s", h.Header.Get("Webhook-Id"), h.Header.Get("Webhook-Attempt"), h.Body)
		}
		if out := strings.TrimSpace(cli(t, "dlq", "list", "--config", p.config)); out != "" {
			t.Errorf("dlq list after replay: %s", out)
		}
	})
}

func TestIngressAuthAndLimits(t *testing.T) {
	p := startBridge(t, `
listen: LISTEN
max_body_bytes: 2048
max_batch: 3
auth:
  jwt_secret: jwt-test-secret
`)
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := sign(jwt.SigningMethodHS256, []byte("jwt-test-secret"), jwt.MapClaims{"sub": "svc", "exp": time.Now().Add(time.Hour).Unix()})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	event := `{"name": "t", "payload": {}}`
	for name, token := range map[string]string{
		"missing":      "",
		"wrong secret": sign(jwt.SigningMethodHS256, []byte("other"), jwt.MapClaims{"sub": "svc"}),
		"expired":      sign(jwt.SigningMethodHS256, []byte("jwt-test-secret"), jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()}),
		"alg none":     sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "svc"}),
		"HS512":        sign(jwt.SigningMethodHS512, []byte("jwt-test-secret"), jwt.MapClaims{"sub": "svc"}),
		"RS256":        sign(jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"sub": "svc"}),
		"garbage":      "not.a.token",
	} {
		if status, body := p.post(t, "/v1/events", token, event); status != http.StatusUnauthorized {
			t.Errorf("%s token: %d %s, want 401", name, status, body)
		}
	}
	for _, tc := range []struct {
		body   string
		status int
		says   string
	}{
		{`{"name": "t", "payload": {}`, 400, "body: unexpected EOF"},
		{`{"payload": {}}`, 400, "name is required"},
		{`[{"name": "a", "payload": 1}, {"payload": 1}]`, 400, "events[1].name is required"},
		{`{"name": "t"}`, 400, "payload is required"},
		{``, 400, "body is empty"},
		{`{"name": "t", "payload": 1, "id": "forge.1795385012"}`, 400, `id \"forge.1795385012\"`},
		{`{"name": "x\r\nX-Injected: yes", "payload": 1}`, 400, "name"},
		{`{"name": "t", "payload": 1, "correlation_id": "a\nb"}`, 400, "correlation_id"},
		{`{"name": "t", "payload": {}, "colour": "red"}`, 400, `unknown field \"colour\"`},
		{`[]`, 400, "no events"},
		{`[{"name":"a","payload":1},{"name":"b","payload":1},{"name":"c","payload":1},{"name":"d","payload":1}]`, 413, "4 events, at most 3"},
		{`{"name": "t", "payload": "` + strings.Repeat("x", 3000) + `"}`, 413, "larger than 2048 bytes"},
		{`{"name": "switchyard.webhook.retry", "payload": {}}`, 400, "reserved"},
	} {
		status, body := p.post(t, "/v1/events", valid, tc.body)
		if status != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("POST %.40s… = %d %s, want %d saying %q", tc.body, status, body, tc.status, tc.says)
		}
	}
	ids := p.emit(t, valid, `[{"name": "a", "payload": 1, "id": "mine"}, {"name": "b", "payload": null}]`)
	if len(ids) != 2 || ids[0] != "mine" || ids[1] == "" {
		t.Errorf("ids = %v", ids)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := p.do(t, http.MethodGet, path, "", ""); status != 200 {
			t.Errorf("GET %s = %d %s", path, status, body)
		}
	}
	if status, body := p.do(t, http.MethodGet, "/v1/subscriptions", "", ""); status != http.StatusForbidden || !strings.Contains(body, "admin API disabled") {
		t.Errorf("admin API without admin_token = %d %s, want 403", status, body)
	}
}

func TestAdminAPIAndMetrics(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		s := httpsink.New(t, nil)
		p := startBridge(t, backendConfig(backend)+`
listen: LISTEN
auth:
  admin_token: admin-secret
subscriptions:
  - id: from-config
    topic: never
    url: http://127.0.0.1:9/x
`)
		const tok = "admin-secret"
		if status, _ := p.do(t, http.MethodGet, "/v1/subscriptions", "wrong", ""); status != http.StatusUnauthorized {
			t.Errorf("admin with a wrong token = %d, want 401", status)
		}
		status, body := p.do(t, http.MethodPost, "/v1/subscriptions", tok, `{"id": "bad", "topic": "t", "url": "http://x", "filter": "data.x =="}`)
		if status != http.StatusBadRequest || !strings.Contains(body, `subscription \"bad\": filter: unexpected token EOF`) {
			t.Errorf("bad filter = %d %s, want 400 with expr's message", status, body)
		}
		sub := `{"id": "api", "topic": "t", "url": "` + s.URL + `", "secret": "` + testSecret + `", "filter": "data.n > 1"}`
		if status, body := p.do(t, http.MethodPost, "/v1/subscriptions", tok, sub); status != http.StatusCreated || strings.Contains(body, testSecret) {
			t.Errorf("create = %d %s, want 201 without the secret", status, body)
		}
		if status, _ := p.do(t, http.MethodPost, "/v1/subscriptions", tok, sub); status != http.StatusConflict {
			t.Errorf("second create = %d, want 409", status)
		}
		if status, body := p.do(t, http.MethodPost, "/v1/subscriptions", tok, "["+sub+","+sub+"]"); status != http.StatusBadRequest {
			t.Errorf("several subscriptions in one request = %d %s, want 400: one per request", status, body)
		}
		if status, _ := p.do(t, http.MethodDelete, "/v1/subscriptions/from-config", tok, ""); status != http.StatusConflict {
			t.Errorf("deleting a config subscription = %d, want 409", status)
		}
		p.emit(t, "", `[{"name": "t", "payload": {"n": 1}}, {"name": "t", "payload": {"n": 2}}]`)
		h := s.WaitFor(t, 1, wait)[0]
		if string(h.Body) != `{"n": 2}` || !verifySignature(testSecret, h.Header.Get("Webhook-Id"), h.Header.Get("Webhook-Timestamp"), h.Body, h.Header.Get("Webhook-Signature")) {
			t.Errorf("delivery through the API's subscription: %s", h.Body)
		}
		// A PUT without "secret" keeps the stored secret: the delivery
		// that follows is still signed.
		if status, body := p.do(t, http.MethodPut, "/v1/subscriptions/api", tok, `{"topic": "t", "url": "`+s.URL+`", "filter": "data.n > 2"}`); status != http.StatusOK {
			t.Errorf("PUT = %d %s", status, body)
		}
		p.emit(t, "", `{"name": "t", "payload": {"n": 3}}`)
		if h := s.WaitFor(t, 2, wait)[1]; !verifySignature(testSecret, h.Header.Get("Webhook-Id"), h.Header.Get("Webhook-Timestamp"), h.Body, h.Header.Get("Webhook-Signature")) {
			t.Errorf("after a PUT without secret the delivery is not signed with the stored one: %q", h.Header.Get("Webhook-Signature"))
		}
		if status, body := p.do(t, http.MethodPut, "/v1/subscriptions/api", tok, `{"topic": "t", "url": "`+s.URL+`", "disabled": true}`); status != http.StatusOK {
			t.Errorf("PUT = %d %s", status, body)
		}
		status, body = p.do(t, http.MethodGet, "/v1/subscriptions", tok, "")
		if status != 200 || !strings.Contains(body, `"id":"api"`) || !strings.Contains(body, `"disabled":true`) || !strings.Contains(body, `"source":"config"`) {
			t.Errorf("list = %d %s", status, body)
		}
		if status, _ := p.do(t, http.MethodDelete, "/v1/subscriptions/api", tok, ""); status != http.StatusNoContent {
			t.Errorf("DELETE = %d, want 204", status)
		}
		if status, _ := p.do(t, http.MethodGet, "/v1/subscriptions/api", tok, ""); status != http.StatusNotFound {
			t.Errorf("GET after DELETE = %d, want 404", status)
		}

		status, metrics := p.do(t, http.MethodGet, "/metrics", "", "")
		for _, want := range []string{
			`webhook_bridge_deliveries_total{outcome="delivered",subscription="api"} 2`,
			`webhook_bridge_events_received_total 3`,
			`webhook_bridge_delivery_duration_seconds_bucket{subscription="api"`,
		} {
			if status != 200 || !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if backend == "redis" && !strings.Contains(metrics, "webhook_bridge_consumer_lag") {
			t.Error("/metrics lacks the consumer lag on Redis")
		}
		if strings.Contains(metrics, testSecret) || strings.Contains(metrics, s.URL) {
			t.Error("/metrics shows a secret or a URL")
		}
	})
}

func TestRedisCLIPublishAndReplicas(t *testing.T) {
	s := httpsink.New(t, nil)
	cfg := backendConfig("redis")
	stream := strings.TrimPrefix(strings.Split(cfg, "\n")[2], "stream: ")
	subs := `
subscriptions:
  - id: sink
    topic: "*"
    url: ` + s.URL + `
`
	a := startBridge(t, cfg+"listen: LISTEN\n"+subs)
	b := startBridge(t, strings.Replace(cfg, "consumer: c1", "consumer: c2", 1)+"listen: LISTEN\n"+subs)

	host, port, _ := strings.Cut(redisServer.Addr, ":")
	out, err := exec.Command("redis-cli", "-h", host, "-p", port, "XADD", stream, "*", "id", "from-cli", "name", "order.created", "payload", `{"via":"redis-cli"}`).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli XADD: %v %s", err, out)
	}
	h := s.WaitFor(t, 1, wait)[0]
	if h.Header.Get("Webhook-Id") != "from-cli" || h.Header.Get("Ce-Type") != "order.created" || string(h.Body) != `{"via":"redis-cli"}` {
		t.Errorf("delivery of the redis-cli entry: id %s type %s body %s", h.Header.Get("Webhook-Id"), h.Header.Get("Ce-Type"), h.Body)
	}

	var ids []string
	for i := range 20 {
		p := a
		if i%2 == 1 {
			p = b
		}
		ids = append(ids, p.emit(t, "", fmt.Sprintf(`{"name": "n", "payload": %d}`, i))...)
	}
	hits := s.WaitFor(t, 21, wait)
	seen := map[string]int{}
	for _, h := range hits[1:] {
		seen[h.Header.Get("Webhook-Id")]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("event %s delivered %d times by the two replicas, want once", id, seen[id])
		}
	}
}

func TestRetrySurvivesKillDuringBackoff(t *testing.T) {
	s := httpsink.New(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	cfg := backendConfig("redis")
	stream := strings.TrimPrefix(strings.Split(cfg, "\n")[2], "stream: ")
	p := startBridge(t, cfg+`
listen: LISTEN
retry:
  schedule: [1500ms]
subscriptions:
  - id: s
    topic: t
    url: `+s.URL+`
`)
	id := p.emit(t, "", `{"name": "t", "payload": {"k": 1}}`)[0]
	first := s.WaitFor(t, 1, wait)[0]
	// Once the retry is in Redis's delayed set and the source event
	// acknowledged, the bridge is killed in the middle of its 1.5s
	// backoff.
	host, port, _ := strings.Cut(redisServer.Addr, ":")
	deadline := time.Now().Add(wait)
	for {
		out, _ := exec.Command("redis-cli", "-h", host, "-p", port, "ZCARD", "{"+stream+"}:webhook:retries:delayed").Output()
		pending, _ := exec.Command("redis-cli", "-h", host, "-p", port, "XPENDING", stream, "webhook-bridge").Output()
		if strings.TrimSpace(string(out)) == "1" && strings.HasPrefix(strings.TrimSpace(string(pending)), "0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the retry never reached the delayed set")
		}
		time.Sleep(10 * time.Millisecond) // polling another process's writes
	}
	p.stop(syscall.SIGKILL)
	runBridge(t, p.config, p.addr)
	second := s.WaitFor(t, 2, wait)[1]
	if second.Header.Get("Webhook-Id") != id || second.Header.Get("Webhook-Attempt") != "2" {
		t.Errorf("after the restart: id %s attempt %s, want %s attempt 2", second.Header.Get("Webhook-Id"), second.Header.Get("Webhook-Attempt"), id)
	}
	if gap := second.At.Sub(first.At); gap < time.Second {
		t.Errorf("retry came %s after the failure, before its backoff", gap)
	}
	// Retries travel in a stream of their own: other consumer groups of
	// the events stream never see them.
	if out, _ := exec.Command("redis-cli", "-h", host, "-p", port, "XLEN", stream).Output(); strings.TrimSpace(string(out)) != "1" {
		t.Errorf("the events stream holds %s entries, want just the event", strings.TrimSpace(string(out)))
	}
}

func TestSIGTERMFinishesDeliveriesInFlight(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Int32
	s := httpsink.New(t, func(int, *http.Request, http.ResponseWriter) {
		started.Add(1)
		<-release
	})
	p := startBridge(t, backendConfig("redis")+`
listen: LISTEN
subscriptions:
  - id: slow
    topic: t
    url: `+s.URL+`
`)
	p.emit(t, "", `{"name": "t", "payload": {}}`)
	s.WaitFor(t, 1, wait)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		t.Fatal("the bridge exited with a delivery in flight")
	case <-time.After(200 * time.Millisecond): // it must still be waiting for the delivery
	}
	close(release)
	select {
	case <-p.exited:
	case <-time.After(wait):
		t.Fatal("the bridge did not exit after its delivery finished")
	}
	if !strings.Contains(p.logs(), "webhook-bridge: stopped") {
		t.Errorf("no clean stop in the log:\n%s", p.logs())
	}
}

func TestSubscriptionChangeReachesOtherReplica(t *testing.T) {
	s := httpsink.New(t, nil)
	cfg := backendConfig("redis") + "listen: LISTEN\nauth:\n  admin_token: tok\n"
	a := startBridge(t, cfg)
	b := startBridge(t, strings.Replace(cfg, "consumer: c1", "consumer: c2", 1))

	if status, body := a.do(t, http.MethodPost, "/v1/subscriptions", "tok", `{"id": "late", "topic": "t", "url": "`+s.URL+`"}`); status != http.StatusCreated {
		t.Fatalf("create on a = %d %s", status, body)
	}
	created := time.Now()
	a.stop(syscall.SIGTERM) // from now on only b consumes

	// Post to b every 50ms until an event reaches the new subscription:
	// the first one that does shows when b started using it.
	posted := map[string]time.Time{}
	deadline := time.Now().Add(wait)
	for len(s.Hits()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("replica b never delivered to the subscription made on replica a")
		}
		id := b.emit(t, "", `{"name": "t", "payload": {}}`)[0]
		posted[id] = time.Now()
		time.Sleep(50 * time.Millisecond) // the pace of the probe events
	}
	first := s.WaitFor(t, 1, wait)[0]
	if took := posted[first.Header.Get("Webhook-Id")].Sub(created); took > time.Second {
		t.Errorf("replica b used the new subscription %s after it was made on a, want within a second", took)
	}
}

func TestSecretsStayOutAndTargetsAreGuarded(t *testing.T) {
	down := httpsink.New(t, httpsink.Status(http.StatusInternalServerError))
	const jwtSecret, adminToken = "jwt-secret-never-shown", "admin-token-never-shown"
	p := startBridge(t, `
listen: LISTEN
log_level: debug
auth:
  jwt_secret: `+jwtSecret+`
  admin_token: `+adminToken+`
targets:
  deny_private: true
  allow: [127.0.0.0/8]
subscriptions:
  - id: failing
    topic: t
    url: `+down.URL+`
    secret: `+testSecret+`
    max_attempts: 1
`)
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "svc", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	p.emit(t, token, `{"name": "t", "payload": {"n": 1}}`)
	down.WaitFor(t, 1, wait)

	status, body := p.do(t, http.MethodPost, "/v1/subscriptions", adminToken, `{"id": "meta", "topic": "t", "url": "http://169.254.169.254/latest"}`)
	if status != http.StatusBadRequest || !strings.Contains(body, "not a permitted destination") {
		t.Errorf("subscription to the metadata address = %d %s, want 400", status, body)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/healthz", nil)
	req.Header.Set("X-Flood", strings.Repeat("a", 100<<10))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100 KiB of headers: %v %v, want 431", resp, err)
	}

	var dlq string
	deadline := time.Now().Add(wait)
	for dlq == "" && time.Now().Before(deadline) {
		dlq = cli(t, "dlq", "list", "--config", p.config)
		time.Sleep(20 * time.Millisecond) // polling the running bridge
	}
	_, subs := p.do(t, http.MethodGet, "/v1/subscriptions", adminToken, "")
	_, metrics := p.do(t, http.MethodGet, "/metrics", "", "")
	for name, text := range map[string]string{"log": p.logs(), "dlq list": dlq, "subscriptions": subs, "metrics": metrics} {
		for _, secret := range []string{testSecret, strings.TrimPrefix(testSecret, "whsec_"), jwtSecret, adminToken, token} {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows a secret (%.12s…)", name, secret)
			}
		}
	}
	if !strings.Contains(dlq, `"subscription_id":"failing"`) {
		t.Errorf("dlq list = %q", dlq)
	}
}

func TestBridgeResumesAfterRedisRestart(t *testing.T) {
	srv, err := redistest.Start(t.TempDir(), "--appendonly", "yes", "--appendfsync", "always")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	s := httpsink.New(t, nil)
	p := startBridge(t, `
listen: LISTEN
redis:
  url: redis://`+srv.Addr+`/0
subscriptions:
  - id: s
    topic: "*"
    url: `+s.URL+`
`)
	before := p.emit(t, "", `{"name": "before", "payload": {}}`)[0]
	s.WaitFor(t, 1, wait)

	srv.Kill()
	if status, body := p.post(t, "/v1/events", "", `{"name": "during", "payload": {}}`); status != http.StatusServiceUnavailable {
		t.Errorf("POST while Redis is down = %d %s, want 503", status, body)
	}
	if status, _ := p.do(t, http.MethodGet, "/readyz", "", ""); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while Redis is down = %d, want 503", status)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	after := postUntilAccepted(t, p, `{"name": "after", "payload": {}}`)
	s.WaitUntil(t, wait, "the event posted after the restart", func(hs []httpsink.Hit) bool {
		for _, h := range hs {
			if h.Header.Get("Webhook-Id") == after {
				return true
			}
		}
		return false
	})
	for _, h := range s.Hits() {
		if id := h.Header.Get("Webhook-Id"); id != before && id != after {
			t.Errorf("unexpected delivery %s", id)
		}
	}
}

// Redis restarted without persistence under an idle bridge: its event and
// retry streams and their groups are gone. An event posted afterwards
// whose first delivery fails must still get its retry, which travels
// through the re-created retry stream (whose group an earlier version
// made again after the retry, skipping it).
func TestBridgeRetriesAfterRedisRestartWithoutPersistence(t *testing.T) {
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	var afterHits atomic.Int32
	s := httpsink.New(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		if r.Header.Get("Ce-Type") == "after" && afterHits.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError) // its first delivery fails
		}
	})
	p := startBridge(t, `
listen: LISTEN
redis:
  url: redis://`+srv.Addr+`/0
retry:
  schedule: [200ms]
subscriptions:
  - id: s
    topic: "*"
    url: `+s.URL+`
`)
	p.emit(t, "", `{"name": "before", "payload": {}}`)
	s.WaitFor(t, 1, wait)
	srv.Kill()
	// Down long enough for the readers to back off, as in a real
	// outage; the retry then reaches its stream before its reader
	// looks again.
	time.Sleep(time.Second) // the outage, a fault schedule
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	after := postUntilAccepted(t, p, `{"name": "after", "payload": {}}`)
	got := s.WaitUntil(t, 2*wait, "the retry of the event posted after the restart", func(hs []httpsink.Hit) bool {
		n := 0
		for _, h := range hs {
			if h.Header.Get("Webhook-Id") == after {
				n++
			}
		}
		return n == 2
	})
	var attempts []string
	for _, h := range got {
		if h.Header.Get("Webhook-Id") == after {
			attempts = append(attempts, h.Header.Get("Webhook-Attempt"))
		}
	}
	if strings.Join(attempts, ",") != "1,2" {
		t.Errorf("attempts %v, want 1,2", attempts)
	}
}

// postUntilAccepted posts one event as a producer would after an outage,
// again until it is accepted (the bridge's client may need a moment to
// dial again); it returns the event's ID.
func postUntilAccepted(t *testing.T, p *proc, body string) string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		status, resp := p.post(t, "/v1/events", "", body)
		if status == http.StatusAccepted {
			var out struct{ IDs []string }
			_ = json.Unmarshal([]byte(resp), &out)
			return out.IDs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST still refused %s after the restart: %d %s", wait, status, resp)
		}
		time.Sleep(50 * time.Millisecond) // a producer's retry pause
	}
}
