package memory_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// benchEvents returns n events with 256-byte payloads.
func benchEvents(n int) []pubsub.Event {
	payload := make([]byte, 256)
	evs := make([]pubsub.Event, n)
	for i := range evs {
		evs[i] = pubsub.NewEvent(context.Background(), "bench", payload)
	}
	return evs
}

// consumeN starts a consumer that counts deliveries and returns a channel
// closed after n of them.
func consumeN(b *testing.B, br *memory.Broker, n int, concurrency int) <-chan struct{} {
	b.Helper()
	sub, err := br.NewSubscriber(memory.SubscriberConfig{Group: "bench", Concurrency: concurrency})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	var count atomic.Int64
	go sub.Consume(context.Background(), func(context.Context, pubsub.Event) error {
		if count.Add(1) == int64(n) {
			close(done)
		}
		return nil
	}, nil)
	return done
}

func reportRate(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEndToEnd emits events one at a time from one goroutine and
// handles them with a no-op handler.
func BenchmarkEndToEnd(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run(map[int]string{1: "single", 100: "batch100"}[batch], func(b *testing.B) {
			endToEnd(b, memory.Options{}, batch)
		})
	}
}

// endToEnd emits b.N batches of batch events into a broker made with
// opts, and waits until a consumer has handled them all.
func endToEnd(b *testing.B, opts memory.Options, batch int) {
	br := memory.NewBroker(opts)
	defer br.Close()
	evs := benchEvents(batch)
	n := b.N * batch
	done := consumeN(b, br, n, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := br.Emit(context.Background(), evs...); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatal("not every event was handled")
	}
	b.StopTimer()
	reportRate(b, n)
}

// BenchmarkEmit measures Emit alone, into a group that a consumer drains.
func BenchmarkEmit(b *testing.B) {
	b.Run("batch100", func(b *testing.B) {
		br := memory.NewBroker(memory.Options{})
		defer br.Close()
		evs := benchEvents(100)
		consumeN(b, br, -1, 1)
		b.ReportAllocs()
		for b.Loop() {
			if err := br.Emit(context.Background(), evs...); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N*len(evs))
	})
	b.Run("single-parallel", func(b *testing.B) {
		br := memory.NewBroker(memory.Options{})
		defer br.Close()
		consumeN(b, br, -1, 2)
		ev := benchEvents(1)[0]
		b.ReportAllocs()
		b.SetParallelism(32) // 64 goroutines on this 2-core machine
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := br.Emit(context.Background(), ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b, b.N)
	})
}

// BenchmarkEndToEndTraced is BenchmarkEndToEnd/batch100 with an
// OpenTelemetry SDK TracerProvider that samples every span (and exports
// none): the cost of tracing switched on, a send span per Emit and a
// process span per event.
func BenchmarkEndToEndTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	endToEnd(b, memory.Options{TracerProvider: tp}, 100)
}
