package webhook_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

func TestRecoverDeliversWhatWasNotDeliveredEachOnceInOrder(t *testing.T) {
	var failing atomic.Bool
	s := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	log, _ := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	sub := webhook.Subscription{ID: "s", Topic: "t", URL: s.URL, MaxAttempts: 2}
	off := sub
	off.Disabled = true
	h := newHarness(t, webhook.Config{AttemptLog: log, Subscriptions: []webhook.Subscription{off}})
	ctx := context.Background()
	since := time.Now()
	newEv := func(n int) pubsub.Event {
		ev := pubsub.NewEvent(ctx, "t", []byte{'0' + byte(n)})
		ev.Meta.CreatedAtUTC = since.Add(time.Duration(n) * time.Millisecond).UTC()
		return ev
	}
	e1, e2, e3, e4 := newEv(1), newEv(2), newEv(3), newEv(4)
	// e2 is emitted first, e1 after: recovery goes by when they were made.
	h.emit(t, e2)
	h.emit(t, e1)
	h.logged(t, log, webhook.AttemptQuery{Outcome: webhook.Skipped}, 2)
	if _, err := h.bridge.Recover(ctx, "s", since, time.Time{}); !errors.Is(err, webhook.ErrSubscriptionDisabled) {
		t.Errorf("recovering a disabled subscription: %v", err)
	}
	if err := h.bridge.SetSubscriptions([]webhook.Subscription{sub}); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	h.emit(t, e3)
	h.deadLetters(t, 1)
	failing.Store(false)
	h.emit(t, e4)
	s.waitFor(t, 3) // e3 twice, e4

	rep, err := h.bridge.Recover(ctx, "s", since, time.Now().Add(time.Second))
	if err != nil || rep.Scheduled != 3 || rep.InProgress != 0 || rep.Expired != 0 {
		t.Fatalf("Recover = %+v, %v; want 3 scheduled", rep, err)
	}
	// Recover emits in creation order (TestAdv6RecoverReportsWhatItFound
	// checks what it emits); the bridge's concurrent consumer promises no
	// order of deliveries, so here each is delivered once, with attempt 1.
	hits := s.waitFor(t, 6)[3:]
	got := map[string]int{}
	for _, hit := range hits {
		if hit.Header.Get("Webhook-Attempt") != "1" {
			t.Errorf("recovered delivery %s: attempt %s, want 1", hit.Header.Get("Webhook-Id"), hit.Header.Get("Webhook-Attempt"))
		}
		got[hit.Header.Get("Webhook-Id")]++
	}
	for _, want := range []pubsub.Event{e1, e2, e3} {
		if got[webhook.MessageID(want.ID)] != 1 {
			t.Errorf("recovered deliveries %v: want %s once", got, want.ID)
		}
	}
	if dls := allDeadLetters(t, h.dead); len(dls) != 0 {
		t.Errorf("the recovered dead letter is still stored: %+v", dls)
	}
	h.logged(t, log, webhook.AttemptQuery{EventID: e3.ID, Outcome: webhook.Delivered}, 1)
	if rep, err := h.bridge.Recover(ctx, "s", since, time.Time{}); err != nil || rep.Scheduled != 0 {
		t.Errorf("a second recovery: %+v, %v; want nothing scheduled", rep, err)
	}
	if _, err := h.bridge.Recover(ctx, "nope", since, time.Time{}); !errors.Is(err, webhook.ErrNotFound) {
		t.Errorf("recovering an unknown subscription: %v", err)
	}
}

func TestRecoverTwiceBeforeAnyAttemptSchedulesOnce(t *testing.T) {
	s := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	log, _ := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	h := newHarness(t, webhook.Config{AttemptLog: log, Subscriptions: []webhook.Subscription{{ID: "s", Topic: "t", URL: s.URL}}})
	ctx := context.Background()
	h.emit(t, pubsub.NewEvent(ctx, "t", nil))
	h.logged(t, log, webhook.AttemptQuery{Outcome: webhook.DeadLettered}, 1)
	// Straight to the log, without a bridge consuming what it emits: the
	// second finds the first's record.
	pub := &countingPublisher{}
	r := webhook.Recovery{Log: log, Publisher: pub}
	a, err1 := webhook.Recover(ctx, r, "s", time.Time{}, time.Time{})
	b, err2 := webhook.Recover(ctx, r, "s", time.Time{}, time.Time{})
	if err1 != nil || err2 != nil || a.Scheduled != 1 || b.Scheduled != 0 || b.InProgress != 1 || pub.n.Load() != 1 {
		t.Errorf("two recoveries: %+v %v, %+v %v; %d emitted", a, err1, b, err2, pub.n.Load())
	}
}

type countingPublisher struct{ n atomic.Int64 }

func (p *countingPublisher) Emit(_ context.Context, evs ...pubsub.Event) error {
	p.n.Add(int64(len(evs)))
	return nil
}
func (p *countingPublisher) Close() error { return nil }
