package main

import (
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/httpsink"
)

// TestRollingRestartOfTwoReplicasLosesNothing is a rolling update as
// Kubernetes makes one: two replicas on one Redis take events from a
// producer that posts to whichever answers and deliver them to a receiver
// that refuses the first attempt of every seventh request, so that
// retries wait in Redis; each replica in turn gets SIGTERM while it
// delivers and takes posts, and is started again. Every event a replica
// accepted is delivered, once, none is dead-lettered, each replica exits
// with status 0 and nothing stays pending in the group.
func TestRollingRestartOfTwoReplicasLosesNothing(t *testing.T) {
	rollingRestart(t, 0)
}

// TestRollingRestartBehindAServiceRefusesNoPost: the same, with
// shutdown_delay, and the producer posting as through a Service, only to
// replicas whose /readyz answers 200 as last seen by a watcher polling
// them (an endpoints controller): not one post is refused.
func TestRollingRestartBehindAServiceRefusesNoPost(t *testing.T) {
	if refused := rollingRestart(t, time.Second); refused > 0 {
		t.Errorf("%d posts refused during a rolling restart with shutdown_delay behind a Service, want 0", refused)
	}
}

// rollingRestart runs the rolling restart with shutdown_delay delay (when
// above 0, the producer posts as through a Service) and returns how many
// posts were refused.
func rollingRestart(t *testing.T, delay time.Duration) int64 {
	var mu sync.Mutex
	delivered := map[string]int{} // webhook-id → 2xx answers
	recv := httpsink.New(t, func(n int, r *http.Request, w http.ResponseWriter) {
		if n%7 == 0 && r.Header.Get("Webhook-Attempt") == "1" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		delivered[r.Header.Get("Webhook-Id")]++
		mu.Unlock()
	})
	cfg := backendConfig("redis")
	config := func(consumer string) string {
		return strings.Replace(cfg, "consumer: c1", "consumer: "+consumer, 1) + `
listen: LISTEN
shutdown_timeout: 20s
shutdown_delay: ` + delay.String() + `
retry:
  schedule: [100ms, 300ms]
  max_attempts: 10
subscriptions:
  - id: s
    topic: order.created
    url: ` + recv.URL + `
`
	}
	replicas := [2]atomic.Pointer[proc]{}
	replicas[0].Store(startBridge(t, config("replica-a")))
	replicas[1].Store(startBridge(t, config("replica-b")))

	// Behind a Service, a replica is sent posts while its /readyz answered
	// 200 when last looked at, every 25 ms.
	service := delay > 0
	var inService [2]atomic.Bool
	stop := make(chan struct{})
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		client := &http.Client{Timeout: 200 * time.Millisecond}
		for {
			for i := range replicas {
				resp, err := client.Get("http://" + replicas[i].Load().addr + "/readyz")
				inService[i].Store(err == nil && resp.StatusCode == http.StatusOK)
				if err == nil {
					resp.Body.Close()
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(25 * time.Millisecond): // the watcher's period
			}
		}
	}()

	// The producer posts batches of 5 events with ids of its own, to the
	// replicas in turn (behind a Service: to those in service); a post
	// that fails (the replica is stopping, or not listening yet) is
	// counted and goes again, same ids, to the other one.
	var accepted sync.Map
	var posted, refused atomic.Int64
	producerDone := make(chan error, 1)
	go func() {
		client := &http.Client{Timeout: 5 * time.Second}
		for batch := 0; ; batch++ {
			select {
			case <-stop:
				producerDone <- nil
				return
			default:
			}
			var ids []string
			var events []string
			for i := range 5 {
				id := fmt.Sprintf("roll-%d-%d", batch, i)
				ids = append(ids, id)
				events = append(events, fmt.Sprintf(`{"id": %q, "name": "order.created", "payload": {"n": %d}}`, id, batch*5+i))
			}
			body := "[" + strings.Join(events, ",") + "]"
			ok := false
			for try := 0; try < 200 && !ok; try++ {
				i := (batch + try) % 2
				if service && !inService[i].Load() {
					if try%2 == 1 {
						time.Sleep(20 * time.Millisecond) // neither in service: wait for one
					}
					continue
				}
				resp, err := client.Post("http://"+replicas[i].Load().addr+"/v1/events", "application/json", strings.NewReader(body))
				if err == nil {
					ok = resp.StatusCode == http.StatusAccepted
					resp.Body.Close()
				}
				if !ok {
					refused.Add(1)
				}
				if !ok && try%2 == 1 {
					time.Sleep(20 * time.Millisecond) // a producer's pause once both refused
				}
			}
			if !ok {
				producerDone <- errors.New("a batch was refused by both replicas for 2 s")
				return
			}
			for _, id := range ids {
				accepted.Store(id, true)
			}
			posted.Add(5)
		}
	}()
	waitPosted := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(wait)
		for posted.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("the producer got %d events accepted, want %d", posted.Load(), n)
			}
			time.Sleep(10 * time.Millisecond) // polling the producer's progress
		}
	}

	waitPosted(300)
	for i, name := range []string{"replica-a", "replica-b"} {
		old := replicas[i].Load()
		old.stop(syscall.SIGTERM)
		if code := old.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(old.logs(), "webhook-bridge: stopped") {
			t.Fatalf("%s exited with status %d:\n%s", name, code, old.logs())
		}
		if strings.Contains(old.logs(), "abandoned") {
			t.Errorf("%s abandoned deliveries:\n%s", name, old.logs())
		}
		replicas[i].Store(runBridge(t, old.config, old.addr))
		waitPosted(posted.Load() + 300)
	}
	close(stop)
	<-watcherDone
	if err := <-producerDone; err != nil {
		t.Fatal(err)
	}

	var ids []string
	accepted.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
	missing := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, id := range ids {
			if delivered[id] == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	// The receiver's refusals may line up as 5 failures in a row when
	// answers interleave, opening the endpoint's circuit: deliveries then
	// wait its 30 s cooldown in Redis. Hence the long bound; a run that
	// opens no circuit is done in seconds.
	deadline := time.Now().Add(75 * time.Second)
	for len(missing()) > 0 {
		if time.Now().After(deadline) {
			m := missing()
			host, port, _ := strings.Cut(redisServer.Addr, ":")
			stream := strings.TrimPrefix(strings.Split(cfg, "\n")[2], "stream: ")
			for _, args := range [][]string{{"XPENDING", stream, "webhook-bridge", "-", "+", "20"}, {"XINFO", "CONSUMERS", stream, "webhook-bridge"}, {"ZCARD", "{" + stream + "}:webhook:retries:delayed"}} {
				out, _ := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
				t.Logf("%v:\n%s", args, out)
			}
			t.Fatalf("%d of %d accepted events never delivered, e.g. %v", len(m), len(ids), m[:min(len(m), 10)])
		}
		time.Sleep(20 * time.Millisecond) // polling the receiver's count
	}
	mu.Lock()
	twice := 0
	for _, id := range ids {
		if delivered[id] > 1 {
			twice++
		}
	}
	mu.Unlock()
	if twice > 0 {
		t.Errorf("%d of %d events delivered more than once across a graceful rolling restart", twice, len(ids))
	}
	if out := cli(t, "dlq", "list", "--config", replicas[0].Load().config); strings.Contains(out, "roll-") {
		t.Errorf("dead letters after the rolling restart:\n%s", out)
	}
	t.Logf("%d events accepted and delivered across two restarts, %d requests to the receiver, %d posts refused", len(ids), len(recv.Hits()), refused.Load())
	return refused.Load()
}

// TestShutdownDelayKeepsTakingEvents: with shutdown_delay, a SIGTERMed
// bridge answers 503 on /readyz at once but goes on taking and
// delivering events until the delay is over, then stops cleanly.
func TestShutdownDelayKeepsTakingEvents(t *testing.T) {
	recv := httpsink.New(t, nil)
	p := startBridge(t, backendConfig("redis")+`
listen: LISTEN
shutdown_delay: 3s
subscriptions:
  - id: s
    topic: t
    url: `+recv.URL+`
`)
	if status, body := p.do(t, http.MethodGet, "/readyz", "", ""); status != http.StatusOK {
		t.Fatalf("GET /readyz before the signal = %d %s", status, body)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(wait)
	for {
		status, body := p.do(t, http.MethodGet, "/readyz", "", "")
		if status == http.StatusServiceUnavailable && strings.Contains(body, "shutting down") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz after SIGTERM = %d %s, want 503", status, body)
		}
		time.Sleep(5 * time.Millisecond) // polling another process
	}
	id := p.emit(t, "", `{"name": "t", "payload": {"during": "the delay"}}`)[0]
	if h := recv.WaitFor(t, 1, wait)[0]; h.Header.Get("Webhook-Id") != id {
		t.Errorf("delivered %s, want %s", h.Header.Get("Webhook-Id"), id)
	}
	select {
	case <-p.exited:
	case <-time.After(wait):
		t.Fatal("the bridge did not stop after shutdown_delay")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(p.logs(), "stopping after shutdown_delay") || !strings.Contains(p.logs(), "webhook-bridge: stopped") {
		t.Errorf("exit status %d; log:\n%s", code, p.logs())
	}
}
