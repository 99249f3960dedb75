package webhook_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// logged waits until the log holds n attempts selected by q, and returns
// them newest first.
func (h *harness) logged(t *testing.T, l webhook.AttemptLog, q webhook.AttemptQuery, n int) []webhook.Attempt {
	t.Helper()
	var got []webhook.Attempt
	h.until(t, "logged attempts", func() bool {
		got = walkAttempts(t, l, q, nil)
		return len(got) >= n
	})
	if len(got) != n {
		t.Fatalf("the log holds %d attempts for %+v, want %d: %+v", len(got), q, n, got)
	}
	return got
}

func TestEveryAttemptIsLoggedWithWhatCameBack(t *testing.T) {
	s := newSink(t, func(n int, r *http.Request, w http.ResponseWriter) {
		w.Header().Set("X-Receiver", "r1")
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("<script>alert('down')</script>" + strings.Repeat("x", 100)))
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("thanks"))
	})
	log, err := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, webhook.Config{AttemptLog: log, ResponseBodyBytes: 40, Subscriptions: []webhook.Subscription{{
		ID: "s1", Topic: "order.created", URL: s.URL + "/hook?k=v", Secrets: webhook.Secrets{vectorSecret},
		Headers: map[string]string{"Authorization": "Bearer very-secret"},
	}}})
	ev := pubsub.NewEvent(context.Background(), "order.created", []byte(`{"id":7}`))
	h.emit(t, ev)
	got := h.logged(t, log, webhook.AttemptQuery{EventID: ev.ID}, 2)
	ok, failed := got[0], got[1]
	if failed.Outcome != webhook.Failed || failed.Attempt != 1 || failed.Status != 503 || !failed.ResponseBodyTruncated ||
		failed.ResponseBody != "<script>alert('down')</script>xxxxxxxxxx" || failed.ResponseHeaders.Get("X-Receiver") != "r1" {
		t.Errorf("the failed attempt: %+v", failed)
	}
	if ok.Outcome != webhook.Delivered || ok.Attempt != 2 || ok.Status != 202 || ok.ResponseBody != "thanks" || ok.ResponseBodyTruncated {
		t.Errorf("the delivered attempt: %+v", ok)
	}
	for _, a := range got {
		if a.SubscriptionID != "s1" || a.EventName != "order.created" || a.URL != s.URL+"/hook?k=v" || a.At.IsZero() || a.Duration <= 0 {
			t.Errorf("attempt %+v", a)
		}
		if a.RequestHeaders.Get("Webhook-Id") != webhook.MessageID(ev.ID) || !strings.HasPrefix(a.RequestHeaders.Get("Webhook-Signature"), "v1,") {
			t.Errorf("request headers %v", a.RequestHeaders)
		}
		if v := a.RequestHeaders.Get("Authorization"); v != "[redacted]" {
			t.Errorf("a subscription's header is logged as %q", v)
		}
	}
	sent := s.waitFor(t, 2)
	if sent[0].Header.Get("Authorization") != "Bearer very-secret" {
		t.Error("redacting the log changed what was sent")
	}
	back, err := log.Event(context.Background(), ev.ID)
	if err != nil || string(back.Payload) != `{"id":7}` || back.Name != ev.Name {
		t.Errorf("the event: %+v, %v", back, err)
	}
}

func TestDeadLettersTimeoutsAndDryRunsAreLogged(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := newSink(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	gone := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	log, _ := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	h := newHarness(t, webhook.Config{AttemptLog: log, Timeout: 50 * time.Millisecond,
		Retry:         webhook.RetryPolicy{MaxAttempts: 2, Schedule: []time.Duration{time.Millisecond}},
		Subscriptions: []webhook.Subscription{{ID: "slow", Topic: "t", URL: slow.URL}, {ID: "gone", Topic: "t", URL: gone.URL}}})
	ev := pubsub.NewEvent(context.Background(), "t", []byte(`{}`))
	h.emit(t, ev)
	slowAttempts := h.logged(t, log, webhook.AttemptQuery{SubscriptionID: "slow"}, 2)
	if a := slowAttempts[1]; a.Outcome != webhook.TimedOut || a.Attempt != 1 || a.Error != "timed out" {
		t.Errorf("first attempt at a hanging endpoint: %+v", a)
	}
	if a := slowAttempts[0]; a.Outcome != webhook.DeadLettered || a.Attempt != 2 || !strings.Contains(a.Error, "timed out") {
		t.Errorf("last attempt at a hanging endpoint: %+v", a)
	}
	if a := h.logged(t, log, webhook.AttemptQuery{SubscriptionID: "gone"}, 1)[0]; a.Outcome != webhook.DeadLettered || a.Status != 410 || a.Attempt != 1 {
		t.Errorf("a 410: %+v", a)
	}
	if got := h.logged(t, log, webhook.AttemptQuery{Outcome: webhook.DeadLettered}, 2); len(got) != 2 {
		t.Errorf("by outcome: %+v", got)
	}
	dry := pubsub.NewEvent(pubsub.WithDryRun(context.Background(), true), "t", []byte(`{}`))
	h.emit(t, dry)
	for _, a := range h.logged(t, log, webhook.AttemptQuery{EventID: dry.ID}, 2) {
		if a.Outcome != webhook.DryRun || a.Attempt != 0 || a.Status != 0 {
			t.Errorf("a dry run: %+v", a)
		}
	}
}

func TestEventsOfADisabledSubscriptionAreLoggedSkipped(t *testing.T) {
	s := newSink(t, nil)
	log, _ := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	h := newHarness(t, webhook.Config{AttemptLog: log, Subscriptions: []webhook.Subscription{
		{ID: "on", Topic: "t", URL: s.URL},
		{ID: "off", Topic: "t", URL: s.URL, Disabled: true},
		{ID: "off-other", Topic: "t", Filter: `data.n == 2`, URL: s.URL, Disabled: true},
	}})
	ev := pubsub.NewEvent(context.Background(), "t", []byte(`{"n":1}`))
	h.emit(t, ev)
	s.waitFor(t, 1)
	got := h.logged(t, log, webhook.AttemptQuery{Outcome: webhook.Skipped}, 1)
	if a := got[0]; a.SubscriptionID != "off" || a.EventID != ev.ID || a.Attempt != 0 || a.Error != "subscription disabled" {
		t.Errorf("skipped: %+v", a)
	}
	if _, err := log.Event(context.Background(), ev.ID); err != nil {
		t.Errorf("the skipped event is not kept for recovery: %v", err)
	}
}
