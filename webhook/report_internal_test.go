package webhook

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/pubsub"
)

// A backend error about no one event (a read that failed) is not logged
// as an event not handled; one about an event names it.
func TestBackendErrorsSayWhatTheyAreAbout(t *testing.T) {
	var out bytes.Buffer
	b := &Bridge{cfg: Config{Logger: slog.New(slog.NewTextHandler(&out, nil))}}
	b.reportError(context.Background(), errors.New("reading stream: i/o timeout"), nil)
	b.reportError(context.Background(), errors.New("handler failed"), &pubsub.Event{ID: "e-1", Name: "order.created"})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q", lines)
	}
	if !strings.Contains(lines[0], `msg="webhook: consuming events"`) || strings.Contains(lines[0], "event_id") {
		t.Errorf("error about no event logged as %s", lines[0])
	}
	if !strings.Contains(lines[1], `msg="webhook: event not handled"`) || !strings.Contains(lines[1], "event_id=e-1") {
		t.Errorf("error about an event logged as %s", lines[1])
	}
}
