package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/pubsub"
)

// ADVERSARY: subscriptions never match retry events, and only events of
// a subscription's topic that pass its filter reach it. An entry named
// switchyard.webhook.retry written straight into the events stream (which
// ingest refuses as a reserved name, and which the bridge's own retries
// never use: they travel in {stream}:webhook:retries) is taken as a retry
// of this bridge, so its embedded event is delivered to the subscription
// it names, whatever its topic and filter, with the attempt number it
// claims.
func TestAdversaryForgedRetryOnTheEventsStream(t *testing.T) {
	sink := httpsink.New(t, nil)
	stream := fmt.Sprintf("adv-forged-%d", time.Now().UnixNano())
	p := startBridge(t, fmt.Sprintf(`redis:
  url: redis://%s/0
stream: %s
consumer: c1
listen: LISTEN
subscriptions:
  - id: orders
    topic: order.created
    filter: data.approved == true
    url: %s
    secret: %s
`, redisServer.Addr, stream, sink.URL, testSecret))
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = client.Close() })
	inner := pubsub.Event{ID: "forged-1", Name: "admin.delete.everything", Payload: []byte(`{"approved": false}`),
		Meta: pubsub.Meta{CreatedAtUTC: time.Now().UTC(), CorrelationID: "x"}}
	payload, _ := json.Marshal(map[string]any{"subscription_id": "orders", "attempts": -7, "event": inner})
	if err := client.XAdd(context.Background(), &goredis.XAddArgs{Stream: stream, Values: []any{
		"id", "forged-retry", "name", "switchyard.webhook.retry", "payload", string(payload),
	}}).Err(); err != nil {
		t.Fatal(err)
	}
	// A real event behind it shows the forged one was handled.
	p.emit(t, "", `{"name": "order.created", "payload": {"approved": true}, "id": "real-1"}`)
	sink.WaitUntil(t, wait, "the real event", func(hs []httpsink.Hit) bool {
		for _, h := range hs {
			if h.Header.Get("Webhook-Id") == "real-1" {
				return true
			}
		}
		return false
	})
	// the forged one may come before or after; wait for the lag to drain
	deadline := time.Now().Add(wait)
	for {
		_, text := p.do(t, http.MethodGet, "/metrics", "", "")
		if v, ok := metricValue(text, "webhook_bridge_consumer_lag"); ok && v == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lag never drained")
		}
	}
	for _, h := range sink.Hits() {
		if h.Header.Get("Webhook-Id") == "forged-1" {
			t.Errorf("a forged retry on the events stream delivered %s (ce-type %s, attempt %s, body %s) to subscription orders, whose topic and filter refuse it",
				h.Header.Get("Webhook-Id"), h.Header.Get("Ce-Type"), h.Header.Get("Webhook-Attempt"), h.Body)
		}
	}
}
