package webhook

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

func TestMemoryAttemptLogRetention(t *testing.T) {
	ctx := context.Background()
	l, err := NewMemoryAttemptLog(MemoryAttemptLogConfig{MaxLen: 5, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	l.now = func() time.Time { return now }
	for i := range 12 {
		ev := pubsub.Event{ID: pubsub.ID(fmt.Sprintf("e%d", i)), Name: "n", Payload: []byte("p")}
		if err := l.Record(ctx, AttemptBatch{Events: []pubsub.Event{ev}, Attempts: []Attempt{{EventID: ev.ID, SubscriptionID: "s", Outcome: Delivered}}}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := l.Len(ctx); n != 5 {
		t.Fatalf("Len = %d after 12 with MaxLen 5", n)
	}
	page, _ := l.Query(ctx, AttemptQuery{SubscriptionID: "s"})
	if len(page.Attempts) != 5 || page.Attempts[0].EventID != "e11" || page.Attempts[4].EventID != "e7" {
		t.Fatalf("kept %+v, want e11..e7", page.Attempts)
	}
	if page, _ := l.Query(ctx, AttemptQuery{EventID: "e2"}); len(page.Attempts) != 0 {
		t.Errorf("a dropped attempt is still found by its event: %+v", page.Attempts)
	}
	if _, err := l.Event(ctx, "e0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the event of dropped attempts is kept: %v", err)
	}
	if len(l.bySub["s"]) > 10 || len(l.byEvent) > 10 || len(l.events) > 10 {
		t.Errorf("indexes grow: %d, %d, %d", len(l.bySub["s"]), len(l.byEvent), len(l.events))
	}
	now = now.Add(time.Hour + time.Millisecond)
	if n, _ := l.Len(ctx); n != 0 {
		t.Errorf("Len = %d past MaxAge", n)
	}
	if _, err := l.Event(ctx, "e11"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an event is kept past MaxAge: %v", err)
	}
	if len(l.bySub)+len(l.byEvent)+len(l.events)+len(l.records) != 0 {
		t.Errorf("past MaxAge the log still holds %d, %d, %d, %d", len(l.bySub), len(l.byEvent), len(l.events), len(l.records))
	}
}
