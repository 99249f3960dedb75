package webhook_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// What the backend dead-lets before any subscription saw it is logged
// with where the operator finds it.
func TestBackendDeadLettersPointToTheirListing(t *testing.T) {
	logs := &logRecorder{}
	h := newHarness(t, webhook.Config{Logger: slog.New(logs)})
	h.emit(t, pubsub.Event{ID: "garbage-retry", Name: webhook.RetryEventName, Payload: []byte("not a retry")})
	deadline := time.Now().Add(wait)
	for len(logs.lines("dead-lettered by the backend")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no line pointing to the listing; lines: %+v", logs.lines("webhook:"))
		}
		time.Sleep(5 * time.Millisecond) // polling the log the bridge writes
	}
	if l := logs.lines("dead-lettered by the backend")[0]; l.level != slog.LevelError || l.attrs["event_id"] != "garbage-retry" {
		t.Errorf("line %+v", l)
	}
	if n := len(logs.lines("kind unhandled")); n != 1 {
		t.Errorf("%d lines name kind unhandled, want 1", n)
	}
}

// A retry event written by someone else reaches no subscription its event
// does not match, and one with a negative attempt count none at all.
func TestForgedRetriesReachNothing(t *testing.T) {
	s := newSink(t, nil)
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{
		{ID: "tenant-a", Topic: "order.created", Filter: `data.tenant == "a"`, URL: s.URL},
	}})
	forged := func(id string, attempts int, inner string) pubsub.Event {
		return pubsub.Event{ID: pubsub.ID(id), Name: webhook.RetryEventName, Payload: []byte(
			`{"subscription_id": "tenant-a", "attempts": ` + strconv.Itoa(attempts) + `, "event": ` + inner + `}`)}
	}
	h.emit(t,
		forged("other-topic", 1, `{"id": "e1", "name": "user.deleted", "payload": "eyJ0ZW5hbnQiOiJhIn0="}`),
		forged("other-tenant", 1, `{"id": "e2", "name": "order.created", "payload": "eyJ0ZW5hbnQiOiJiIn0="}`),
		forged("negative", -6, `{"id": "e3", "name": "order.created", "payload": "eyJ0ZW5hbnQiOiJhIn0="}`),
		pubsub.NewEvent(context.Background(), "order.created", []byte(`{"tenant": "a"}`)),
	)
	s.waitFor(t, 1)
	dls := h.deadLetters(t, 2)
	for _, dl := range dls {
		if dl.Kind != webhook.KindOrphaned || !strings.Contains(dl.LastError, "no longer matches") {
			t.Errorf("dead letter %+v, want orphaned: no longer matches", dl)
		}
	}
	if hits := s.snapshot(); len(hits) != 1 || hits[0].Header.Get("Webhook-Attempt") != "1" {
		t.Errorf("%d deliveries, want only the real event's", len(hits))
	}
}
