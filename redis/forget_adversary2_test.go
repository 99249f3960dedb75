package redis_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// TestAdversary2ForgetIdleConsumersAmongLiveOnes: three live subscribers of
// one group, each removing consumers idle for 30ms (far below any handler
// or read), Concurrency 4, handlers of 0–20ms, events emitted in bursts
// with quiet gaps (on Redis 7.0 a consumer waiting on a quiet stream looks
// idle). No live consumer with pending entries may be removed, and every
// event is handled exactly once, on its first delivery.
func TestAdversary2ForgetIdleConsumersAmongLiveOnes(t *testing.T) {
	client := newClient(t, server.Addr)
	stream, group := uniqueName("adv2-forget"), "g"
	c := newCounter()
	for _, name := range []string{"live-a", "live-b", "live-c"} {
		subscribe(t, client, redis.SubscriberConfig{
			Streams: []string{stream}, Group: group, Consumer: name, Concurrency: 4, BatchSize: 5,
			ForgetIdleConsumers: 30 * time.Millisecond,
		}, func(ctx context.Context, ev pubsub.Event) error {
			select {
			case <-time.After(time.Duration(rand.IntN(20)) * time.Millisecond): // the handler's work
			case <-ctx.Done():
			}
			c.add(ev)
			return nil
		}, nil)
	}
	pub := newPublisher(t, client, stream)
	var all []pubsub.Event
	for range 10 {
		all = append(all, emitN(t, pub, "job", 30)...)
		// A quiet gap longer than ForgetIdleConsumers: wait for this
		// burst to be handled before the next.
		c.waitFor(t, ids(all), wait)
	}
	if dups, retried := c.duplicates(); dups != 0 || retried != 0 {
		t.Errorf("%d events handled twice, %d handled with Attempts > 0", dups, retried)
	}
	// Handled is not yet acknowledged: wait for the acknowledgements.
	eventually(t, "nothing pending", func() bool { return pendingCount(t, client, stream, group) == 0 })
}
