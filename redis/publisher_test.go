package redis_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/faultproxy"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
	"github.com/switchyard-go/switchyard/redis"
)

func TestTrimming(t *testing.T) {
	client := newClient(t, server.Addr)
	ctx := context.Background()
	t.Run("MaxLen", func(t *testing.T) {
		stream := uniqueName("maxlen")
		pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream, MaxLen: 100})
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			emitN(t, pub, "n", 100)
		}
		// "~" trims whole macro nodes (100 entries each by default), so
		// the stream keeps a little more than MaxLen.
		if n, _ := client.XLen(ctx, stream).Result(); n < 100 || n > 300 {
			t.Errorf("XLEN = %d after 1000 events with MaxLen 100, want about 100", n)
		}
	})
	t.Run("MaxAge", func(t *testing.T) {
		stream := uniqueName("maxage")
		for i := range 300 { // old entries, far past an hour
			if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: stream, ID: "1000-" + strconv.Itoa(i+1), Values: []any{"name", "old", "payload", ""}}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream, MaxAge: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		emitN(t, pub, "new", 10)
		if n, _ := client.XLen(ctx, stream).Result(); n > 110 {
			t.Errorf("XLEN = %d, want the 300 old entries trimmed down to at most one node", n)
		}
	})
}

func TestEmitReportsEveryEventNotWritten(t *testing.T) {
	client := newClient(t, server.Addr)
	ctx := context.Background()
	good, bad := uniqueName("good"), uniqueName("wrongtype")
	if err := client.Set(ctx, bad, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Route: func(n pubsub.Name) string {
		if n == "bad" {
			return bad
		}
		return good
	}})
	if err != nil {
		t.Fatal(err)
	}
	evs := []pubsub.Event{
		pubsub.NewEvent(ctx, "ok", nil), pubsub.NewEvent(ctx, "bad", nil), pubsub.NewEvent(ctx, "ok", nil), pubsub.NewEvent(ctx, "bad", nil),
	}
	err = pub.Emit(ctx, evs...)
	if err == nil {
		t.Fatal("Emit into a key that is not a stream returned nil")
	}
	for _, ev := range []pubsub.Event{evs[1], evs[3]} {
		if !strings.Contains(err.Error(), string(ev.ID)) || !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Errorf("error %q does not name event %s and the cause", err, ev.ID)
		}
	}
	if n, _ := client.XLen(ctx, good).Result(); n != 2 {
		t.Errorf("the good stream holds %d entries, want the 2 routed there", n)
	}
	if err := pub.Emit(ctx, evs[1]); err == nil || !strings.Contains(err.Error(), string(evs[1].ID)) {
		t.Errorf("single Emit into a wrong key = %v, want an error naming the event", err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	client := newClient(t, server.Addr)
	ctx := context.Background()
	for _, tc := range []struct {
		cfg  redis.PublisherConfig
		want string
	}{
		{redis.PublisherConfig{MaxLen: -1}, "PublisherConfig.MaxLen is -1"},
		{redis.PublisherConfig{MaxLen: 5, MaxAge: time.Hour}, "MaxLen and MaxAge are both set"},
		{redis.PublisherConfig{Partitions: -2}, "PublisherConfig.Partitions is -2"},
		{redis.PublisherConfig{Stream: "a{b"}, `stream "a{b" has braces but no hash tag`},
	} {
		if _, err := redis.NewPublisher(client, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewPublisher(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	for _, tc := range []struct {
		cfg  redis.SubscriberConfig
		want string
	}{
		{redis.SubscriberConfig{}, "SubscriberConfig.Group is required"},
		{redis.SubscriberConfig{Group: "g", Concurrency: -1}, "SubscriberConfig.Concurrency is negative"},
		{redis.SubscriberConfig{Group: "g", Streams: []string{""}}, "empty stream name"},
		{redis.SubscriberConfig{Group: "g", Names: []pubsub.Name{""}}, "Names holds an empty name"},
		{redis.SubscriberConfig{Group: "g", Start: 7}, "Start is 7"},
	} {
		if _, err := redis.NewSubscriber(ctx, client, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSubscriber(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := redis.NewPublisher(nil, redis.PublisherConfig{}); err == nil {
		t.Error("NewPublisher with a nil client succeeded")
	}
	pub, _ := redis.NewPublisher(client, redis.PublisherConfig{Route: func(pubsub.Name) string { return "" }})
	if err := pub.Emit(ctx, pubsub.NewEvent(ctx, "x", nil)); err == nil || !strings.Contains(err.Error(), `Route("x")`) {
		t.Errorf("Emit with a Route returning no stream = %v, want an error naming the route", err)
	}
}

func TestSeveralStreamsAndRouting(t *testing.T) {
	client := newClient(t, server.Addr)
	ctx := context.Background()
	orders, users := uniqueName("orders"), uniqueName("users")
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Route: func(n pubsub.Name) string {
		if strings.HasPrefix(string(n), "order.") {
			return orders
		}
		return users
	}})
	if err != nil {
		t.Fatal(err)
	}
	rec := pubsubtest.NewRecorder()
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{orders, users}, Group: "g"}, rec.Handle, nil)
	evs := []pubsub.Event{pubsub.NewEvent(ctx, "order.created", nil), pubsub.NewEvent(ctx, "user.joined", nil), pubsub.NewEvent(ctx, "order.paid", nil)}
	if err := pub.Emit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	rec.WaitForN(t, 3, wait)
	if n, _ := client.XLen(ctx, orders).Result(); n != 2 {
		t.Errorf("orders stream holds %d, want 2", n)
	}
	if n, _ := client.XLen(ctx, users).Result(); n != 1 {
		t.Errorf("users stream holds %d, want 1", n)
	}
}

func TestCloseKeepsConsumerWithPendingEntries(t *testing.T) {
	client := newClient(t, server.Addr)
	ctx := context.Background()
	stream, group := uniqueName("keep"), "g"
	makeGroup(t, client, stream, group)
	emitN(t, newPublisher(t, client, stream), "n", 2)
	takePending(t, client, stream, group, "holder")
	s, err := redis.NewSubscriber(ctx, client, redis.SubscriberConfig{Streams: []string{stream}, Group: group, Consumer: "holder"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	consumers, err := client.XInfoConsumers(ctx, stream, group).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(consumers) != 1 || consumers[0].Name != "holder" || consumers[0].Pending != 2 {
		t.Errorf("consumers after Close = %+v, want holder with its 2 pending entries", consumers)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	var reported error
	s.Consume(ctx, func(context.Context, pubsub.Event) error { return nil }, func(_ context.Context, err error, _ *pubsub.Event) { reported = err })
	if !errors.Is(reported, pubsub.ErrClosed) {
		t.Errorf("Consume after Close reported %v, want ErrClosed", reported)
	}
}

func TestPayloadSizes(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("sizes")
	pub := newPublisher(t, client, stream)
	rec := pubsubtest.NewRecorder()
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g"}, rec.Handle, nil)
	big := make([]byte, 10<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	ctx := context.Background()
	evs := []pubsub.Event{pubsub.NewEvent(ctx, "empty", nil), pubsub.NewEvent(ctx, "ten-mib", big), pubsub.NewEvent(ctx, "not-utf8", []byte{0xff, 0xfe, 0x00, 0xc3})}
	if err := pub.Emit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	got := rec.WaitForN(t, 3, wait)
	for i, ev := range evs {
		if got[i].ID != ev.ID || !bytes.Equal(got[i].Payload, ev.Payload) {
			t.Errorf("%s: %d bytes back, want %d equal bytes", ev.Name, len(got[i].Payload), len(ev.Payload))
		}
	}
}

// TestEmitUnderCutReplies cuts the replies of XADD pipelines mid-stream.
// go-redis then sends the whole pipeline again, so events are written
// twice: at-least-once allows it, and the test reports how often. A
// client with MaxRetries -1 reports the cut pipeline's events as errors
// instead. What it asserts: every event whose Emit returned nil is in the
// stream (docs/reliability.md has the figures).
func TestEmitUnderCutReplies(t *testing.T) {
	proxy, err := faultproxy.New(server.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	direct := newClient(t, server.Addr)
	retrying := newClient(t, proxy.Addr())
	noRetries := goredis.NewClient(&goredis.Options{Addr: proxy.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = noRetries.Close() })
	for _, mode := range []string{"batch of 100", "single from 16 goroutines", "batch of 100, MaxRetries -1", "single from 16 goroutines, MaxRetries -1"} {
		via := retrying
		if strings.HasSuffix(mode, "-1") {
			via = noRetries
		}
		t.Run(mode, func(t *testing.T) {
			stream := uniqueName("cutemit")
			pub := newPublisher(t, via, stream)
			var mu sync.Mutex
			var ok []pubsub.Event
			failed := 0
			record := func(evs []pubsub.Event, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed += len(evs)
					return
				}
				ok = append(ok, evs...)
			}
			const rounds = 40
			for round := range rounds {
				proxy.CutNextReply(200 + round*37%300) // somewhere inside the reply
				if strings.HasPrefix(mode, "batch") {
					evs := make([]pubsub.Event, 100)
					for i := range evs {
						evs[i] = pubsub.NewEvent(context.Background(), "job", []byte(strconv.Itoa(i)))
					}
					record(evs, pub.Emit(context.Background(), evs...))
					continue
				}
				var wg sync.WaitGroup
				for range 16 {
					wg.Go(func() {
						ev := pubsub.NewEvent(context.Background(), "job", nil)
						record([]pubsub.Event{ev}, pub.Emit(context.Background(), ev))
					})
				}
				wg.Wait()
			}
			entries, err := direct.XRange(context.Background(), stream, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, e := range entries {
				id, _ := e.Values["id"].(string)
				seen[id]++
			}
			for _, ev := range ok {
				if seen[string(ev.ID)] == 0 {
					t.Fatalf("event %s: Emit returned nil, not in the stream", ev.ID)
				}
			}
			dups := len(entries) - len(seen)
			t.Logf("%s: %d events confirmed, %d failed, %d entries written, %d duplicate entries (%.1f%%)",
				mode, len(ok), failed, len(entries), dups, 100*float64(dups)/float64(max(len(seen), 1)))
		})
	}
}
