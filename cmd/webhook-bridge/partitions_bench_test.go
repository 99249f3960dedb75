package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/redistest"
)

// BenchmarkBridgePartitions measures deliveries a second through the
// bridge, in process, on a local Redis Cluster of three masters, with the
// stream in 1, 3 and 6 partitions: events are posted to POST /v1/events
// in batches of 100 by four clients while the bridge delivers them to a
// local receiver (concurrency and per_endpoint 64); the time runs from
// the first post to the last delivery. Everything shares the machine's
// cores. The partitions=N figures are taken with the delivery log off;
// partitions=N,delivery_log with it on (every attempt recorded in Redis,
// in the base stream's slot). A figure:
//
//	go test -run '^$' -bench BridgePartitions -benchtime 4s ./cmd/webhook-bridge
func BenchmarkBridgePartitions(b *testing.B) {
	c, err := redistest.StartCluster(b.TempDir(), 3)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Kill()
	for _, n := range []int{1, 3, 6} {
		b.Run(fmt.Sprintf("partitions=%d", n), func(b *testing.B) { benchPartitions(b, c.Addrs(), n, false) })
	}
	// What recording every attempt costs (the sidecar's default).
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("partitions=%d,delivery_log", n), func(b *testing.B) { benchPartitions(b, c.Addrs(), n, true) })
	}
}

// benchPartitions runs one figure; without logged, the delivery log is
// off, so that the figure is of the partitions alone.
func benchPartitions(b *testing.B, addrs []string, partitions int, logged bool) {
	var got atomic.Int64
	done := make(chan struct{})
	total := int64(b.N)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		if got.Add(1) == total {
			close(done)
		}
	}))
	defer sink.Close()
	cfg, err := parseConfig([]byte(fmt.Sprintf(`
listen: 127.0.0.1:0
redis:
  cluster_url: redis://%s?addr=%s&addr=%s
stream: bench-%d-%d
partitions: %d
concurrency: 64
per_endpoint: 64
delivery_log: {disabled: %t}
subscriptions:
  - {id: sink, topic: bench, url: %q}
`, addrs[0], addrs[1], addrs[2], time.Now().UnixNano(), streamSeq.Add(1), partitions, !logged, sink.URL)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- serve(ctx, cfg, slog.New(slog.DiscardHandler), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-served:
		b.Fatal(err)
	}
	defer func() { cancel(); <-served }()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	const batch, posters = 100, 4
	batches := make(chan int, posters)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range posters {
		wg.Go(func() {
			for first := range batches {
				var evs []string
				for i := first; i < min(first+batch, b.N); i++ {
					evs = append(evs, fmt.Sprintf(`{"name":"bench","id":"b-%d","payload":{"n":%d}}`, i, i))
				}
				resp, err := client.Post("http://"+addr+"/v1/events", "application/json", strings.NewReader("["+strings.Join(evs, ",")+"]"))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Errorf("POST /v1/events = %s", resp.Status)
					return
				}
			}
		})
	}
	for first := 0; first < b.N; first += batch {
		batches <- first
	}
	close(batches)
	wg.Wait()
	select {
	case <-done:
	case <-time.After(time.Minute + time.Duration(b.N)*time.Millisecond):
		b.Fatalf("%d of %d delivered", got.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
}
