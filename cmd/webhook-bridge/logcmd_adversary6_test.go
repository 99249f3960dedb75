package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// TestAdv6LogAllOverTheAdminAPIReadsFullPages: `log --limit 0` (all) on
// the memory backend prints every attempt once, asking the bridge for
// full pages, not for one attempt a request.
func TestAdv6LogAllOverTheAdminAPIReadsFullPages(t *testing.T) {
	const n = 2500
	var mu sync.Mutex
	var limits []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/attempts" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		q := r.URL.Query()
		limit, _ := strconv.Atoi(q.Get("limit"))
		from := n
		if c := q.Get("cursor"); c != "" {
			from, _ = strconv.Atoi(strings.TrimPrefix(c, "1-"))
		}
		mu.Lock()
		limits = append(limits, q.Get("limit"))
		mu.Unlock()
		var page webhookhttp.AttemptPage
		page.Attempts = []webhookhttp.AttemptView{}
		i := from - 1
		for ; i >= 0 && len(page.Attempts) < limit; i-- {
			page.Attempts = append(page.Attempts, webhookhttp.AttemptView{ID: fmt.Sprintf("1-%d", i), EventID: fmt.Sprint("e", i), SubscriptionID: "s", Outcome: "delivered"})
		}
		if i >= 0 {
			page.Next = fmt.Sprintf("1-%d", i+1)
		}
		_ = json.NewEncoder(w).Encode(page)
	}))
	t.Cleanup(api.Close)
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	config := "listen: " + strings.TrimPrefix(api.URL, "http://") + "\nauth:\n  admin_token: tok\n"
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runLog([]string{"--config", path, "--limit", "0", "--json"}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		var v webhookhttp.AttemptView
		if err := json.Unmarshal([]byte(l), &v); err != nil || seen[v.ID] {
			t.Fatalf("line %q (%v, seen before: %v)", l, err, seen[v.ID])
		}
		seen[v.ID] = true
	}
	if len(seen) != n {
		t.Errorf("printed %d attempts, want %d", len(seen), n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(limits) > 3 {
		t.Errorf("%d requests for %d attempts (limits %v...): want full pages of 1000", len(limits), n, limits[:3])
	}
}

// TestAdv6LogAfterSIGKILL: a bridge on Redis is killed while it delivers;
// `log` then shows the attempts recorded before, each once, each one a
// receiver saw, and at least those the log had shown before the kill.
func TestAdv6LogAfterSIGKILL(t *testing.T) {
	recv := httpsink.New(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n%4 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	config := backendConfig("redis") + `
listen: LISTEN
auth:
  admin_token: admin-secret
retry:
  schedule: [20ms, 20ms, 20ms, 20ms, 20ms]
subscriptions:
  - id: s
    topic: t
    url: ` + recv.URL + `
    headers:
      Authorization: Bearer hdr-s3cret-value
    secret: ` + testSecret + `
`
	p := startBridge(t, config)
	batch := `[` + strings.TrimSuffix(strings.Repeat(`{"name": "t", "payload": {}},`, 50), ",") + `]`
	p.emit(t, "", batch)
	// Wait until the log shows the first 50 delivered (every fourth
	// request fails, and is retried).
	deadline := time.Now().Add(wait)
	var before []string
	for {
		before = strings.FieldsFunc(cli(t, "log", "--config", p.config, "--outcome", "delivered", "--limit", "0", "--json"),
			func(r rune) bool { return r == '\n' })
		if len(before) >= 50 {
			break
		}
		if time.Now().After(deadline) {
			all := cli(t, "log", "--config", p.config, "--limit", "0")
			t.Fatalf("the log shows %d delivered attempts, want 50; the receiver saw %d requests; the log:\n%s", len(before), len(recv.Hits()), all)
		}
		time.Sleep(20 * time.Millisecond) // polling another process's log
	}
	p.emit(t, "", batch)
	p.emit(t, "", batch)
	p.stop(syscall.SIGKILL)

	out := cli(t, "log", "--config", p.config, "--limit", "0", "--json")
	if strings.Contains(out, "hdr-s3cret-value") || strings.Contains(out, strings.TrimPrefix(testSecret, "whsec_")) {
		t.Errorf("log prints a credential:\n%s", out)
	}
	saw := map[string]int{}
	for _, h := range recv.Hits() {
		saw[h.Header.Get("Webhook-Id")+"/"+h.Header.Get("Webhook-Attempt")]++
	}
	got := map[string]bool{}
	delivered := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var v webhookhttp.AttemptView
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if v.Outcome == "delivered" {
			delivered++
		}
		if v.Attempt == 0 {
			continue
		}
		k := v.RequestHeaders.Get("Webhook-Id") + "/" + strconv.Itoa(v.Attempt)
		if got[k] || saw[k] != 1 {
			t.Errorf("attempt %s: logged twice: %v; the receiver saw it %d times", k, got[k], saw[k])
		}
		got[k] = true
	}
	if delivered < len(before) {
		t.Errorf("after the kill, the log shows %d delivered attempts, it had shown %d", delivered, len(before))
	}
}

// TestAdv6LogAfterSIGTERMHoldsEveryAttempt: a bridge on Redis stopped
// with SIGTERM mid-delivery drains its delivery log: `log` then shows
// every attempt a receiver saw, each once, and none it did not see.
func TestAdv6LogAfterSIGTERMHoldsEveryAttempt(t *testing.T) {
	recv := httpsink.New(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n%3 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	config := backendConfig("redis") + `
listen: LISTEN
auth:
  admin_token: admin-secret
retry:
  schedule: [10ms, 10ms, 10ms, 10ms]
subscriptions:
  - id: s
    topic: t
    url: ` + recv.URL + `
`
	p := startBridge(t, config)
	batch := `[` + strings.TrimSuffix(strings.Repeat(`{"name": "t", "payload": {}},`, 200), ",") + `]`
	p.emit(t, "", batch)
	p.emit(t, "", batch)
	recv.WaitFor(t, 100, wait)
	p.stop(syscall.SIGTERM)

	saw := map[string]int{}
	for _, h := range recv.Hits() {
		saw[h.Header.Get("Webhook-Id")+"/"+h.Header.Get("Webhook-Attempt")]++
	}
	out := cli(t, "log", "--config", p.config, "--limit", "0", "--json")
	got := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var v webhookhttp.AttemptView
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if v.Attempt == 0 {
			continue
		}
		k := v.RequestHeaders.Get("Webhook-Id") + "/" + strconv.Itoa(v.Attempt)
		if got[k] || saw[k] != 1 {
			t.Errorf("attempt %s: logged twice: %v; the receiver saw it %d times", k, got[k], saw[k])
		}
		got[k] = true
	}
	for k, n := range saw {
		if !got[k] {
			t.Errorf("attempt %s reached the receiver (%d times) but is not in the log", k, n)
		}
	}
	t.Logf("%d attempts seen and logged", len(got))
}
