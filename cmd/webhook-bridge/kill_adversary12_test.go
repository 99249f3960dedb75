package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/httpsink"
)

// TestAdv12SIGKILLDuringTheShutdownLosesNothing: a producer posts
// while the bridge (three partitions, retries waiting in Redis) gets
// SIGTERM, takes events during shutdown_delay, and is killed (SIGKILL)
// partway. Started again under the same consumer name, it delivers every
// event it accepted at least once, and nothing stays pending once the
// lease of the killed process lapsed (10s).
func TestAdv12SIGKILLDuringTheShutdownLosesNothing(t *testing.T) {
	for _, killAfter := range adv12KillTimings {
		t.Run(killAfter.String(), func(t *testing.T) {
			var mu sync.Mutex
			delivered := map[string]bool{}
			recv := httpsink.New(t, func(n int, r *http.Request, w http.ResponseWriter) {
				if n%5 == 0 && r.Header.Get("Webhook-Attempt") == "1" {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				time.Sleep(5 * time.Millisecond) // a receiver that takes a little time
				mu.Lock()
				delivered[r.Header.Get("Webhook-Id")] = true
				mu.Unlock()
			})
			config := backendConfig("redis") + `listen: LISTEN
partitions: 3
shutdown_delay: 600ms
shutdown_timeout: 5s
retry:
  schedule: [200ms]
  max_attempts: 20
subscriptions:
  - id: s
    topic: t
    url: ` + recv.URL + `
`
			p := startBridge(t, config)
			tag := fmt.Sprintf("%d-", time.Now().UnixNano())
			var accepted []string
			post := func(i int) {
				resp, err := http.Post("http://"+p.addr+"/v1/events", "application/json", strings.NewReader(fmt.Sprintf(`[{"name": "t", "id": "%sk%d-a", "payload": {}}, {"name": "t", "id": "%sk%d-b", "payload": {}}]`, tag, i, tag, i)))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					accepted = append(accepted, fmt.Sprintf("%sk%d-a", tag, i), fmt.Sprintf("%sk%d-b", tag, i))
				}
			}
			i := 0
			for ; i < 20; i++ {
				post(i)
			}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			kill := time.Now().Add(killAfter)
			for ; time.Now().Before(kill); i++ {
				post(i)
			}
			_ = p.cmd.Process.Kill()
			<-p.exited
			if len(accepted) == 0 {
				t.Fatal("nothing accepted")
			}
			q := runBridge(t, p.config, p.addr)
			defer q.stop(syscall.SIGTERM)
			deadline := time.Now().Add(20 * time.Second)
			for {
				mu.Lock()
				var missing []string
				for _, id := range accepted {
					if !delivered[id] {
						missing = append(missing, id)
					}
				}
				mu.Unlock()
				if len(missing) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("accepted %d events (posted %d), %d never delivered: %v; log of the killed process:\n%s\nlog of the next:\n%s", len(accepted), 2*i, len(missing), missing, p.logs(), q.logs())
				}
				time.Sleep(20 * time.Millisecond) // polling another process
			}
			cfg, err := loadConfig(p.config)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range cfg.readStreams() {
				waitNoPending(t, s, 15*time.Second)
			}
		})
	}
}

// adv12KillTimings: as the shutdown begins, just after shutdown_delay
// (150ms, during the delay, and 900ms, in the shutdown, held as well; each
// timing takes about 12s, most of it the lease of the killed process).
var adv12KillTimings = []time.Duration{650 * time.Millisecond}
