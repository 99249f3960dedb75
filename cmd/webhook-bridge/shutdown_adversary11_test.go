package main

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/httpsink"
)

// TestMemoryShutdownDeliversTheBacklog: in memory, events accepted (202)
// before SIGTERM and during shutdown_delay that wait behind a slow
// delivery are delivered before the bridge exits with status 0, since
// they are nowhere else; the bridge does not drop them and say
// "stopped".
func TestMemoryShutdownDeliversTheBacklog(t *testing.T) {
	const slow = 300 * time.Millisecond
	// A slow receiver: each delivery takes slow, so that the others wait
	// in the backend's queue.
	recv := httpsink.New(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		time.Sleep(slow)
		w.WriteHeader(http.StatusOK)
	})
	p := startBridge(t, backendConfig("memory")+`
listen: LISTEN
concurrency: 1
shutdown_delay: 500ms
shutdown_timeout: 20s
subscriptions:
  - id: s
    topic: t
    url: `+recv.URL+`
`)
	var want []string
	for i := range 4 {
		want = append(want, p.emit(t, "", fmt.Sprintf(`{"name": "t", "payload": {"n": %d}}`, i))...)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(wait)
	for {
		status, _ := p.do(t, http.MethodGet, "/readyz", "", "")
		if status == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz after SIGTERM = %d, want 503", status)
		}
		time.Sleep(5 * time.Millisecond) // polling another process
	}
	want = append(want, p.emit(t, "", `{"name": "t", "payload": {"during": "the delay"}}`)...)
	select {
	case <-p.exited:
	case <-time.After(wait + 5*slow):
		t.Fatal("the bridge did not stop")
	}
	got := map[string]bool{}
	for _, h := range recv.Hits() {
		got[h.Header.Get("Webhook-Id")] = true
	}
	var missing []string
	for _, id := range want {
		if !got[id] {
			missing = append(missing, id)
		}
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || len(missing) > 0 {
		t.Errorf("exit status %d; accepted and never delivered: %s; log:\n%s", code, strings.Join(missing, " "), p.logs())
	}
}
