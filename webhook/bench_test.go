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

	"github.com/switchyard-go/switchyard/internal/barehook"
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
// deliveries) with two bare net/http clients at the same concurrency, to
// the same kind of local sink: bare-client posts the same bodies with one
// header, bare-client-same-requests sends the bridge's own requests
// (headers and signature) with nothing around them.
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
	for _, same := range []bool{false, true} {
		name := "bare-client"
		if same {
			name = "bare-client-same-requests"
		}
		b.Run(name, func(b *testing.B) {
			sink, done := countingSink(b, b.N)
			post := barePost(b, "bench", benchPayload, benchConcurrency, same)
			postConcurrently(b, func(i int) error { return post(sink.URL, i, benchPayload) })
			<-done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// postConcurrently calls post(i) for i in [0, b.N) from benchConcurrency
// goroutines, timing from the first call.
func postConcurrently(b *testing.B, post func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range benchConcurrency {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				if err := post(int(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// barePost returns what the bare-client benchmarks call per request: a
// POST of body with one header (Content-Type) on a transport set as the
// bridge's, or, with same, the bridge's own request for an event named
// name (internal/barehook).
func barePost(b *testing.B, name pubsub.Name, body []byte, perEndpoint int, same bool) func(url string, i int, body []byte) error {
	ctx := context.Background()
	if same {
		c, err := barehook.New(ctx, name, body, perEndpoint)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		return func(url string, i int, body []byte) error { return c.Post(ctx, url, i, body) }
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost, t.MaxIdleConns, t.DisableCompression = perEndpoint, 0, true
	b.Cleanup(t.CloseIdleConnections)
	return func(url string, _ int, body []byte) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header = http.Header{"Content-Type": {"application/json"}}
		resp, err := t.RoundTrip(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
}
