package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
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
	// Each once, as a fresh delivery, one after another in the order
	// they were made.
	hits := s.waitFor(t, 6)[3:]
	for i, want := range []pubsub.Event{e1, e2, e3} {
		if got := hits[i].Header.Get("Webhook-Id"); got != webhook.MessageID(want.ID) || hits[i].Header.Get("Webhook-Attempt") != "1" {
			t.Errorf("recovered delivery %d: %s attempt %s, want %s attempt 1", i, got, hits[i].Header.Get("Webhook-Attempt"), want.ID)
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
	if err1 != nil || err2 != nil || a.Scheduled != 1 || b.Scheduled != 0 || b.InProgress != 1 || pub.n.Load() != 1 { // one recovery event
		t.Errorf("two recoveries: %+v %v, %+v %v; %d emitted", a, err1, b, err2, pub.n.Load())
	}
}

type countingPublisher struct{ n atomic.Int64 }

func (p *countingPublisher) Emit(_ context.Context, evs ...pubsub.Event) error {
	p.n.Add(int64(len(evs)))
	return nil
}
func (p *countingPublisher) Close() error { return nil }

func TestRecoverSendsManyInOrderAcrossLinks(t *testing.T) {
	s := newSink(t, nil)
	log, _ := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	h := newHarness(t, webhook.Config{AttemptLog: log, Subscriptions: []webhook.Subscription{{ID: "s", Topic: "t", URL: s.URL}}})
	ctx := context.Background()
	const n = 250
	t0 := time.Now().Add(-time.Minute)
	var batch webhook.AttemptBatch
	var want []string
	// Recorded newest first, so that the log's order is not the answer.
	for i := n - 1; i >= 0; i-- {
		ev := pubsub.Event{ID: pubsub.ID(fmt.Sprintf("e%03d", i)), Name: "t", Payload: []byte(`{}`),
			Meta: pubsub.Meta{CreatedAtUTC: t0.Add(time.Duration(i) * time.Millisecond)}}
		batch.Events = append(batch.Events, ev)
		batch.Attempts = append(batch.Attempts, webhook.Attempt{EventID: ev.ID, EventName: "t", SubscriptionID: "s", Attempt: 3,
			At: time.Now(), Outcome: webhook.DeadLettered, Status: 500})
	}
	for i := range n {
		want = append(want, webhook.MessageID(pubsub.ID(fmt.Sprintf("e%03d", i))))
	}
	if err := log.Record(ctx, batch); err != nil {
		t.Fatal(err)
	}
	rep, err := h.bridge.Recover(ctx, "s", time.Time{}, time.Time{})
	if err != nil || rep.Scheduled != n {
		t.Fatalf("Recover = %+v, %v", rep, err)
	}
	var got []string
	for _, hit := range s.waitFor(t, n) {
		got = append(got, hit.Header.Get("Webhook-Id"))
	}
	if !slices.Equal(got, want) {
		t.Errorf("delivered in the order %v, want %v", got, want)
	}
}

// A recovery event handled twice in a row (a lost acknowledgement) sends
// each event once: every attempt is in the log before the next is sent,
// and before the handling returns.
func TestARecoveryHandledTwiceSendsEachOnce(t *testing.T) {
	s := newSink(t, nil)
	log, _ := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	h := newHarness(t, webhook.Config{AttemptLog: log, Subscriptions: []webhook.Subscription{{ID: "s", Topic: "t", URL: s.URL}}})
	ctx := context.Background()
	var batch webhook.AttemptBatch
	for i := range 20 {
		ev := pubsub.Event{ID: pubsub.ID(fmt.Sprintf("e%02d", i)), Name: "t", Payload: []byte(`{}`),
			Meta: pubsub.Meta{CreatedAtUTC: time.Now().Add(time.Duration(i) * time.Millisecond)}}
		batch.Events = append(batch.Events, ev)
		batch.Attempts = append(batch.Attempts, webhook.Attempt{EventID: ev.ID, EventName: "t", SubscriptionID: "s", Attempt: 1,
			At: time.Now(), Outcome: webhook.DeadLettered, Status: 500})
	}
	if err := log.Record(ctx, batch); err != nil {
		t.Fatal(err)
	}
	pub := &capturePublisher{}
	if rep, err := webhook.Recover(ctx, webhook.Recovery{Log: log, Publisher: pub}, "s", time.Time{}, time.Time{}); err != nil || rep.Scheduled != 20 {
		t.Fatalf("Recover = %+v, %v", rep, err)
	}
	link := pub.evs[0]
	for range 2 {
		if err := h.bridge.Handle(ctx, link); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	for _, hit := range s.waitFor(t, 20) {
		got[hit.Header.Get("Webhook-Id")]++
	}
	if len(s.snapshot()) != 20 || len(got) != 20 {
		t.Errorf("%d deliveries of %d events, want 20 once each", len(s.snapshot()), len(got))
	}
}

type capturePublisher struct{ evs []pubsub.Event }

func (p *capturePublisher) Emit(_ context.Context, evs ...pubsub.Event) error {
	p.evs = append(p.evs, evs...)
	return nil
}
func (p *capturePublisher) Close() error { return nil }
