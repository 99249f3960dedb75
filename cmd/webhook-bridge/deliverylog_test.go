package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// eventAttempts polls GET /v1/events/{id} until it shows n attempts (the
// log is written a moment after each attempt, in another process).
func eventAttempts(t *testing.T, p *proc, id string, n int) webhookhttp.EventAttempts {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		status, body := p.do(t, http.MethodGet, "/v1/events/"+id, "admin-secret", "")
		var got webhookhttp.EventAttempts
		if status == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("GET /v1/events/%s: %v: %s", id, err, body)
			}
			if len(got.Attempts) >= n {
				return got
			}
		} else if status != http.StatusNotFound {
			t.Fatalf("GET /v1/events/%s = %d %s", id, status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/events/%s: %d attempts after %s, want %d (last answer %d %s)", id, len(got.Attempts), wait, n, status, body)
		}
		time.Sleep(20 * time.Millisecond) // polling another process's log
	}
}

func TestDeliveryLogAnswersWhatTheReceiverSaid(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		recv := httpsink.New(t, func(n int, _ *http.Request, w http.ResponseWriter) {
			if n == 1 {
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte("db down\x1b[31m"))
			}
		})
		config := backendConfig(backend) + `
listen: LISTEN
auth:
  admin_token: admin-secret
retry:
  schedule: [50ms]
subscriptions:
  - id: orders
    topic: order.created
    url: ` + recv.URL + `/hook
    secret: ` + testSecret + `
`
		p := startBridge(t, config)
		id := p.emit(t, "", `{"name": "order.created", "payload": {"n": 1}}`)[0]
		sent := recv.WaitFor(t, 2, wait)[1].Body

		check := func(p *proc) {
			t.Helper()
			got := eventAttempts(t, p, id, 2)
			if got.Event == nil || got.Event.ID != id || string(got.Event.Payload) != `{"n":1}` {
				t.Errorf("event %+v", got.Event)
			}
			if len(got.Attempts) != 2 {
				t.Fatalf("%d attempts, want 2: %+v", len(got.Attempts), got.Attempts)
			}
			ok, failed := got.Attempts[0], got.Attempts[1]
			if failed.Outcome != "failed" || failed.Status != 500 || failed.ResponseBody != "db down\x1b[31m" || failed.Attempt != 1 {
				t.Errorf("failed attempt %+v", failed)
			}
			if ok.Outcome != "delivered" || ok.Status != 200 || ok.Attempt != 2 || ok.SubscriptionID != "orders" {
				t.Errorf("delivered attempt %+v", ok)
			}
			if !verifySignature(testSecret, ok.RequestHeaders.Get("Webhook-Id"), ok.RequestHeaders.Get("Webhook-Timestamp"), sent, ok.RequestHeaders.Get("Webhook-Signature")) {
				t.Errorf("the logged request headers do not hold the signature sent: %v", ok.RequestHeaders)
			}
			status, body := p.do(t, http.MethodGet, "/v1/attempts?subscription_id=orders&outcome=failed&since=1h", "admin-secret", "")
			var page webhookhttp.AttemptPage
			if err := json.Unmarshal([]byte(body), &page); status != http.StatusOK || err != nil || len(page.Attempts) != 1 || page.Attempts[0].EventID != id {
				t.Errorf("GET /v1/attempts: %d %s", status, body)
			}

			lines := strings.Split(strings.TrimSpace(cli(t, "log", "--config", p.config, "--event", id, "--json")), "\n")
			if len(lines) != 2 || !strings.Contains(lines[1], `"status":500`) || !strings.Contains(lines[0], `"outcome":"delivered"`) {
				t.Errorf("log --json printed:\n%s", strings.Join(lines, "\n"))
			}
			table := cli(t, "log", "--config", p.config, "--subscription", "orders", "--since", "1h")
			if !strings.Contains(table, "OUTCOME") || !strings.Contains(table, "failed") || !strings.Contains(table, `db down\x1b[31m`) || strings.Contains(table, "\x1b") {
				t.Errorf("log printed:\n%s", table)
			}
		}
		check(p)
		_, metrics := p.do(t, http.MethodGet, "/metrics", "", "")
		if !strings.Contains(metrics, "webhook_bridge_delivery_log_attempts_stored 2") ||
			!strings.Contains(metrics, `webhook_bridge_delivery_log_attempts_total{result="written"} 2`) {
			t.Errorf("metrics lack the log's size:\n%s", grepLines(metrics, "delivery_log"))
		}
		if backend == "redis" {
			// Another process, after this one stopped, answers the same.
			p.stop(syscall.SIGTERM)
			check(startBridge(t, config))
		}
	})
}

func grepLines(s, part string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, part) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
