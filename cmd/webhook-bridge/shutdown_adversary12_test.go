package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/faultproxy"
	"github.com/switchyard-go/switchyard/internal/httpsink"
)

// TestAdv12SIGTERMWithRedisHungExitsInTime: Redis stops answering (a
// black hole: requests are swallowed, nothing is answered, as with a
// network partition) while a delivery is in flight, and SIGTERM comes.
// The delivery finishes; its acknowledgement and attempt cannot be
// written. The process still exits within shutdown_timeout + 5 s, and
// once Redis is back a replica under the same consumer name takes the
// unacknowledged event again (within the 10s lease, which the stopped
// process could not give up), so that nothing stays pending.
func TestAdv12SIGTERMWithRedisHungExitsInTime(t *testing.T) {
	proxy, err := faultproxy.New(redisServer.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	release := make(chan struct{})
	recv := httpsink.New(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 2 {
			<-release
		}
		w.WriteHeader(http.StatusOK)
	})
	stream := fmt.Sprintf("adv12-hung-%d", time.Now().UnixNano())
	config := fmt.Sprintf(`redis:
  url: redis://%s/0
stream: %s
consumer: c1
listen: LISTEN
shutdown_timeout: 2s
retry:
  schedule: [100ms]
subscriptions:
  - id: s
    topic: t
    url: %s
`, proxy.Addr(), stream, recv.URL)
	p := startBridge(t, config)
	warm := p.emit(t, "", `{"name": "t", "payload": {"n": 0}}`)
	recv.WaitFor(t, 1, wait)
	waitNoPending(t, stream, wait)
	ids := p.emit(t, "", `{"name": "t", "payload": {"n": 1}}`)
	recv.WaitFor(t, 2, wait)
	proxy.Blackhole(time.Hour)
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	close(release)
	const bound = 2*time.Second + 5*time.Second
	select {
	case <-p.exited:
	case <-time.After(bound + 3*time.Second):
		t.Fatalf("the bridge had not exited %s after SIGTERM (bound %s); log:\n%s", time.Since(start), bound, p.logs())
	}
	if took := time.Since(start); took > bound {
		t.Errorf("exit took %s after SIGTERM, above the documented bound %s; log:\n%s", took, bound, p.logs())
	}
	// The delivery was done well before the timeout: what was left was
	// its acknowledgement, which Redis did not take. Saying deliveries in
	// flight were abandoned would send an operator after the receiver.
	if strings.Contains(p.logs(), "deliveries in flight abandoned") {
		t.Errorf("the bridge says it abandoned deliveries in flight, none being in flight; log:\n%s", p.logs())
	}
	// Redis back: the same consumer name again, straight to Redis.
	q := startBridge(t, strings.Replace(config, proxy.Addr(), redisServer.Addr, 1))
	defer q.stop(syscall.SIGTERM)
	if got := recv.Hits(); len(got) < 2 || got[0].Header.Get("Webhook-Id") != warm[0] || got[1].Header.Get("Webhook-Id") != ids[0] {
		t.Fatalf("accepted %v, delivered %d requests", ids, len(got))
	}
	waitNoPending(t, stream, 15*time.Second)
}

// waitNoPending polls XPENDING of the bridge's group on stream until
// nothing is pending, or fails the test after limit.
func waitNoPending(t *testing.T, stream string, limit time.Duration) {
	t.Helper()
	host, port, _ := strings.Cut(redisServer.Addr, ":")
	deadline := time.Now().Add(limit)
	for {
		out, err := exec.Command("redis-cli", "-h", host, "-p", port, "XPENDING", stream, "webhook-bridge").Output()
		first, _, _ := strings.Cut(string(out), "\n")
		if err == nil && strings.TrimSpace(first) == "0" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("XPENDING %s still %q after %s", stream, out, limit)
		}
		time.Sleep(50 * time.Millisecond) // polling another process
	}
}

// TestAdv12SIGTERMWithRedisHungAndNothingInFlight: Redis stops answering
// (a black hole) while the bridge is idle, every delivery done and
// acknowledged, and SIGTERM comes. Nothing is in flight and nothing is
// left to acknowledge: the bridge exits with status 0, without claiming
// it abandoned deliveries, within shutdown_timeout + 5 s (the documented
// bound), on one stream and on three partitions.
func TestAdv12SIGTERMWithRedisHungAndNothingInFlight(t *testing.T) {
	for name, extra := range map[string]string{"one stream": "", "partitions": "partitions: 3\n"} {
		t.Run(name, func(t *testing.T) {
			proxy, err := faultproxy.New(redisServer.Addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = proxy.Close() })
			recv := httpsink.New(t, nil)
			stream := fmt.Sprintf("adv12-idle-%d", time.Now().UnixNano())
			p := startBridge(t, fmt.Sprintf(`redis:
  url: redis://%s/0
stream: %s
consumer: c1
listen: LISTEN
shutdown_timeout: 3s
%ssubscriptions:
  - id: s
    topic: t
    url: %s
`, proxy.Addr(), stream, extra, recv.URL))
			p.emit(t, "", `{"name": "t", "payload": {"n": 0}}`)
			recv.WaitFor(t, 1, wait)
			cfg, err := loadConfig(p.config)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range cfg.readStreams() {
				waitNoPending(t, s, wait) // acknowledged: nothing left to write
			}
			proxy.Blackhole(time.Hour)
			start := time.Now()
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			const bound = 3*time.Second + 5*time.Second
			select {
			case <-p.exited:
			case <-time.After(bound + 5*time.Second):
				t.Fatalf("the bridge had not exited %s after SIGTERM (bound %s); log:\n%s", time.Since(start), bound, p.logs())
			}
			took := time.Since(start)
			if code := p.cmd.ProcessState.ExitCode(); code != 0 || strings.Contains(p.logs(), "abandoned") || took > bound {
				t.Errorf("exit %d after %s (bound %s) with nothing in flight; log:\n%s", code, took, bound, p.logs())
			}
		})
	}
}
