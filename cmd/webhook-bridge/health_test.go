package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// A subscription failing for disable_after is disabled once, someone is
// told, and after it is enabled again, recover delivers what it missed,
// each once and in order, from another process than the bridges.
func TestDisabledAfterSustainedFailureThenRecovered(t *testing.T) {
	var fixed atomic.Bool
	recv := httpsink.New(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		if !fixed.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	ops := httpsink.New(t, nil)
	config := backendConfig("redis") + `
listen: LISTEN
auth:
  admin_token: admin-secret
disable_after: 1s
subscriptions:
  - id: orders
    topic: order.created
    url: ` + recv.URL + `
    max_attempts: 1
  - id: ops
    topic: webhook.subscription.disabled
    url: ` + ops.URL + `
`
	a := startBridge(t, config)
	b := startBridge(t, strings.Replace(config, "consumer: c1", "consumer: c2", 1))

	first := a.emit(t, "", `{"name": "order.created", "payload": {"n": 1}}`)[0]
	recv.WaitFor(t, 1, wait)
	// The second failure comes once the first is disable_after old.
	time.Sleep(1100 * time.Millisecond) // the time disable_after measures, not a synchronisation
	second := b.emit(t, "", `{"name": "order.created", "payload": {"n": 2}}`)[0]
	recv.WaitFor(t, 2, wait)

	notice := ops.WaitFor(t, 1, wait)[0]
	var n webhook.DisabledNotice
	if err := json.Unmarshal(notice.Body, &n); err != nil || n.SubscriptionID != "orders" || n.ConsecutiveFailures != 2 || n.LastFailure == nil || n.LastFailure.Status != 503 {
		t.Errorf("notice %s (%v)", notice.Body, err)
	}
	status, body := a.do(t, http.MethodGet, "/v1/subscriptions/orders", "admin-secret", "")
	var v webhookhttp.SubscriptionView
	if err := json.Unmarshal([]byte(body), &v); status != http.StatusOK || err != nil || !v.Disabled || v.DisabledBy != "bridge" {
		t.Errorf("GET /v1/subscriptions/orders: %d %s", status, body)
	}
	// Every replica holds it disabled once it has reloaded the set.
	for _, p := range []*proc{a, b} {
		deadline := time.Now().Add(wait)
		for {
			_, body := p.do(t, http.MethodGet, "/v1/subscriptions/orders/health", "admin-secret", "")
			if strings.Contains(body, `"state":"disabled"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a replica still has orders enabled after %s: %s", wait, body)
			}
			time.Sleep(20 * time.Millisecond) // polling another process
		}
	}
	third := a.emit(t, "", `{"name": "order.created", "payload": {"n": 3}}`)[0]
	// Skipped while disabled: logged, not sent.
	eventAttempts(t, a, third, 1)
	if got := eventAttempts(t, a, third, 1).Attempts[0]; got.Outcome != webhook.Skipped {
		t.Errorf("an event while disabled: %+v", got)
	}

	fixed.Store(true)
	if status, body := b.do(t, http.MethodPost, "/v1/subscriptions/orders/enable", "admin-secret", ""); status != http.StatusOK {
		t.Fatalf("enable: %d %s", status, body)
	}
	out := cli(t, "recover", "--config", a.config, "--subscription", "orders", "--since", "1h")
	if !strings.Contains(out, "scheduled 3 event(s)") {
		t.Errorf("recover said %q", out)
	}
	// One after another, in the order they were emitted.
	hits := recv.WaitFor(t, 5, wait)[2:]
	for i, want := range []string{first, second, third} {
		if got := hits[i].Header.Get("Webhook-Id"); got != want {
			t.Errorf("recovered delivery %d is %s, want %s (in the order emitted)", i, got, want)
		}
	}
	if out := cli(t, "recover", "--config", a.config, "--subscription", "orders", "--since", "1h"); !strings.Contains(out, "scheduled 0") {
		t.Errorf("a second recover said %q", out)
	}
	if got := len(ops.Hits()); got != 1 {
		t.Errorf("%d notices, want 1", got)
	}
	status, body = b.do(t, http.MethodGet, "/v1/subscriptions/orders/health", "admin-secret", "")
	var h webhookhttp.HealthView
	if err := json.Unmarshal([]byte(body), &h); status != http.StatusOK || err != nil || h.State != webhook.StateHealthy || h.Succeeded < 1 {
		t.Errorf("health after recovery: %d %s", status, body)
	}
}
