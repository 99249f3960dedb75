package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkIngressLatency posts one event per millisecond (1k events/s)
// to POST /v1/events and measures the time until the sink receives its
// delivery, in process, on each backend. Run it with a count of events:
//
//	go test -run '^$' -bench IngressLatency -benchtime 5000x ./cmd/webhook-bridge
func BenchmarkIngressLatency(b *testing.B) {
	for _, backend := range []string{"memory", "redis"} {
		b.Run(backend, func(b *testing.B) { benchLatency(b, backend) })
	}
}

func benchLatency(b *testing.B, backend string) {
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []time.Duration
	got := make(chan struct{}, b.N)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		now := time.Now()
		mu.Lock()
		if t, ok := sent[r.Header.Get("Webhook-Id")]; ok {
			lat = append(lat, now.Sub(t))
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		got <- struct{}{}
	}))
	defer sink.Close()

	cfg, err := parseConfig([]byte(backendConfig(backend) + `
listen: 127.0.0.1:0
subscriptions:
  - id: sink
    topic: bench
    url: ` + sink.URL + `
    secret: ` + testSecret + `
`))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), ready) }()
	addr := <-ready
	defer func() { cancel(); <-done }()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		id := fmt.Sprintf("bench-%d", i)
		wg.Go(func() {
			body := `{"name":"bench","id":"` + id + `","payload":{"n":1}}`
			mu.Lock()
			sent[id] = time.Now()
			mu.Unlock()
			resp, err := client.Post("http://"+addr+"/v1/events", "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		})
	}
	wg.Wait()
	for range b.N {
		<-got
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
}
