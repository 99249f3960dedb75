package webhook_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

const benchConcurrency = 64

// countingSink answers 204 and closes done after n requests.
func countingSink(b *testing.B, n int) (*httptest.Server, <-chan struct{}) {
	var count atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		if count.Add(1) == int64(n) {
			close(done)
		}
	}))
	b.Cleanup(srv.Close)
	return srv, done
}

var benchPayload = bytes.Repeat([]byte("x"), 256)

// BenchmarkDeliveries compares the bridge (memory backend, signed
// deliveries) with a bare net/http client posting the same bodies at the
// same concurrency to the same kind of local sink.
func BenchmarkDeliveries(b *testing.B) {
	b.Run("bridge", func(b *testing.B) {
		sink, done := countingSink(b, b.N)
		broker := memory.NewBroker(memory.Options{Buffer: 4096})
		defer broker.Close()
		sub, _ := broker.NewSubscriber(memory.SubscriberConfig{Group: "bridge", Concurrency: benchConcurrency})
		bridge, err := webhook.New(webhook.Config{
			Subscriber: sub, Publisher: broker, PerEndpoint: benchConcurrency,
			Subscriptions: []webhook.Subscription{{ID: "s", Topic: "*", URL: sink.URL, Secrets: webhook.Secrets{vectorSecret}}},
		})
		if err != nil {
			b.Fatal(err)
		}
		go bridge.Run(context.Background())
		defer bridge.Close()
		ev := pubsub.NewEvent(context.Background(), "bench", benchPayload)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			ev.ID = pubsub.ID(strconv.Itoa(i))
			if err := broker.Emit(context.Background(), ev); err != nil {
				b.Fatal(err)
			}
		}
		<-done
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	})
	b.Run("bare-client", func(b *testing.B) {
		sink, done := countingSink(b, b.N)
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = benchConcurrency
		client := &http.Client{Transport: t}
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ReportAllocs()
		b.ResetTimer()
		for range benchConcurrency {
			wg.Go(func() {
				for next.Add(1) <= int64(b.N) {
					resp, err := client.Post(sink.URL, "application/json", bytes.NewReader(benchPayload))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			})
		}
		wg.Wait()
		<-done
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	})
}
