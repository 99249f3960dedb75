package webhook_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// TestAdversary2ReplayKeepsOrphansThatStillCannotGo: the dead-letter kinds
// table says orphaned dead letters are replayed by `dlq replay` "yes, once
// the subscription exists and matches again", as undeliverable ones are
// only "when the event itself is deliverable". An orphan whose subscription
// is still gone, or still does not match, is replayed anyway: it comes
// straight back as a new orphan that has lost its history (attempts,
// last_status, last_error, at) and its id.
func TestAdversary2ReplayKeepsOrphansThatStillCannotGo(t *testing.T) {
	s := newSink(t, nil)
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{
		{ID: "picky", Topic: "order.created", URL: s.URL, Filter: "data.total > 100"},
	}})
	ctx := context.Background()
	orig := []webhook.DeadLetter{
		{SubscriptionID: "deleted", Kind: webhook.KindOrphaned, Attempts: 3, LastStatus: 502,
			LastError: `subscription "deleted" was removed or disabled while a retry waited (last: HTTP 502)`,
			Event:     pubsub.Event{ID: "ev-1", Name: "order.created", Payload: []byte(`{"total":500}`)}},
		{SubscriptionID: "picky", Kind: webhook.KindOrphaned, Attempts: 2, LastStatus: 503,
			LastError: `subscription "picky" no longer matches the event`,
			Event:     pubsub.Event{ID: "ev-2", Name: "order.created", Payload: []byte(`{"total":5}`)}},
	}
	for _, dl := range orig {
		if err := h.dead.Add(ctx, dl); err != nil {
			t.Fatal(err)
		}
	}
	before := allDeadLetters(t, h.dead)
	n, err := h.bridge.Replay(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("replay of 2 orphans whose subscription is gone or still does not match: %d replayed, want 0 (they stay listed)", n)
	}
	// What came of them: wait until both are dead letters again.
	var after []webhook.DeadLetter
	h.until(t, "the orphans listed again", func() bool {
		after = allDeadLetters(t, h.dead)
		return len(after) >= 2
	})
	for i, dl := range after {
		if i >= len(before) {
			break
		}
		b := before[i]
		if dl.ID != b.ID || dl.Attempts != b.Attempts || dl.LastStatus != b.LastStatus || dl.LastError != b.LastError {
			t.Errorf("orphan of %q for %q: was {id %s, attempts %d, last_status %d, %q}, after a replay {id %s, attempts %d, last_status %d, %q}",
				b.Event.ID, b.SubscriptionID, b.ID, b.Attempts, b.LastStatus, b.LastError, dl.ID, dl.Attempts, dl.LastStatus, dl.LastError)
		}
	}
	if got := len(s.snapshot()); got != 0 {
		t.Errorf("%d deliveries", got)
	}
}

// TestAdversary2ConsumedCountsMatchWhatHappened: 100 events, 40 matched
// (half of them failing once, so retries travel), 30 filtered out, 30
// unmatched: webhook_bridge_events_consumed_total counts events read from
// the stream, retries excluded.
func TestAdversary2ConsumedCountsMatchWhatHappened(t *testing.T) {
	var n atomic.Int64
	s := newSink(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		if r.Header.Get("webhook-attempt") == "1" && n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	h := newHarness(t, webhook.Config{
		Circuit: webhook.CircuitConfig{Failures: 1000},
		Subscriptions: []webhook.Subscription{
			{ID: "big", Topic: "order", URL: s.URL, Filter: "data.total > 100"},
			{ID: "also-big", Topic: "order", URL: s.URL, Filter: "data.total > 1000"},
		}})
	var evs []pubsub.Event
	for i := range 100 {
		switch {
		case i < 40:
			evs = append(evs, pubsub.Event{ID: pubsub.ID(fmt.Sprintf("m%d", i)), Name: "order", Payload: []byte(`{"total":500}`)})
		case i < 70:
			evs = append(evs, pubsub.Event{ID: pubsub.ID(fmt.Sprintf("f%d", i)), Name: "order", Payload: []byte(`{"total":5}`)})
		default:
			evs = append(evs, pubsub.Event{ID: pubsub.ID(fmt.Sprintf("u%d", i)), Name: "other", Payload: []byte(`{}`)})
		}
	}
	h.emit(t, evs...)
	s.waitFor(t, 60) // 40 deliveries, 20 of them after one retry
	h.until(t, "100 consumed", func() bool { return len(h.obs.consumedEvents()) >= 100 })
	var matched, filtered, unmatched int
	for _, c := range h.obs.consumedEvents() {
		switch {
		case c.matched > 0:
			matched++
		case c.filteredOut > 0:
			filtered++
		default:
			unmatched++
		}
	}
	if matched != 40 || filtered != 30 || unmatched != 30 {
		t.Errorf("consumed: matched %d, filtered_out %d, unmatched %d; want 40, 30, 30", matched, filtered, unmatched)
	}
}

// TestAdversary2CircuitLinesOncePerTransition: 64 deliveries at once to an
// endpoint that fails, then answers again: one "circuit open", one
// "half-open" probe and one "circuit closed" line, whatever the
// concurrency.
func TestAdversary2CircuitLinesOncePerTransition(t *testing.T) {
	var healthy atomic.Bool
	s := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	logs := &logRecorder{}
	h := newHarness(t, webhook.Config{
		Logger:      slog.New(logs),
		PerEndpoint: 64,
		Circuit:     webhook.CircuitConfig{Failures: 5, Cooldown: 300 * time.Millisecond},
		Retry:       webhook.RetryPolicy{Schedule: []time.Duration{50 * time.Millisecond}, MaxAttempts: 100},
		// 16 events at once (the harness's concurrency), each to 4
		// subscriptions of the endpoint: 64 deliveries at once.
		Subscriptions: []webhook.Subscription{{ID: "s", Topic: "t", URL: s.URL}, {ID: "s2", Topic: "t", URL: s.URL + "/2"},
			{ID: "s3", Topic: "t", URL: s.URL + "/3"}, {ID: "s4", Topic: "t", URL: s.URL + "/4"}},
	})
	var evs []pubsub.Event
	for i := range 64 {
		evs = append(evs, pubsub.Event{ID: pubsub.ID(fmt.Sprintf("e%d", i)), Name: "t", Payload: []byte(`{}`)})
	}
	h.emit(t, evs...)
	// Every delivery admitted before the circuit opened has failed.
	h.until(t, "the circuit open and nothing in flight", func() bool {
		return h.obs.count("s", webhook.Failed)+h.obs.count("s2", webhook.Failed)+h.obs.count("s3", webhook.Failed)+h.obs.count("s4", webhook.Failed) >= 5 &&
			h.bridge.InFlight() == 0
	})
	healthy.Store(true)
	h.until(t, "256 delivered", func() bool {
		return h.obs.count("s", webhook.Delivered)+h.obs.count("s2", webhook.Delivered)+h.obs.count("s3", webhook.Delivered)+h.obs.count("s4", webhook.Delivered) >= 256
	})
	opened := len(logs.lines("circuit open, deliveries"))
	half := len(logs.lines("circuit half-open"))
	closed := len(logs.lines("circuit closed"))
	// On a loaded machine the cooldown may end before the endpoint turns
	// healthy: that probe fails and opens the circuit again, a second
	// transition with its own lines. What must hold is one line per
	// transition: each opening followed by one probe, one closing.
	if opened < 1 || half != opened || closed != 1 {
		t.Errorf("one failing streak, one recovery: %d open, %d half-open, %d closed lines; want one half-open per open and 1 closed", opened, half, closed)
	}
}

// TestAdversary2RetryInIsTheRealWait measures the time between a failed
// attempt and its retry against the retry_in the warning logged.
func TestAdversary2RetryInIsTheRealWait(t *testing.T) {
	var mu sync.Mutex
	arrivals := map[string]time.Time{}
	s := newSink(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		mu.Lock()
		arrivals[r.Header.Get("webhook-attempt")] = time.Now()
		mu.Unlock()
		if r.Header.Get("webhook-attempt") == "1" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	logs := &logRecorder{}
	h := newHarness(t, webhook.Config{
		Logger:        slog.New(logs),
		Retry:         webhook.RetryPolicy{Schedule: []time.Duration{700 * time.Millisecond}, MaxAttempts: 3},
		Subscriptions: []webhook.Subscription{{ID: "s", Topic: "t", URL: s.URL}},
	})
	h.emit(t, pubsub.Event{ID: "e", Name: "t", Payload: []byte(`{}`)})
	s.waitFor(t, 2)
	lines := logs.lines("retry scheduled")
	if len(lines) != 1 {
		t.Fatalf("%d retry lines", len(lines))
	}
	logged, err := time.ParseDuration(lines[0].attrs["retry_in"])
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	real := arrivals["2"].Sub(arrivals["1"])
	mu.Unlock()
	if d := real - logged; d < -50*time.Millisecond || d > 150*time.Millisecond {
		t.Errorf("retry_in=%s logged, the retry came %s after the attempt", logged, real)
	}
}

// TestAdversary2HugeRetryAfterIsCappedNotWrapped: "on 429 and 5xx a
// Retry-After (seconds or a date, at most 24h) sets the wait instead". A
// receiver asking for more than 24h gets 24h. Seconds past what a
// time.Duration holds wrap around: 18446744074 s becomes a wait of about
// 0.29 s (the receiver asking to be left alone is hammered), 9223372037 s
// a negative one (the schedule's wait instead of 24h).
func TestAdversary2HugeRetryAfterIsCappedNotWrapped(t *testing.T) {
	for _, ra := range []string{"100000", "9223372037", "18446744074", "99999999999999"} {
		t.Run(ra, func(t *testing.T) {
			s := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
				w.Header().Set("Retry-After", ra)
				w.WriteHeader(http.StatusServiceUnavailable)
			})
			logs := &logRecorder{}
			h := newHarness(t, webhook.Config{
				Logger:        slog.New(logs),
				Retry:         webhook.RetryPolicy{Schedule: []time.Duration{time.Hour}, MaxAttempts: 3},
				Subscriptions: []webhook.Subscription{{ID: "s", Topic: "t", URL: s.URL}},
			})
			h.emit(t, pubsub.Event{ID: "e", Name: "t", Payload: []byte(`{}`)})
			h.until(t, "the retry scheduled", func() bool { return len(logs.lines("retry scheduled")) > 0 })
			got, err := time.ParseDuration(logs.lines("retry scheduled")[0].attrs["retry_in"])
			if err != nil {
				t.Fatal(err)
			}
			if got < 24*time.Hour-time.Second || got > 24*time.Hour {
				t.Errorf("Retry-After: %s → retry_in=%s, want 24h (the cap)", ra, got)
			}
		})
	}
}
