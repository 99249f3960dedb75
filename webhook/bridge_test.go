package webhook_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

func TestDeliveryRequest(t *testing.T) {
	s := newSink(t, nil)
	newHarness(t, webhook.Config{Source: "urn:test", Subscriptions: []webhook.Subscription{{
		ID: "orders", Topic: "order.created", URL: s.URL + "/hook?x=1", Secrets: webhook.Secrets{vectorSecret},
		Headers: map[string]string{"Authorization": "Bearer abc"},
	}}}).emit(t, pubsub.Event{
		ID: "evt-1", Name: "order.created", Payload: []byte(`{"order_id": 7}`),
		Meta: pubsub.Meta{CreatedAtUTC: time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC), CorrelationID: "req-1"},
	})
	h := s.waitFor(t, 1)[0]
	if string(h.Body) != `{"order_id": 7}` {
		t.Errorf("body = %q, want the payload as emitted", h.Body)
	}
	ts := h.Header.Get("Webhook-Timestamp")
	if sec, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.Unix(sec, 0)) > time.Minute {
		t.Errorf("webhook-timestamp %q is not now", ts)
	}
	if !verifyIndependently(vectorSecret, "evt-1", ts, h.Body, h.Header.Get("Webhook-Signature")) {
		t.Errorf("signature %q does not verify", h.Header.Get("Webhook-Signature"))
	}
	for k, want := range map[string]string{
		"Webhook-Id": "evt-1", "Ce-Specversion": "1.0", "Ce-Id": "evt-1", "Ce-Type": "order.created", "Ce-Source": "urn:test",
		"Ce-Time": "2026-03-04T05:06:07.000000008Z", "Content-Type": "application/json", webhook.HeaderCorrelationID: "req-1",
		webhook.HeaderAttempt: "1", webhook.HeaderSubscription: "orders", "Authorization": "Bearer abc",
	} {
		if got := h.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

func TestFiltersInTheHubStyle(t *testing.T) {
	s := newSink(t, nil)
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{
		{ID: "hub", Topic: "*", URL: s.URL + "/hub", Filter: `data["body"]["x"] == 1 and data["headers"]["y"] == "z"`},
		{ID: "typed", Topic: "user.created", URL: s.URL + "/typed", Filter: `data.body.x > 5`},
		{ID: "off", Topic: "*", URL: s.URL + "/off", Disabled: true},
	}})
	ctx := context.Background()
	events := []pubsub.Event{
		pubsub.NewEvent(ctx, "a", []byte(`{"body":{"x":1},"headers":{"y":"z"}}`)),   // hub
		pubsub.NewEvent(ctx, "a", []byte(`{"body":{"x":2},"headers":{"y":"z"}}`)),   // none
		pubsub.NewEvent(ctx, "a", []byte(`{"headers":{"y":"z"}}`)),                  // none: body absent reads as nil
		pubsub.NewEvent(ctx, "user.created", []byte(`{"body":{"x":"text"}}`)),       // typed fails at run time: no match
		pubsub.NewEvent(ctx, "user.created", []byte(`not json`)),                    // data is nil: no match
		pubsub.NewEvent(ctx, "user.created", []byte(`{"body":{"x":9}}`)),            // typed
		pubsub.NewEvent(ctx, "b", []byte(`{"body":{"x":1.0},"headers":{"y":"z"}}`)), // hub: 1.0 == 1
	}
	h.emit(t, events...)
	hits := s.waitFor(t, 3)
	got := map[string]bool{}
	for _, hit := range hits {
		got[hit.Header.Get("Webhook-Id")+" "+hit.Header.Get(webhook.HeaderSubscription)] = true
	}
	for _, want := range []string{string(events[0].ID) + " hub", string(events[5].ID) + " typed", string(events[6].ID) + " hub"} {
		if !got[want] {
			t.Errorf("delivery %q missing; got %v", want, got)
		}
	}
	// A marker through the same bridge shows nothing else is on its way.
	h.emit(t, pubsub.NewEvent(ctx, "a", []byte(`{"body":{"x":1},"headers":{"y":"z"}}`)))
	if n := len(s.waitFor(t, 4)); n != 4 {
		t.Errorf("%d deliveries, want 4", n)
	}
	// "text" > 5 fails at run time: a non-match, counted. For the payload
	// that is not JSON, nil > 5 is simply false.
	h.until(t, "the filter failure", func() bool { return h.obs.filterFailures() >= 1 })
	if n := h.obs.filterFailures(); n != 1 {
		t.Errorf("%d filter failures, want 1: a comparison with nil is false, not an error", n)
	}
}

func TestFailingTargetIsRetriedAloneUntilItSucceeds(t *testing.T) {
	flaky := newSink(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	steady := newSink(t, nil)
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{
		{ID: "flaky", Topic: "t", URL: flaky.URL},
		{ID: "steady", Topic: "t", URL: steady.URL},
	}})
	ev := pubsub.NewEvent(context.Background(), "t", []byte(`{}`))
	h.emit(t, ev)
	hits := flaky.waitFor(t, 3)
	for i, hit := range hits {
		if a := hit.Header.Get(webhook.HeaderAttempt); a != strconv.Itoa(i+1) {
			t.Errorf("flaky request %d has attempt header %q", i+1, a)
		}
		if hit.Header.Get("Webhook-Id") != string(ev.ID) {
			t.Errorf("retry %d has webhook-id %q, want the event's ID", i+1, hit.Header.Get("Webhook-Id"))
		}
	}
	// Flush: another event to steady only, after the retries.
	marker := pubsub.NewEvent(context.Background(), "t", []byte(`{}`))
	h.emit(t, marker)
	flaky.waitFor(t, 4)
	if n := len(steady.waitFor(t, 2)); n != 2 {
		t.Errorf("steady got %d requests, want 2: one per event, never again for a retry of flaky", n)
	}
	h.until(t, "flaky's two deliveries to be counted", func() bool { return h.obs.count("flaky", webhook.Delivered) == 2 })
	if n := h.obs.count("flaky", webhook.Failed); n != 2 {
		t.Errorf("flaky failures counted = %d, want 2", n)
	}
}

func TestDeadLetterAfterMaxAttemptsAndReplay(t *testing.T) {
	var healthy atomic.Bool
	s := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{{ID: "down", Topic: "t", URL: s.URL, MaxAttempts: 3}}})
	ev := pubsub.NewEvent(context.Background(), "t", []byte(`{"n":1}`))
	h.emit(t, ev)
	dls := h.deadLetters(t, 1)
	dl := dls[0]
	if dl.SubscriptionID != "down" || dl.Kind != webhook.KindExhausted || dl.Attempts != 3 || dl.LastStatus != 500 ||
		!strings.Contains(dl.LastError, "HTTP 500") || dl.Event.ID != ev.ID {
		t.Errorf("dead letter = %+v", dl)
	}
	if n := len(s.snapshot()); n != 3 {
		t.Errorf("%d requests, want 3 (max_attempts)", n)
	}

	healthy.Store(true)
	n, err := h.bridge.Replay(context.Background(), func(d webhook.DeadLetter) bool { return d.SubscriptionID == "down" })
	if err != nil || n != 1 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	hit := s.waitFor(t, 4)[3]
	if hit.Header.Get(webhook.HeaderAttempt) != "1" || string(hit.Body) != `{"n":1}` {
		t.Errorf("replayed delivery: attempt %s body %q", hit.Header.Get(webhook.HeaderAttempt), hit.Body)
	}
	if left := allDeadLetters(t, h.dead); len(left) != 0 {
		t.Errorf("dead letters after replay: %v", left)
	}
}

func TestGoneEndsRetriesAtOnce(t *testing.T) {
	s := newSink(t, status(http.StatusGone))
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{{ID: "gone", Topic: "t", URL: s.URL}}})
	h.emit(t, pubsub.NewEvent(context.Background(), "t", nil))
	dl := h.deadLetters(t, 1)[0]
	if dl.Kind != webhook.KindGone || dl.Attempts != 1 || dl.LastStatus != 410 {
		t.Errorf("dead letter after 410 = %+v, want kind gone, 1 attempt, status 410", dl)
	}
	if n := h.obs.deadOfKind(webhook.KindGone); n != 1 {
		t.Errorf("observer heard of %d gone dead letters, want 1", n)
	}
	if n := len(s.snapshot()); n != 1 {
		t.Errorf("%d requests after a 410, want 1", n)
	}
}

// A retry that finds its subscription removed, or disabled, is
// dead-lettered as orphaned, never sent.
func TestRetryOfARemovedSubscriptionIsOrphaned(t *testing.T) {
	for _, removal := range []string{"removed", "disabled"} {
		t.Run(removal, func(t *testing.T) {
			s := newSink(t, status(http.StatusServiceUnavailable))
			sub := webhook.Subscription{ID: "leaving", Topic: "t", URL: s.URL}
			h := newHarness(t, webhook.Config{
				Retry:         webhook.RetryPolicy{Schedule: []time.Duration{300 * time.Millisecond}},
				Subscriptions: []webhook.Subscription{sub},
			})
			h.emit(t, pubsub.NewEvent(context.Background(), "t", nil))
			h.until(t, "the retry to be scheduled", func() bool { return h.obs.count("leaving", webhook.Failed) == 1 })
			var subs []webhook.Subscription
			if removal == "disabled" {
				sub.Disabled = true
				subs = append(subs, sub)
			}
			if err := h.bridge.SetSubscriptions(subs); err != nil {
				t.Fatal(err)
			}
			dl := h.deadLetters(t, 1)[0]
			if dl.Kind != webhook.KindOrphaned || dl.Attempts != 1 || dl.LastStatus != http.StatusServiceUnavailable || !strings.Contains(dl.LastError, "removed or disabled") {
				t.Errorf("dead letter %+v, want kind orphaned after 1 attempt", dl)
			}
			if n := len(s.snapshot()); n != 1 {
				t.Errorf("%d requests, want 1: the retry must not be sent", n)
			}
			if n := h.obs.deadOfKind(webhook.KindOrphaned); n != 1 {
				t.Errorf("observer heard of %d orphaned dead letters, want 1", n)
			}
		})
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	target := newSink(t, nil)
	s := newSink(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	})
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{{ID: "r", Topic: "t", URL: s.URL, MaxAttempts: 1}}})
	h.emit(t, pubsub.NewEvent(context.Background(), "t", nil))
	if dl := h.deadLetters(t, 1)[0]; dl.LastStatus != http.StatusFound {
		t.Errorf("dead letter = %+v, want status 302", dl)
	}
	if n := len(target.snapshot()); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	s := newSink(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{{ID: "limited", Topic: "t", URL: s.URL}}})
	h.emit(t, pubsub.NewEvent(context.Background(), "t", nil))
	hits := s.waitFor(t, 2)
	if gap := hits[1].At.Sub(hits[0].At); gap < time.Second {
		t.Errorf("retried %s after a Retry-After of 1s", gap)
	}
}

func TestDryRunIsMatchedNotSent(t *testing.T) {
	s := newSink(t, nil)
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{{ID: "d", Topic: "t", URL: s.URL}}})
	ctx := pubsub.WithDryRun(context.Background(), true)
	h.emit(t, pubsub.NewEvent(ctx, "t", nil), pubsub.NewEvent(context.Background(), "t", []byte("real")))
	if hit := s.waitFor(t, 1)[0]; string(hit.Body) != "real" {
		t.Errorf("the dry run was sent: %q", hit.Body)
	}
	h.until(t, "the dry run to be counted", func() bool { return h.obs.count("d", webhook.DryRun) == 1 })
}

func TestCircuitHoldsDeliveriesWithoutSpendingAttempts(t *testing.T) {
	var healthy atomic.Bool
	s := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	h := newHarness(t, webhook.Config{
		Circuit:       webhook.CircuitConfig{Failures: 2, Cooldown: 500 * time.Millisecond},
		Retry:         webhook.RetryPolicy{Schedule: []time.Duration{10 * time.Millisecond}, MaxAttempts: 4},
		Subscriptions: []webhook.Subscription{{ID: "c", Topic: "t", URL: s.URL}},
	})
	first, second := pubsub.NewEvent(context.Background(), "t", nil), pubsub.NewEvent(context.Background(), "t", nil)
	h.emit(t, first)
	s.waitFor(t, 2) // two failures open the circuit
	h.until(t, "the second failure to be counted", func() bool { return h.obs.count("c", webhook.Failed) == 2 })
	// While it is open, a new event waits too, without an attempt.
	h.emit(t, second)
	h.until(t, "the second event to be deferred", func() bool { return h.obs.count("c", webhook.Deferred) >= 1 })
	healthy.Store(true)
	hits := s.waitFor(t, 4)
	byID := map[string]hit{}
	for _, hit := range hits[2:] {
		byID[hit.Header.Get("Webhook-Id")] = hit
	}
	third, ok := byID[string(first.ID)]
	if !ok {
		t.Fatalf("no third attempt of the first event among %v", attempts(hits))
	}
	if gap := third.At.Sub(hits[1].At); gap < 400*time.Millisecond {
		t.Errorf("third attempt came %s after the circuit opened, want it to wait for the cooldown", gap)
	}
	if a := third.Header.Get(webhook.HeaderAttempt); a != "3" {
		t.Errorf("attempt after the circuit = %s, want 3: waiting must not spend attempts", a)
	}
	if a := byID[string(second.ID)].Header.Get(webhook.HeaderAttempt); a != "1" {
		t.Errorf("the deferred event's first request has attempt %q, want 1", a)
	}
}

func TestSlowEndpointDoesNotHoldOthers(t *testing.T) {
	release := make(chan struct{})
	slow := newSink(t, func(int, *http.Request, http.ResponseWriter) { <-release })
	defer close(release)
	fast := newSink(t, nil)
	h := newHarness(t, webhook.Config{
		PerEndpoint: 1, SlotWait: 10 * time.Millisecond,
		Subscriptions: []webhook.Subscription{{ID: "slow", Topic: "slow", URL: slow.URL}, {ID: "fast", Topic: "fast", URL: fast.URL}},
	})
	ctx := context.Background()
	for range 5 {
		h.emit(t, pubsub.NewEvent(ctx, "slow", nil))
	}
	for range 20 {
		h.emit(t, pubsub.NewEvent(ctx, "fast", nil))
	}
	slow.waitFor(t, 1)
	fast.waitFor(t, 20)
	if n := len(slow.snapshot()); n != 1 {
		t.Errorf("the slow endpoint has %d requests in flight, want 1 (PerEndpoint)", n)
	}
}

func TestConfigAndSubscriptionErrors(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	for _, tc := range []struct {
		sub  webhook.Subscription
		want string
	}{
		{webhook.Subscription{Topic: "t", URL: "http://x"}, "subscription without an id"},
		{webhook.Subscription{ID: "a", URL: "http://x"}, `subscription "a": topic is empty`},
		{webhook.Subscription{ID: "a", Topic: "t", URL: "ftp://x"}, `subscription "a": url "ftp://x": scheme must be http or https`},
		{webhook.Subscription{ID: "a", Topic: "t", URL: "http://x:99999/hook"}, `subscription "a": url "http://x:99999/hook": port 99999 is not between 1 and 65535`},
		{webhook.Subscription{ID: "a", Topic: "t", URL: "http://x:0/hook"}, `port 0 is not between 1 and 65535`},
		{webhook.Subscription{ID: "a", Topic: "t", URL: "http://:8080/hook"}, `has no host`},
		{webhook.Subscription{ID: "a", Topic: "t", URL: "http://x", Filter: "data.x =="}, `subscription "a": filter: unexpected token EOF`},
		{webhook.Subscription{ID: "a", Topic: "t", URL: "http://x", Filter: `"text"`}, `subscription "a": filter: expected bool, but got string`},
		{webhook.Subscription{ID: "a", Topic: "t", URL: "http://x", Secrets: webhook.Secrets{"whsec_???"}}, `subscription "a": secret 1: not a Standard Webhooks secret`},
	} {
		err := h.bridge.SetSubscriptions([]webhook.Subscription{tc.sub})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetSubscriptions(%+v) = %v, want %q", tc.sub, err, tc.want)
		}
		if strings.Contains(err.Error(), "whsec_???") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
	ok := webhook.Subscription{ID: "a", Topic: "t", URL: "http://x"}
	if err := h.bridge.SetSubscriptions([]webhook.Subscription{ok, ok}); err == nil || !strings.Contains(err.Error(), `two subscriptions have the id "a"`) {
		t.Errorf("duplicate ids: %v", err)
	}
	if _, err := webhook.New(webhook.Config{}); err == nil || !strings.Contains(err.Error(), "Config.Subscriber is required") {
		t.Errorf("New without a subscriber: %v", err)
	}
}

func TestSlowTargetTimesOutAndIsRetried(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := newSink(t, func(n int, r *http.Request, w http.ResponseWriter) {
		if n == 1 {
			select { // slower than the subscription's timeout
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{{ID: "slow", Topic: "t", URL: s.URL, Timeout: webhook.Duration(100 * time.Millisecond)}}})
	h.emit(t, pubsub.NewEvent(context.Background(), "t", nil))
	hits := s.waitFor(t, 2)
	if hits[1].Header.Get(webhook.HeaderAttempt) != "2" {
		t.Errorf("second request has attempt %s, want 2", hits[1].Header.Get(webhook.HeaderAttempt))
	}
	h.until(t, "the timeout to be counted", func() bool { return h.obs.count("slow", webhook.Failed) == 1 })
}

// TestTargetThroughItsPhases puts one endpoint through being down, slow,
// rate-limited and finally healthy, then gone: the delivery arrives once
// it recovers, the circuit opens and closes, nothing is retried sooner
// than allowed, and 410 ends a later event's retries at once.
func TestTargetThroughItsPhases(t *testing.T) {
	s := newSink(t, func(n int, r *http.Request, w http.ResponseWriter) {
		switch {
		case r.URL.Path == "/gone":
			w.WriteHeader(http.StatusGone)
		case n <= 3: // down
			w.WriteHeader(http.StatusServiceUnavailable)
		case n == 4: // slow: beyond the 100ms timeout
			<-r.Context().Done()
		case n == 5: // rate-limited
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		default: // recovered
		}
	})
	h := newHarness(t, webhook.Config{
		Circuit: webhook.CircuitConfig{Failures: 3, Cooldown: 300 * time.Millisecond},
		Retry:   webhook.RetryPolicy{Schedule: []time.Duration{20 * time.Millisecond}, MaxAttempts: 8},
		Subscriptions: []webhook.Subscription{
			{ID: "phases", Topic: "t", URL: s.URL + "/hook", Timeout: webhook.Duration(100 * time.Millisecond)},
			{ID: "gone", Topic: "g", URL: s.URL + "/gone"},
		},
	})
	ev := pubsub.NewEvent(context.Background(), "t", []byte(`{"n":1}`))
	h.emit(t, ev)
	hits := s.waitFor(t, 6)
	if gap := hits[3].At.Sub(hits[2].At); gap < 250*time.Millisecond {
		t.Errorf("after 3 failures the next attempt came %s later; the open circuit should hold it ~300ms", gap)
	}
	if gap := hits[5].At.Sub(hits[4].At); gap < time.Second {
		t.Errorf("retried %s after a 429 with Retry-After: 1", gap)
	}
	if got := strings.Join(attempts(hits), ","); got != "1,2,3,4,5,6" {
		t.Errorf("attempt headers %s: waiting for the circuit must not spend attempts", got)
	}
	h.until(t, "the recovered delivery", func() bool { return h.obs.count("phases", webhook.Delivered) == 1 })

	h.emit(t, pubsub.NewEvent(context.Background(), "g", nil))
	dl := h.deadLetters(t, 1)[0]
	if dl.SubscriptionID != "gone" || dl.Attempts != 1 || dl.LastStatus != http.StatusGone {
		t.Errorf("after 410: %+v", dl)
	}
	// Nothing more for the first event: a marker to the same endpoint
	// arrives next.
	marker := pubsub.NewEvent(context.Background(), "t", []byte(`{"marker":true}`))
	h.emit(t, marker)
	last := s.waitFor(t, 8)[7]
	if last.Header.Get("Webhook-Id") != string(marker.ID) {
		t.Errorf("request 8 is for %s, want the marker", last.Header.Get("Webhook-Id"))
	}
}

func attempts(hits []hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.Header.Get(webhook.HeaderAttempt))
	}
	return out
}
