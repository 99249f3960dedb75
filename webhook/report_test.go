package webhook_test

import (
	"log/slog"
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
