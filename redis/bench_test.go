package redis_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

func benchEvents(n int) []pubsub.Event {
	payload := make([]byte, 256)
	evs := make([]pubsub.Event, n)
	for i := range evs {
		evs[i] = pubsub.NewEvent(context.Background(), "bench", payload)
	}
	return evs
}

func rate(b *testing.B, n int) { b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s") }

// BenchmarkEmit writes 256-byte events to a local redis-server.
func BenchmarkEmit(b *testing.B) {
	client := newClient(b, server.Addr)
	b.Run("batch100", func(b *testing.B) {
		pub, _ := redis.NewPublisher(client, redis.PublisherConfig{Stream: uniqueName("bench"), MaxLen: 100000})
		evs := benchEvents(100)
		b.ReportAllocs()
		for b.Loop() {
			if err := pub.Emit(context.Background(), evs...); err != nil {
				b.Fatal(err)
			}
		}
		rate(b, b.N*len(evs))
	})
	b.Run("single-64-goroutines", func(b *testing.B) {
		pub, _ := redis.NewPublisher(client, redis.PublisherConfig{Stream: uniqueName("bench"), MaxLen: 100000})
		ev := benchEvents(1)[0]
		b.ReportAllocs()
		b.SetParallelism(32) // 64 goroutines on 2 cores
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := pub.Emit(context.Background(), ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
		rate(b, b.N)
	})
}

// BenchmarkConsume reads and acknowledges b.N events, emitted beforehand,
// with a no-op handler.
func BenchmarkConsume(b *testing.B) {
	client := newClient(b, server.Addr)
	stream := uniqueName("bench")
	pub, _ := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream})
	sub, err := redis.NewSubscriber(context.Background(), client, redis.SubscriberConfig{
		Streams: []string{stream}, Group: "g", Start: redis.StartBeginning, BatchSize: 500, Concurrency: 4, Block: 50 * time.Millisecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	evs := benchEvents(1000)
	for left := b.N; left > 0; left -= len(evs) {
		if err := pub.Emit(context.Background(), evs[:min(left, len(evs))]...); err != nil {
			b.Fatal(err)
		}
	}
	var count atomic.Int64
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	b.ReportAllocs()
	b.ResetTimer()
	go sub.Consume(ctx, func(context.Context, pubsub.Event) error {
		if count.Add(1) == int64(b.N) {
			close(done)
		}
		return nil
	}, nil)
	<-done
	cancel()
	_ = sub.Close() // waits for the last acknowledgements
	b.StopTimer()
	rate(b, b.N)
}
