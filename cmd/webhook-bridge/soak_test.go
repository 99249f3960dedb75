package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var full = flag.Bool("full", false, "run the soak at full size (1M events; see docs/reliability.md)")

// sample is the bridge's state at one moment of the soak.
type sample struct {
	delivered          int64
	rssMB              float64
	goroutines         int
	streamLen, pending int64
}

// TestSoak pushes events through the bridge binary on Redis to a local
// sink at a fixed concurrency and samples memory, goroutines, stream
// length and pending entries: they must stay flat, and every event must
// arrive. 50k events in CI; 1M with -full.
func TestSoak(t *testing.T) {
	n := 50000
	if *full {
		n = 1000000
	}
	var delivered atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()
	cfg := backendConfig("redis")
	stream := strings.TrimPrefix(strings.Split(cfg, "\n")[2], "stream: ")
	p := startBridge(t, cfg+`
listen: LISTEN
stream_max_len: 20000
concurrency: 64
subscriptions:
  - id: sink
    topic: "*"
    url: `+sink.URL+`
    secret: `+testSecret+`
`)
	host, port, _ := strings.Cut(redisServer.Addr, ":")
	redisInt := func(args ...string) int64 {
		out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).Output()
		if err != nil {
			t.Fatalf("redis-cli %v: %v", args, err)
		}
		v, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
		return v
	}
	pendingCount := func() int64 {
		out, _ := exec.Command("redis-cli", "-h", host, "-p", port, "XPENDING", stream, "webhook-bridge").Output()
		v, _ := strconv.ParseInt(strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0], 10, 64)
		return v
	}
	take := func() sample {
		s := sample{delivered: delivered.Load(), streamLen: redisInt("XLEN", stream), pending: pendingCount()}
		_, metrics := p.do(t, http.MethodGet, "/metrics", "", "")
		sc := bufio.NewScanner(strings.NewReader(metrics))
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				s.rssMB = f / (1 << 20)
			}
			if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
				s.goroutines, _ = strconv.Atoi(v)
			}
		}
		return s
	}

	var samples []sample
	done := make(chan struct{})
	go func() {
		defer close(done)
		batch := make([]string, 500)
		client := &http.Client{}
		for sent := 0; sent < n; sent += len(batch) {
			for i := range batch {
				batch[i] = fmt.Sprintf(`{"name":"soak","payload":{"n":%d,"pad":"%s"}}`, sent+i, strings.Repeat("x", 200))
			}
			resp, err := client.Post("http://"+p.addr+"/v1/events", "application/json", strings.NewReader("["+strings.Join(batch, ",")+"]"))
			if err != nil {
				t.Errorf("posting: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			// A fixed pace: ingress at most as fast as the sink drains, and
			// the backlog well under stream_max_len, which would otherwise
			// trim entries before the group reads them.
			for int64(sent)-delivered.Load() > 5000 {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	lastCount, lastChange := int64(-1), time.Now()
	for delivered.Load() < int64(n) {
		<-tick.C
		samples = append(samples, take())
		if c := delivered.Load(); c != lastCount {
			lastCount, lastChange = c, time.Now()
		} else if time.Since(lastChange) > 30*time.Second {
			t.Fatalf("deliveries stalled at %d of %d: %+v", c, n, samples[len(samples)-1])
		}
	}
	<-done
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for pendingCount() != 0 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond) // the last acknowledgements
	}
	samples = append(samples, take())

	last := samples[len(samples)-1]
	warm := samples[len(samples)/4] // after the first quarter
	maxLen := slices.MaxFunc(samples, func(a, b sample) int { return int(a.streamLen - b.streamLen) }).streamLen
	maxPending := slices.MaxFunc(samples, func(a, b sample) int { return int(a.pending - b.pending) }).pending
	maxRSS := slices.MaxFunc(samples, func(a, b sample) int { return int(a.rssMB - b.rssMB) }).rssMB
	t.Logf("%d events in %d samples: RSS %.0f MB after the first quarter, %.0f MB at the end, %.0f MB at most; goroutines %d then %d; stream length at most %d; pending at most %d, %d at the end",
		n, len(samples), warm.rssMB, last.rssMB, maxRSS, warm.goroutines, last.goroutines, maxLen, maxPending, last.pending)
	if last.delivered != int64(n) {
		t.Errorf("%d deliveries, want %d", last.delivered, n)
	}
	if last.pending != 0 {
		t.Errorf("%d entries still pending at the end", last.pending)
	}
	if maxLen > 20000*3/2+1000 {
		t.Errorf("the stream grew to %d entries with stream_max_len 20000", maxLen)
	}
	if last.goroutines > warm.goroutines+50 {
		t.Errorf("goroutines grew from %d to %d", warm.goroutines, last.goroutines)
	}
	if last.rssMB > 2*warm.rssMB+32 {
		t.Errorf("resident memory grew from %.0f MB to %.0f MB", warm.rssMB, last.rssMB)
	}
}
