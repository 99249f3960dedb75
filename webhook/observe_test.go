package webhook_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// EventConsumed is told, once per source event and never for a retry,
// how many subscriptions it was routed to and how many its filters kept
// it from.
func TestEventConsumedCountsMatchesAndFilteredOut(t *testing.T) {
	s := newSink(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 1 { // a retry follows
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{
		{ID: "big", Topic: "t", URL: s.URL, Filter: `data.n > 1`},
		{ID: "all-t", Topic: "t", URL: s.URL},
		{ID: "typed", Topic: "*", URL: s.URL, Filter: `data.n > "x"`}, // fails on numbers
		{ID: "other", Topic: "other", URL: s.URL},
		{ID: "off", Topic: "t", URL: s.URL, Disabled: true},
	}})
	ctx := context.Background()
	h.emit(t, pubsub.NewEvent(ctx, "t", []byte(`{"n":0}`))) // all-t; big says no, typed fails
	h.until(t, "the first event", func() bool { return len(h.obs.consumedEvents()) == 1 })
	h.emit(t,
		pubsub.NewEvent(ctx, "t", []byte(`{"n":5}`)),                                     // big, all-t; typed fails
		pubsub.NewEvent(pubsub.WithDryRun(ctx, true), "t", []byte(`{"n":5}`)),            // the same, as a dry run
		pubsub.NewEvent(ctx, "nobody", []byte(`{"n":5}`)),                                // typed fails
		pubsub.NewEvent(ctx, "nobody", []byte(`{"n":"y"}`)),                              // typed
		pubsub.NewEvent(ctx, "unmatched.name", []byte(`{"n":"a"}`)),                      // typed says no
		pubsub.NewEvent(ctx, pubsub.Name(strings.Repeat("x", 300)), []byte(`{"n":"y"}`)), // typed, undeliverable
	)
	h.until(t, "every event, and the retry delivered", func() bool {
		return len(h.obs.consumedEvents()) == 7 && h.obs.count("all-t", webhook.Delivered)+h.obs.count("big", webhook.Delivered) == 3
	})
	// A marker behind the retry: it is never reported.
	h.emit(t, pubsub.NewEvent(ctx, "other", nil))
	h.until(t, "the marker", func() bool { return h.obs.count("other", webhook.Delivered) == 1 })
	if n := len(h.obs.consumedEvents()); n != 8 {
		t.Errorf("EventConsumed called %d times, want 8: once per source event, never for the retry", n)
	}

	got := map[[2]int]int{}
	for _, c := range h.obs.consumedEvents() {
		got[[2]int{c.matched, c.filteredOut}]++
	}
	// The marker, without a payload, is filtered out by typed: nil > "x"
	// is false.
	want := map[[2]int]int{{1, 2}: 1, {2, 1}: 2, {0, 1}: 2, {1, 0}: 2, {1, 1}: 1}
	if len(got) != len(want) {
		t.Errorf("EventConsumed (matched, filtered out): %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("EventConsumed (matched, filtered out): %v, want %v", got, want)
			break
		}
	}
}

// The endpoint's circuit says when it opens, goes half-open and closes,
// naming the endpoint by scheme, host and port only; the retry scheduled
// by the failure that opened it waits for the circuit, says so, and is
// not deferred again; the delivery that then succeeds says so once.
func TestCircuitTransitionsAreLogged(t *testing.T) {
	s := newSink(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	u, _ := url.Parse(s.URL)
	logs := &logRecorder{}
	const cooldown = 400 * time.Millisecond
	h := newHarness(t, webhook.Config{
		Logger:        slog.New(logs),
		Circuit:       webhook.CircuitConfig{Failures: 2, Cooldown: cooldown},
		Retry:         webhook.RetryPolicy{Schedule: []time.Duration{10 * time.Millisecond}, MaxAttempts: 5},
		Subscriptions: []webhook.Subscription{{ID: "c", Topic: "t", URL: "http://user:hunter2@" + u.Host + "/private/path?token=sekrit"}},
	})
	ev := pubsub.NewEvent(context.Background(), "t", nil)
	h.emit(t, ev)
	h.until(t, "the delivery", func() bool { return h.obs.count("c", webhook.Delivered) == 1 })
	hits := s.waitFor(t, 3)
	if gap := hits[2].At.Sub(hits[1].At); gap < cooldown-50*time.Millisecond {
		t.Errorf("the probe came %s after the failure that opened the circuit, want the cooldown (%s)", gap, cooldown)
	}
	if n := h.obs.count("c", webhook.Deferred); n != 0 {
		t.Errorf("%d deferrals: the retry should have been scheduled for when the circuit lets it through", n)
	}

	endpoint := "http://" + u.Host
	one := func(part string) logLine {
		t.Helper()
		lines := logs.lines(part)
		if len(lines) != 1 {
			t.Fatalf("%d lines saying %q, want 1", len(lines), part)
		}
		if l := lines[0]; l.level != slog.LevelInfo {
			t.Errorf("%q logged at %s, want INFO", part, l.level)
		}
		return lines[0]
	}
	open := one("circuit open")
	if open.attrs["endpoint"] != endpoint || open.attrs["failures"] != "2" || open.attrs["until"] == "" {
		t.Errorf("circuit open: %v, want endpoint %s, 2 failures, until", open.attrs, endpoint)
	}
	if half := one("half-open"); half.attrs["endpoint"] != endpoint {
		t.Errorf("half-open: %v", half.attrs)
	}
	if closed := one("circuit closed"); closed.attrs["endpoint"] != endpoint {
		t.Errorf("closed: %v", closed.attrs)
	}
	after := one("delivered after retries")
	if after.attrs["subscription"] != "c" || after.attrs["event_id"] != string(ev.ID) || after.attrs["attempt"] != "3" || after.attrs["status"] != "200" {
		t.Errorf("delivered after retries: %v", after.attrs)
	}

	retries := logs.lines("retry scheduled")
	if len(retries) != 2 {
		t.Fatalf("%d retry lines, want 2", len(retries))
	}
	if retries[0].attrs["circuit_open"] != "false" {
		t.Errorf("first retry: %v, want circuit_open=false", retries[0].attrs)
	}
	second := retries[1]
	wait, err := time.ParseDuration(second.attrs["retry_in"])
	if err != nil || second.attrs["circuit_open"] != "true" || wait < cooldown-50*time.Millisecond || wait > cooldown {
		t.Errorf("retry after the failure that opened the circuit: %v, want circuit_open=true and retry_in the cooldown (%s)", second.attrs, cooldown)
	}
	for _, l := range logs.all() {
		for k, v := range l.attrs {
			if strings.Contains(v, "hunter2") || strings.Contains(v, "user@") || strings.Contains(v, "/private") || strings.Contains(v, "sekrit") {
				t.Errorf("%q logs %s=%q: more than the endpoint", l.msg, k, v)
			}
		}
	}
}

// InFlight counts the deliveries being made, exactly, as many goroutines
// start and finish them.
func TestInFlightIsExact(t *testing.T) {
	const n = 24
	release := make(chan struct{})
	s := newSink(t, func(int, *http.Request, http.ResponseWriter) { <-release })
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	b, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: broker, PerEndpoint: n,
		Subscriptions: []webhook.Subscription{{ID: "a", Topic: "t", URL: s.URL}, {ID: "b", Topic: "t", URL: s.URL + "/b"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.InFlight(); got != 0 {
		t.Fatalf("InFlight before any delivery = %d", got)
	}
	var wg sync.WaitGroup
	ctx := context.Background()
	for range n / 2 { // two subscriptions each: n deliveries
		wg.Go(func() {
			if err := b.Handle(ctx, pubsub.NewEvent(ctx, "t", nil)); err != nil {
				t.Error(err)
			}
		})
	}
	s.waitFor(t, n)
	if got := b.InFlight(); got != n {
		t.Errorf("InFlight with %d requests waiting at the receiver = %d", n, got)
	}
	// A dry run is never in flight.
	if err := b.Handle(ctx, pubsub.NewEvent(pubsub.WithDryRun(ctx, true), "t", nil)); err != nil {
		t.Fatal(err)
	}
	if got := b.InFlight(); got != n {
		t.Errorf("InFlight after a dry run = %d, want %d", got, n)
	}
	close(release)
	wg.Wait()
	if got := b.InFlight(); got != 0 {
		t.Errorf("InFlight after every delivery returned = %d", got)
	}
}
