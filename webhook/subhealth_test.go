package webhook_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

func TestASubscriptionThatOnlyFailsIsDisabledAndSomeoneIsTold(t *testing.T) {
	down := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) })
	up := newSink(t, nil)
	notify := newSink(t, nil)
	health := &webhook.MemoryHealth{}
	h := newHarness(t, webhook.Config{Health: health, DisableAfter: 300 * time.Millisecond,
		Retry: webhook.RetryPolicy{MaxAttempts: 1000, Schedule: []time.Duration{20 * time.Millisecond}},
		// The circuit would hold retries back past the test's patience.
		Circuit: webhook.CircuitConfig{Failures: 1 << 20},
		Subscriptions: []webhook.Subscription{
			{ID: "down", Topic: "order.created", URL: down.URL},
			{ID: "up", Topic: "order.created", URL: up.URL},
			{ID: "ops", Topic: string(webhook.SubscriptionDisabledEvent), URL: notify.URL},
		}})
	h.emit(t, pubsub.NewEvent(context.Background(), "order.created", []byte(`{}`)))
	up.waitFor(t, 1)

	got := notify.waitFor(t, 1)[0]
	var n webhook.DisabledNotice
	if err := json.Unmarshal(got.Body, &n); err != nil {
		t.Fatalf("notice %s: %v", got.Body, err)
	}
	if n.SubscriptionID != "down" || n.ConsecutiveFailures < 2 || n.FailingSince.IsZero() || n.LastFailure == nil || n.LastFailure.Status != 502 || n.Reason == "" {
		t.Errorf("notice %+v", n)
	}
	if time.Since(n.FailingSince) < 300*time.Millisecond {
		t.Errorf("disabled %s after the first failure, before DisableAfter", time.Since(n.FailingSince))
	}
	states := map[string]webhook.SubscriptionHealth{}
	hs, err := h.bridge.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range hs {
		states[s.SubscriptionID] = s
	}
	if s := states["down"]; s.State != webhook.StateDisabled || s.Failed < 2 || s.Succeeded != 0 || s.LastFailure == nil {
		t.Errorf("down: %+v", s)
	}
	if s := states["up"]; s.State != webhook.StateHealthy || s.Succeeded != 1 || s.SuccessRatio() != 1 || s.LastSuccess == nil || s.P50 == 0 {
		t.Errorf("up: %+v", s)
	}
	// The waiting retry finds its subscription disabled: dead-lettered as
	// orphaned, for a replay or a recovery once it is back.
	h.until(t, "the retry dead-lettered", func() bool { return h.obs.deadOfKind(webhook.KindOrphaned) == 1 })
	if len(notify.snapshot()) != 1 {
		t.Errorf("%d notices, want 1", len(notify.snapshot()))
	}
}

func TestHealthWithoutAStoreStillHasAState(t *testing.T) {
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{
		{ID: "a", Topic: "t", URL: "http://127.0.0.1:1/"}, {ID: "b", Topic: "t", URL: "http://127.0.0.1:1/", Disabled: true},
	}})
	hs, err := h.bridge.Health(context.Background(), "b", "nope", "a")
	if err != nil || len(hs) != 2 || hs[0].State != webhook.StateDisabled || hs[1].State != webhook.StateHealthy || hs[1].LastSuccess != nil {
		t.Errorf("Health = %+v, %v", hs, err)
	}
}
