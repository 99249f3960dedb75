package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/barehook"
	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
)

// env is what every workload runs against.
type env struct {
	client *goredis.Client
	addr   string
	n      int // events per throughput run
	seq    atomic.Int64
}

func (e *env) stream(name string) string { return fmt.Sprintf("bench:%s:%d", name, e.seq.Add(1)) }

var wmLog = watermill.NopLogger{}

// wmClient returns a client of its own for watermill, whose Close closes
// the client it was given.
func (e *env) wmClient() *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: e.addr, PoolSize: 128})
}

func payload(size int) []byte { return bytes.Repeat([]byte("x"), size) }

func newEvents(n, size int) []pubsub.Event {
	p := payload(size)
	evs := make([]pubsub.Event, n)
	for i := range evs {
		evs[i] = pubsub.NewEvent(context.Background(), "bench", p)
	}
	return evs
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// parallel runs fn(i) for i in [0, n) on workers goroutines.
func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// --- raw go-redis: the ceiling -------------------------------------------

func rawXAdd(ctx context.Context, e *env, size int) ([]float64, error) {
	stream, p := e.stream("raw-xadd"), payload(size)
	start := time.Now()
	for done := 0; done < e.n; done += 100 {
		pipe := e.client.Pipeline()
		for i := 0; i < 100 && done+i < e.n; i++ {
			pipe.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{"id", strconv.Itoa(done + i), "name", "bench", "payload", p}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	return []float64{rate(e.n, time.Since(start))}, nil
}

// fill writes n entries in our wire format, untimed.
func fill(ctx context.Context, e *env, stream string, size int) error {
	pub, err := redis.NewPublisher(e.client, redis.PublisherConfig{Stream: stream})
	if err != nil {
		return err
	}
	defer pub.Close()
	evs := newEvents(1000, size)
	for done := 0; done < e.n; done += len(evs) {
		if err := pub.Emit(ctx, evs[:min(len(evs), e.n-done)]...); err != nil {
			return err
		}
	}
	return nil
}

func rawReadAck(ctx context.Context, e *env, size int) ([]float64, error) {
	stream := e.stream("raw-read")
	if err := fill(ctx, e, stream, size); err != nil {
		return nil, err
	}
	if err := e.client.XGroupCreate(ctx, stream, "g", "0").Err(); err != nil {
		return nil, err
	}
	start := time.Now()
	for read := 0; read < e.n; {
		res, err := e.client.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Count: 500}).Result()
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(res[0].Messages))
		for i, m := range res[0].Messages {
			ids[i] = m.ID
		}
		if err := e.client.XAck(ctx, stream, "g", ids...).Err(); err != nil {
			return nil, err
		}
		read += len(ids)
	}
	return []float64{rate(e.n, time.Since(start))}, nil
}

// --- switchyard redis -----------------------------------------------------

func syBatchEmit(ctx context.Context, e *env, size int) ([]float64, error) {
	pub, err := redis.NewPublisher(e.client, redis.PublisherConfig{Stream: e.stream("sy-batch")})
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	evs := newEvents(100, size)
	start := time.Now()
	for done := 0; done < e.n; done += len(evs) {
		if err := pub.Emit(ctx, evs...); err != nil {
			return nil, err
		}
	}
	return []float64{rate(e.n, time.Since(start))}, nil
}

func sySingleEmit64(ctx context.Context, e *env, size int) ([]float64, error) {
	pub, err := redis.NewPublisher(e.client, redis.PublisherConfig{Stream: e.stream("sy-single")})
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	evs := newEvents(64, size)
	start := time.Now()
	err = parallel(e.n, 64, func(i int) error { return pub.Emit(ctx, evs[i%64]) })
	return []float64{rate(e.n, time.Since(start))}, err
}

// syConsume times subscribers reading and acknowledging e.n entries
// already in the streams.
func syConsume(ctx context.Context, e *env, streams []string, subscribers int) (float64, error) {
	var count atomic.Int64
	done := make(chan struct{})
	h := func(context.Context, pubsub.Event) error {
		if count.Add(1) == int64(e.n) {
			close(done)
		}
		return nil
	}
	var subs []*redis.Subscriber
	for i := range subscribers {
		s, err := redis.NewSubscriber(ctx, e.client, redis.SubscriberConfig{
			Streams: streams, Group: "g", Consumer: "c" + strconv.Itoa(i), Start: redis.StartBeginning,
			BatchSize: 500, Concurrency: 4, Block: 100 * time.Millisecond,
		})
		if err != nil {
			return 0, err
		}
		subs = append(subs, s)
	}
	cctx, cancel := context.WithCancel(ctx)
	start := time.Now()
	for _, s := range subs {
		go s.Consume(cctx, h, nil)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		cancel()
		return 0, fmt.Errorf("consumed %d of %d", count.Load(), e.n)
	}
	took := time.Since(start)
	cancel()
	for _, s := range subs {
		_ = s.Close()
	}
	return rate(e.n, took), nil
}

func syConsumeAck(ctx context.Context, e *env, size int) ([]float64, error) {
	stream := e.stream("sy-consume")
	if err := fill(ctx, e, stream, size); err != nil {
		return nil, err
	}
	r, err := syConsume(ctx, e, []string{stream}, 1)
	return []float64{r}, err
}

func scaleConsumers(k int) func(context.Context, *env, int) ([]float64, error) {
	return func(ctx context.Context, e *env, size int) ([]float64, error) {
		stream := e.stream("sy-scale-consumers")
		if err := fill(ctx, e, stream, size); err != nil {
			return nil, err
		}
		r, err := syConsume(ctx, e, []string{stream}, k)
		return []float64{r}, err
	}
}

func scalePartitions(p int) func(context.Context, *env, int) ([]float64, error) {
	return func(ctx context.Context, e *env, size int) ([]float64, error) {
		stream := e.stream("sy-scale-partitions")
		pub, err := redis.NewPublisher(e.client, redis.PublisherConfig{Stream: stream, Partitions: p})
		if err != nil {
			return nil, err
		}
		evs := newEvents(1000, size)
		for done := 0; done < e.n; done += len(evs) {
			if err := pub.Emit(ctx, evs[:min(len(evs), e.n-done)]...); err != nil {
				return nil, err
			}
		}
		_ = pub.Close()
		r, err := syConsume(ctx, e, redis.PartitionStreams(stream, p), 1)
		return []float64{r}, err
	}
}

// latencies returns p50 and p99 in milliseconds.
func latencies(l []time.Duration) []float64 {
	slices.Sort(l)
	q := func(p float64) float64 { return float64(l[int(p*float64(len(l)-1))]) / float64(time.Millisecond) }
	return []float64{q(0.5), q(0.99)}
}

const latencyRate, latencyFor = 2000, 2 * time.Second

// paced calls emit latencyRate times a second for latencyFor.
func paced(emit func(i int) error) (int, error) {
	n := int(latencyRate * latencyFor.Seconds())
	t := time.NewTicker(time.Second / latencyRate)
	defer t.Stop()
	for i := range n {
		<-t.C
		if err := emit(i); err != nil {
			return i, err
		}
	}
	return n, nil
}

func syLatency(ctx context.Context, e *env, size int) ([]float64, error) {
	stream := e.stream("sy-latency")
	pub, _ := redis.NewPublisher(e.client, redis.PublisherConfig{Stream: stream})
	defer pub.Close()
	sub, err := redis.NewSubscriber(ctx, e.client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Concurrency: 4})
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var lat []time.Duration
	cctx, cancel := context.WithCancel(ctx)
	go sub.Consume(cctx, func(_ context.Context, ev pubsub.Event) error {
		d := time.Since(ev.Meta.CreatedAtUTC)
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
		return nil
	}, nil)
	p := payload(size)
	n, err := paced(func(int) error { return pub.Emit(ctx, pubsub.NewEvent(ctx, "bench", p)) })
	for err == nil {
		mu.Lock()
		got := len(lat)
		mu.Unlock()
		if got >= n {
			break
		}
		time.Sleep(10 * time.Millisecond) // waiting for the last deliveries
	}
	cancel()
	_ = sub.Close()
	if err != nil {
		return nil, err
	}
	return latencies(lat), nil
}

// --- watermill-redisstream: the peer ---------------------------------------

func wmPublish64(ctx context.Context, e *env, size int) ([]float64, error) {
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: e.wmClient()}, wmLog)
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	topic, p := e.stream("wm-publish"), payload(size)
	start := time.Now()
	err = parallel(e.n, 64, func(int) error {
		return pub.Publish(topic, message.NewMessage(watermill.NewUUID(), p))
	})
	return []float64{rate(e.n, time.Since(start))}, err
}

func wmSubscribe(ctx context.Context, e *env, size int) ([]float64, error) {
	topic, p := e.stream("wm-subscribe"), payload(size)
	m := redisstream.DefaultMarshallerUnmarshaller{}
	for done := 0; done < e.n; done += 1000 { // filled untimed, in watermill's format
		pipe := e.client.Pipeline()
		for i := 0; i < 1000 && done+i < e.n; i++ {
			vals, err := m.Marshal(topic, message.NewMessage(watermill.NewUUID(), p))
			if err != nil {
				return nil, err
			}
			pipe.XAdd(ctx, &goredis.XAddArgs{Stream: topic, Values: vals})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{Client: e.wmClient(), ConsumerGroup: "g", Consumer: "c", OldestId: "0"}, wmLog)
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	msgs, err := sub.Subscribe(cctx, topic)
	if err != nil {
		return nil, err
	}
	timeout := time.After(5 * time.Minute)
	for got := 0; got < e.n; got++ {
		select {
		case msg := <-msgs:
			msg.Ack()
		case <-timeout:
			return nil, fmt.Errorf("watermill consumed %d of %d", got, e.n)
		}
	}
	return []float64{rate(e.n, time.Since(start))}, nil
}

func wmLatency(ctx context.Context, e *env, size int) ([]float64, error) {
	topic := e.stream("wm-latency")
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: e.wmClient()}, wmLog)
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{Client: e.wmClient(), ConsumerGroup: "g", Consumer: "c"}, wmLog)
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := sub.Subscribe(cctx, topic)
	if err != nil {
		return nil, err
	}
	var lat []time.Duration
	got := make(chan struct{})
	go func() {
		defer close(got)
		for msg := range msgs {
			sent, _ := time.Parse(time.RFC3339Nano, msg.Metadata.Get("sent"))
			lat = append(lat, time.Since(sent))
			msg.Ack()
			if len(lat) == int(latencyRate*latencyFor.Seconds()) {
				return
			}
		}
	}()
	p := payload(size)
	if _, err := paced(func(int) error {
		msg := message.NewMessage(watermill.NewUUID(), p)
		msg.Metadata.Set("sent", time.Now().Format(time.RFC3339Nano))
		return pub.Publish(topic, msg)
	}); err != nil {
		return nil, err
	}
	select {
	case <-got:
	case <-time.After(time.Minute):
		return nil, fmt.Errorf("watermill did not deliver every event within a minute")
	}
	return latencies(lat), nil
}

// --- in process: memory vs gochannel --------------------------------------

func syMemory(ctx context.Context, e *env, size int) ([]float64, error) {
	b := memory.NewBroker(memory.Options{})
	defer b.Close()
	sub, err := b.NewSubscriber(memory.SubscriberConfig{Group: "g"})
	if err != nil {
		return nil, err
	}
	var count atomic.Int64
	done := make(chan struct{})
	go sub.Consume(ctx, func(context.Context, pubsub.Event) error {
		if count.Add(1) == int64(e.n) {
			close(done)
		}
		return nil
	}, nil)
	ev := newEvents(1, size)[0]
	start := time.Now()
	for range e.n {
		if err := b.Emit(ctx, ev); err != nil {
			return nil, err
		}
	}
	<-done
	return []float64{rate(e.n, time.Since(start))}, nil
}

func wmGoChannel(ctx context.Context, e *env, size int) ([]float64, error) {
	gc := gochannel.NewGoChannel(gochannel.Config{}, wmLog)
	defer gc.Close()
	msgs, err := gc.Subscribe(ctx, "bench")
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got := 0; got < e.n; got++ {
			(<-msgs).Ack()
		}
	}()
	p := payload(size)
	start := time.Now()
	for range e.n {
		if err := gc.Publish("bench", message.NewMessage(watermill.NewUUID(), p)); err != nil {
			return nil, err
		}
	}
	<-done
	return []float64{rate(e.n, time.Since(start))}, nil
}

// --- webhook bridge vs a bare client ----------------------------------------

const bridgeConcurrency = 64

func sink(n int, onHit func(*http.Request)) (*httptest.Server, <-chan struct{}) {
	var count atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if onHit != nil {
			onHit(r)
		}
		w.WriteHeader(http.StatusNoContent)
		if count.Add(1) == int64(n) {
			close(done)
		}
	}))
	return srv, done
}

// startBridge runs a bridge on a memory broker delivering every event to url.
func startBridge(ctx context.Context, url string) (*memory.Broker, func(), error) {
	broker := memory.NewBroker(memory.Options{Buffer: 4096})
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "bridge", Concurrency: bridgeConcurrency})
	if err != nil {
		return nil, nil, err
	}
	bridge, err := webhook.New(webhook.Config{
		Subscriber: sub, Publisher: broker, PerEndpoint: bridgeConcurrency,
		Subscriptions: []webhook.Subscription{{ID: "s", Topic: "*", URL: url, Secrets: webhook.Secrets{barehook.Secret}}},
	})
	if err != nil {
		return nil, nil, err
	}
	go bridge.Run(ctx)
	return broker, func() { _ = bridge.Close(); _ = broker.Close() }, nil
}

func bridgeDeliveries(ctx context.Context, e *env, size int) ([]float64, error) {
	n := min(e.n, 50000)
	srv, done := sink(n, nil)
	defer srv.Close()
	broker, stop, err := startBridge(ctx, srv.URL)
	if err != nil {
		return nil, err
	}
	defer stop()
	ev := newEvents(1, size)[0]
	start := time.Now()
	for i := range n {
		ev.ID = pubsub.ID(strconv.Itoa(i))
		if err := broker.Emit(ctx, ev); err != nil {
			return nil, err
		}
	}
	<-done
	return []float64{rate(n, time.Since(start))}, nil
}

func bareClient(ctx context.Context, e *env, size int) ([]float64, error) {
	n := min(e.n, 50000)
	srv, done := sink(n, nil)
	defer srv.Close()
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = bridgeConcurrency
	client := &http.Client{Transport: t}
	p := payload(size)
	start := time.Now()
	err := parallel(n, bridgeConcurrency, func(int) error {
		resp, err := client.Post(srv.URL, "application/json", bytes.NewReader(p))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	})
	if err != nil {
		return nil, err
	}
	<-done
	return []float64{rate(n, time.Since(start))}, nil
}

// bridgeLatency is the time from Emit to the sink at 1k events/s: what
// the bridge adds on top of the backend.
func bridgeLatency(ctx context.Context, e *env, size int) ([]float64, error) {
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []time.Duration
	const rate, dur = 1000, 2 * time.Second
	n := int(rate * dur.Seconds())
	srv, done := sink(n, func(r *http.Request) {
		now := time.Now()
		mu.Lock()
		lat = append(lat, now.Sub(sent[r.Header.Get("Webhook-Id")]))
		mu.Unlock()
	})
	defer srv.Close()
	broker, stop, err := startBridge(ctx, srv.URL)
	if err != nil {
		return nil, err
	}
	defer stop()
	p := payload(size)
	t := time.NewTicker(time.Second / rate)
	defer t.Stop()
	for range n {
		<-t.C
		ev := pubsub.NewEvent(ctx, "bench", p)
		mu.Lock()
		sent[string(ev.ID)] = time.Now()
		mu.Unlock()
		if err := broker.Emit(ctx, ev); err != nil {
			return nil, err
		}
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	return latencies(lat), nil
}
