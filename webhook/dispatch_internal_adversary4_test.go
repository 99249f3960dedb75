package webhook

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// The queues are bounded (16 × MaxInFlight deliveries wait at once), and
// deliveries at an endpoint that answers nothing are taken back and
// deferred. But a withdrawn delivery stays in its endpoint's queue, with
// its event and payload, until the queue is popped, which an endpoint
// whose slots all hang never does: every event for it adds one, and
// memory grows without bound for as long as it hangs (up to a
// subscription's timeout, 5 minutes, per slot).
func TestWithdrawnDeliveriesDoNotPileUpAtAHangingEndpoint(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	hang := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer hang.Close()
	defer once.Do(func() { close(release) })
	b, err := New(Config{Subscriber: nopSubscriber{}, Publisher: nopDelayed{}, PerEndpoint: 1, MaxInFlight: 2,
		SlotWait: 5 * time.Millisecond, Timeout: time.Minute,
		Subscriptions: []Subscription{{ID: "h", Topic: "t", URL: hang.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	payload := make([]byte, 10_000)
	for i := range payload {
		payload[i] = 'x'
	}
	payload[0], payload[len(payload)-1] = '"', '"'
	const events = 3000
	var wg sync.WaitGroup
	handled := make(chan struct{}, events)
	sem := make(chan struct{}, 200)
	for i := range events {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ev := pubsub.Event{ID: pubsub.ID(fmt.Sprintf("e%d", i)), Name: "t", Payload: payload}
			if err := b.Handle(ctx, ev); err != nil {
				t.Error(err)
			}
			handled <- struct{}{}
		}()
	}
	for range events - 1 { // one delivery hangs, its event with it
		<-handled
	}
	ep := b.endpoints.get(endpointKey(hang.URL))
	b.disp.mu.Lock()
	held, queued, limit := len(ep.queue), ep.queuedN, b.disp.queueCap
	b.disp.mu.Unlock()
	once.Do(func() { close(release) })
	wg.Wait()
	t.Logf("%d events handled: the hanging endpoint's queue holds %d entries (%d of them queued), %d bytes of payload", events, held, queued, held*len(payload))
	if held > limit {
		t.Errorf("the hanging endpoint's queue holds %d deliveries (withdrawn, each with its event), more than the %d the queues are bounded to", held, limit)
	}
}
