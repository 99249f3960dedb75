package webhook_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// TestAdv6FailuresCountedLateDoNotOutweighALaterSuccess: replicas write
// their samples in their own batches, so failures that ended an hour ago
// may be counted after a success of a moment ago. The subscription did
// not fail for DisableAfter: one more failure must not disable it. The
// same failures without the success do (and DisableAfter < 0 never does).
func TestAdv6FailuresCountedLateDoNotOutweighALaterSuccess(t *testing.T) {
	for _, c := range []struct {
		name         string
		success      bool
		disableAfter time.Duration
		disabled     bool
	}{
		{"a success a moment ago", true, time.Minute, false},
		{"no success", false, time.Minute, true},
		{"never disable", false, -1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			health := &webhook.MemoryHealth{}
			now := time.Now()
			if c.success {
				if err := health.Observe(ctx, []webhook.HealthSample{{SubscriptionID: "s", At: now.Add(-10 * time.Millisecond), Kind: webhook.Succeeded, Status: 200}}); err != nil {
					t.Fatal(err)
				}
			}
			// Counted after the success, though they ended before it.
			if err := health.Observe(ctx, []webhook.HealthSample{{SubscriptionID: "s", At: now.Add(-time.Hour), Kind: webhook.FailedSample, Status: 500}}); err != nil {
				t.Fatal(err)
			}
			s := newSink(t, httpStatus(http.StatusInternalServerError))
			log, _ := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
			h := newHarness(t, webhook.Config{AttemptLog: log, Health: health, DisableAfter: c.disableAfter,
				Retry:         webhook.RetryPolicy{MaxAttempts: 1, Schedule: []time.Duration{time.Millisecond}},
				Subscriptions: []webhook.Subscription{{ID: "s", Topic: "t", URL: s.URL}}})
			h.emit(t, pubsub.NewEvent(ctx, "t", []byte(`{}`)))
			// The recorder checks for subscriptions to disable before it
			// writes the log.
			h.until(t, "the attempt logged", func() bool {
				h.obs.mu.Lock()
				defer h.obs.mu.Unlock()
				return h.obs.logged >= 1
			})
			hs, err := h.bridge.Health(ctx, "s")
			if err != nil || len(hs) != 1 {
				t.Fatal(hs, err)
			}
			if got := hs[0].State == webhook.StateDisabled; got != c.disabled {
				t.Errorf("disabled: %v, want %v (%+v)", got, c.disabled, hs[0])
			}
		})
	}
}
