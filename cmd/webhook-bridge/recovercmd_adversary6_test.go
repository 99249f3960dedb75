package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// run runs the binary and returns its output, its standard error and
// whether it succeeded.
func adv6Run(args ...string) (string, string, bool) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err == nil
}

// TestAdv6RecoverCommand: events dead-lettered by a 410 are delivered
// again by `recover`, each once, their dead letters removed; a second
// recover schedules nothing; a disabled or unknown subscription is
// refused with one clear line; on both backends.
func TestAdv6RecoverCommand(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		var gone atomic.Bool
		gone.Store(true)
		recv := httpsink.New(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
			if gone.Load() {
				w.WriteHeader(http.StatusGone)
			}
		})
		config := backendConfig(backend) + `
listen: LISTEN
auth:
  admin_token: admin-secret
subscriptions:
  - id: s
    topic: t
    url: ` + recv.URL + `
`
		p := startBridge(t, config)
		ids := p.emit(t, "", `[{"name": "t", "payload": {"n": 1}}, {"name": "t", "payload": {"n": 2}}, {"name": "t", "payload": {"n": 3}}]`)
		deadline := time.Now().Add(wait)
		for {
			status, body := p.do(t, http.MethodGet, "/v1/dlq", "admin-secret", "")
			var page webhookhttp.DeadLetterPage
			if err := json.Unmarshal([]byte(body), &page); status == http.StatusOK && err == nil && len(page.DeadLetters) == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET /v1/dlq: %d %s, want 3 dead letters", status, body)
			}
			time.Sleep(20 * time.Millisecond) // polling another process
		}
		// The last dead letter is recorded in the log a moment after the store.
		for {
			status, body := p.do(t, http.MethodGet, "/v1/attempts?outcome=dead_lettered", "admin-secret", "")
			var page webhookhttp.AttemptPage
			if err := json.Unmarshal([]byte(body), &page); status == http.StatusOK && err == nil && len(page.Attempts) == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET /v1/attempts: %d %s, want 3 dead-lettered attempts", status, body)
			}
			time.Sleep(20 * time.Millisecond) // polling another process
		}
		gone.Store(false)

		for _, c := range []struct{ args, want string }{
			{"--subscription nope --since 1h", "nope"},
			{"--subscription s --since 1h --until 2h", "not after"},
			{"--subscription s", "usage"},
		} {
			_, stderr, ok := adv6Run(append([]string{"recover", "--config", p.config}, strings.Fields(c.args)...)...)
			if ok || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("recover %s: ok %v, stderr %q; want one line about %q", c.args, ok, stderr, c.want)
			}
		}
		out := cli(t, "recover", "--config", p.config, "--subscription", "s", "--since", "1h")
		if !strings.Contains(out, "scheduled 3 event(s) again; 0 still being retried; 0 past") {
			t.Errorf("recover printed %q", out)
		}
		hits := recv.WaitFor(t, 6, wait)
		seen := map[string]int{}
		for _, h := range hits[3:] {
			seen[h.Header.Get("Webhook-Id")]++
		}
		for _, id := range ids {
			if seen[id] != 1 {
				t.Errorf("event %s delivered again %d times, want once (%v)", id, seen[id], seen)
			}
		}
		if _, body := p.do(t, http.MethodGet, "/v1/dlq", "admin-secret", ""); strings.Contains(body, ids[0]) {
			t.Errorf("the recovered dead letters are still stored: %s", body)
		}
		out = cli(t, "recover", "--config", p.config, "--subscription", "s", "--since", "1h")
		if !strings.Contains(out, "scheduled 0 event(s)") {
			t.Errorf("a second recover printed %q", out)
		}
		if status, body := p.post(t, "/v1/subscriptions/s/disable", "admin-secret", `{"reason": "test"}`); status != http.StatusOK {
			t.Fatalf("disable: %d %s", status, body)
		}
		_, stderr, ok := adv6Run("recover", "--config", p.config, "--subscription", "s", "--since", "1h")
		if ok || !strings.Contains(stderr, "disabled") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("recovering a disabled subscription: ok %v, %q", ok, stderr)
		}
		if got := len(recv.Hits()); got != 6 {
			t.Errorf("the receiver saw %d requests, want 6", got)
		}
	})
}
