package webhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/webhook"
)

// runHealthSuite checks what every HealthStore promises; mk returns an
// empty store.
func runHealthSuite(t *testing.T, mk func(t *testing.T) webhook.HealthStore) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC)
	ok := func(sub string, at time.Time, took time.Duration) webhook.HealthSample {
		return webhook.HealthSample{SubscriptionID: sub, At: at, Kind: webhook.Succeeded, Status: 200, Took: took}
	}
	fail := func(sub string, at time.Time, status int, err string) webhook.HealthSample {
		return webhook.HealthSample{SubscriptionID: sub, At: at, Kind: webhook.FailedSample, Status: status, Took: 3 * time.Millisecond, Error: err}
	}
	stats := func(t *testing.T, h webhook.HealthStore, now time.Time, id string) webhook.HealthStats {
		t.Helper()
		m, err := h.Stats(ctx, now, id)
		if err != nil {
			t.Fatal(err)
		}
		return m[id]
	}
	observe := func(t *testing.T, h webhook.HealthStore, samples ...webhook.HealthSample) {
		t.Helper()
		if err := h.Observe(ctx, samples); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("FailuresInARowAcrossBatches", func(t *testing.T) {
		h := mk(t)
		observe(t, h, ok("s", t0, 2*time.Millisecond), fail("s", t0.Add(time.Second), 500, "HTTP 500"))
		observe(t, h, fail("s", t0.Add(2*time.Second), 0, "timed out"), webhook.HealthSample{SubscriptionID: "s", At: t0.Add(3 * time.Second), Kind: webhook.Limited})
		st := stats(t, h, t0.Add(time.Minute), "s")
		if st.ConsecutiveFailures != 2 || !st.FailingSince.Equal(t0.Add(time.Second)) {
			t.Errorf("consecutive %d since %s, want 2 since %s", st.ConsecutiveFailures, st.FailingSince, t0.Add(time.Second))
		}
		if st.LastSuccess == nil || !st.LastSuccess.At.Equal(t0) || st.LastSuccess.Status != 200 {
			t.Errorf("last success %+v", st.LastSuccess)
		}
		if st.LastFailure == nil || !st.LastFailure.At.Equal(t0.Add(2*time.Second)) || st.LastFailure.Error != "timed out" || st.LastFailure.Status != 0 {
			t.Errorf("last failure %+v", st.LastFailure)
		}
		if st.Succeeded != 1 || st.Failed != 2 || st.RateLimited != 1 || st.SuccessRatio() != 1.0/3 {
			t.Errorf("window %d ok, %d failed, %d limited", st.Succeeded, st.Failed, st.RateLimited)
		}
		observe(t, h, fail("s", t0.Add(4*time.Second), 502, "x"), ok("s", t0.Add(5*time.Second), time.Millisecond))
		if st := stats(t, h, t0.Add(time.Minute), "s"); st.ConsecutiveFailures != 0 || !st.FailingSince.IsZero() || !st.LastSuccess.At.Equal(t0.Add(5*time.Second)) {
			t.Errorf("after a success: %+v", st)
		}
		observe(t, h, ok("s", t0.Add(6*time.Second), time.Millisecond), fail("s", t0.Add(7*time.Second), 503, "y"))
		if st := stats(t, h, t0.Add(time.Minute), "s"); st.ConsecutiveFailures != 1 || !st.FailingSince.Equal(t0.Add(7*time.Second)) {
			t.Errorf("a failure after a success in one batch: %+v", st)
		}
	})
	t.Run("AnHourWindowAndPercentiles", func(t *testing.T) {
		h := mk(t)
		var samples []webhook.HealthSample
		for i := range 98 {
			samples = append(samples, ok("p", t0.Add(time.Duration(i)*time.Second), 3*time.Millisecond))
		}
		samples = append(samples, ok("p", t0, 700*time.Millisecond), ok("p", t0, 2*time.Hour))
		observe(t, h, samples...)
		st := stats(t, h, t0.Add(10*time.Minute), "p")
		if st.Succeeded != 100 || st.P50 != 5*time.Millisecond || st.P99 != time.Second {
			t.Errorf("100 successes: %d, p50 %s, p99 %s; want p50 5ms, p99 1s", st.Succeeded, st.P50, st.P99)
		}
		old := stats(t, h, t0.Add(2*time.Hour), "p")
		if old.Succeeded != 0 || old.P50 != 0 || old.SuccessRatio() != -1 || old.LastSuccess == nil {
			t.Errorf("past the window: %+v (the last success stays)", old)
		}
	})
	t.Run("UnknownAndForgotten", func(t *testing.T) {
		h := mk(t)
		observe(t, h, fail("gone", t0, 500, "x"))
		if err := h.Forget(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		m, err := h.Stats(ctx, t0, "gone", "never")
		if err != nil || len(m) != 0 {
			t.Errorf("Stats of forgotten and unknown: %v, %v", m, err)
		}
	})
}

func TestMemoryHealth(t *testing.T) {
	runHealthSuite(t, func(t *testing.T) webhook.HealthStore { return &webhook.MemoryHealth{} })
}
