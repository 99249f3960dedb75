package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// adv7Bridge is a bridge that does not consume: the test hands events to
// Handle itself, and what the bridge emits (recovery events) is kept.
func adv7Bridge(t *testing.T, subs ...webhook.Subscription) (*webhook.Bridge, *webhook.MemoryAttemptLog, *webhook.MemoryDeadLetters, *adv6Publisher) {
	t.Helper()
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	log, _ := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	dead := &webhook.MemoryDeadLetters{}
	pub := &adv6Publisher{}
	b, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: adv7Delayed{pub}, AttemptLog: log, DeadLetters: dead, Subscriptions: subs})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); b.Run(context.Background()) }() // for its recorder: nothing is emitted to sub
	t.Cleanup(func() { _ = b.Close(); <-done })
	return b, log, dead, pub
}

// adv7Outcomes waits until every event of ids has outcome as its newest
// attempt for sub (the bridge writes the log in the background).
func adv7Outcomes(t *testing.T, log *webhook.MemoryAttemptLog, sub string, ids []pubsub.ID, outcome webhook.Outcome) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for _, id := range ids {
		for {
			page, err := log.Query(context.Background(), webhook.AttemptQuery{SubscriptionID: sub, EventID: id, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Attempts) > 0 && page.Attempts[0].Outcome == outcome {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never %s: %+v", id, outcome, page.Attempts)
			}
			runtime.Gosched()
		}
	}
}

// adv7Buried logs n events of sub as dead-lettered, made one after another.
func adv7Buried(t *testing.T, log *webhook.MemoryAttemptLog, sub string, n int) []pubsub.ID {
	t.Helper()
	base := time.Now().Add(-time.Minute).UTC()
	var batch webhook.AttemptBatch
	var ids []pubsub.ID
	for i := range n {
		ev := pubsub.Event{ID: pubsub.ID(fmt.Sprintf("ev%03d", i)), Name: "t", Payload: []byte(`{}`), Meta: pubsub.Meta{CreatedAtUTC: base.Add(time.Duration(i) * time.Millisecond)}}
		batch.Events = append(batch.Events, ev)
		batch.Attempts = append(batch.Attempts, webhook.Attempt{EventID: ev.ID, EventName: ev.Name, SubscriptionID: sub, Attempt: 1, Outcome: webhook.DeadLettered, At: time.Now()})
		ids = append(ids, ev.ID)
	}
	if err := log.Record(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	return ids
}

// adv7Delayed keeps delayed events too (no retry is due in these tests).
type adv7Delayed struct{ *adv6Publisher }

func (p adv7Delayed) EmitAt(ctx context.Context, _ time.Time, evs ...pubsub.Event) error {
	return p.Emit(ctx, evs...)
}

func (p *adv6Publisher) take() []pubsub.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.evs
	p.evs = nil
	return out
}

// The same recovery event handled twice (a redelivery after the handler
// was cut off) sends each of its events once, in order; the chain goes on
// from where it stopped.
func TestAdv7RecoveryEventHandledTwiceSendsEachOnce(t *testing.T) {
	s := newSink(t, nil)
	b, log, _, pub := adv7Bridge(t, webhook.Subscription{ID: "s", Topic: "t", URL: s.URL})
	ids := adv7Buried(t, log, "s", 150)
	ctx := context.Background()
	rep, err := b.Recover(ctx, "s", time.Time{}, time.Time{})
	if err != nil || rep.Scheduled != len(ids) {
		t.Fatalf("Recover = %+v, %v", rep, err)
	}
	// Each recovery event is handled, its deliveries recorded, then
	// handled again as a redelivery would; the second hands the rest on
	// again, so the chain forks, and every copy is handled the same way.
	queue := pub.take()
	for handled := 0; len(queue) > 0; handled++ {
		if handled > 20 {
			t.Fatal("the chain does not end")
		}
		ev := queue[0]
		queue = queue[1:]
		_, evIDs, ok := webhook.UnwrapRecovery(ev)
		if !ok {
			t.Fatalf("emitted %s", ev.Name)
		}
		if err := b.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
		adv7Outcomes(t, log, "s", evIDs[:min(len(evIDs), 100)], webhook.Delivered)
		if err := b.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
		queue = append(queue, pub.take()...)
	}
	hits := s.Hits()
	if len(hits) != len(ids) {
		t.Fatalf("%d deliveries, want %d (each once)", len(hits), len(ids))
	}
	for i, h := range hits {
		if got := h.Header.Get("Webhook-Id"); got != webhook.MessageID(ids[i]) {
			t.Fatalf("delivery %d is %s, want %s", i, got, ids[i])
		}
	}
}

// A recovery whose subscription was removed while it waited dead-letters
// its events as orphaned, each once, and sends nothing.
func TestAdv7RecoveryOfARemovedSubscription(t *testing.T) {
	s := newSink(t, nil)
	b, log, dead, pub := adv7Bridge(t, webhook.Subscription{ID: "s", Topic: "t", URL: s.URL})
	ids := adv7Buried(t, log, "s", 5)
	ctx := context.Background()
	if _, err := b.Recover(ctx, "s", time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	evs := pub.take()
	if len(evs) != 1 {
		t.Fatalf("%d recovery events", len(evs))
	}
	if err := b.SetSubscriptions(nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Handle(ctx, evs[0]); err != nil {
		t.Fatal(err)
	}
	adv7Outcomes(t, log, "s", ids, webhook.DeadLettered)
	if err := b.Handle(ctx, evs[0]); err != nil { // redelivered
		t.Fatal(err)
	}
	if n := len(s.Hits()); n != 0 {
		t.Errorf("%d deliveries to a removed subscription", n)
	}
	dls := allDeadLetters(t, dead)
	if len(dls) != len(ids) {
		t.Fatalf("%d dead letters, want %d orphaned (each once)", len(dls), len(ids))
	}
	for _, dl := range dls {
		if dl.Kind != webhook.KindOrphaned || dl.SubscriptionID != "s" {
			t.Errorf("dead letter %+v", dl)
		}
	}
	if more := pub.take(); len(more) != 0 {
		t.Errorf("%d events emitted after the orphaning", len(more))
	}
}

// Recovery events that are not the bridge's own are refused as
// permanent, without delivering or dead-lettering anything; those naming
// an unknown subscription or events it never failed do nothing.
func TestAdv7GarbageRecoveryEvents(t *testing.T) {
	s := newSink(t, nil)
	b, log, dead, pub := adv7Bridge(t, webhook.Subscription{ID: "s", Topic: "t", URL: s.URL})
	adv7Buried(t, log, "s", 3)
	ctx := context.Background()
	for _, payload := range []string{"", "null", "{}", "[]", `{"subscription_id":"s"}`, "not json", `{"subscription_id":1}`, strings.Repeat("[", 100000)} {
		err := b.Handle(ctx, pubsub.Event{ID: "g", Name: webhook.RecoverEventName, Payload: []byte(payload)})
		if !errors.Is(err, pubsub.ErrPermanent) {
			t.Errorf("payload %.40q: %v, want a permanent error", payload, err)
		}
	}
	// A recovery event of the bridge's own making, for ids that were
	// never recovered (no record of the recovery): nothing is sent.
	if _, err := b.Recover(ctx, "s", time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	real := pub.take()[0]
	forged := strings.Replace(string(real.Payload), `"s"`, `"nope"`, 1)
	if err := b.Handle(ctx, pubsub.Event{ID: "f", Name: webhook.RecoverEventName, Payload: []byte(forged)}); err != nil && !errors.Is(err, pubsub.ErrPermanent) {
		t.Errorf("a recovery of an unknown subscription: %v", err)
	}
	if n := len(s.Hits()); n != 0 {
		t.Errorf("%d deliveries from garbage", n)
	}
	if dls := allDeadLetters(t, dead); len(dls) != 0 {
		t.Errorf("%d dead letters from garbage", len(dls))
	}
}
