package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard-go/switchyard/pubsub"
)

func TestNewEvent(t *testing.T) {
	before := time.Now()
	ev := pubsub.NewEvent(context.Background(), "order.created", []byte("{}"))
	u, err := uuid.Parse(string(ev.ID))
	if err != nil || u.Version() != 7 {
		t.Errorf("ID %q is not a UUIDv7 (err %v)", ev.ID, err)
	}
	if ev.Meta.CreatedAtUTC.Location() != time.UTC || ev.Meta.CreatedAtUTC.Before(before.Truncate(time.Microsecond)) {
		t.Errorf("CreatedAtUTC = %v, want UTC now", ev.Meta.CreatedAtUTC)
	}
	if ev.Meta.CorrelationID != string(ev.ID) {
		t.Errorf("without a correlation ID in ctx, CorrelationID = %q, want the event's ID", ev.Meta.CorrelationID)
	}
	if ev.Meta.IsDryRun || ev.Meta.Attempts != 0 {
		t.Errorf("Meta = %+v, want no dry run and 0 attempts", ev.Meta)
	}

	ctx := pubsub.WithDryRun(pubsub.WithCorrelationID(context.Background(), "req-1"), true)
	ev2 := pubsub.NewEvent(ctx, "x", nil)
	if ev2.Meta.CorrelationID != "req-1" || !ev2.Meta.IsDryRun {
		t.Errorf("Meta = %+v, want the correlation ID and dry run from ctx", ev2.Meta)
	}
	if ev2.ID <= ev.ID {
		t.Errorf("IDs do not sort by creation: %s then %s", ev.ID, ev2.ID)
	}
}

func TestValidate(t *testing.T) {
	ok := pubsub.NewEvent(context.Background(), "n", nil)
	tests := []struct {
		name string
		ev   pubsub.Event
		want string // in the message; "" for valid
	}{
		{"valid", ok, ""},
		{"empty payload is fine", pubsub.Event{ID: "1", Name: "n"}, ""},
		{"no ID", pubsub.Event{Name: "n"}, "empty ID"},
		{"no name", pubsub.Event{ID: "1"}, "empty name"},
		{"negative attempts", pubsub.Event{ID: "1", Name: "n", Meta: pubsub.Meta{Attempts: -2}}, "negative attempts -2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ev.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, pubsub.ErrInvalidEvent) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want ErrInvalidEvent saying %q", err, tc.want)
			}
		})
	}
	err := pubsub.ValidateAll([]pubsub.Event{ok, ok, {ID: "3"}})
	if !errors.Is(err, pubsub.ErrInvalidEvent) || !strings.Contains(err.Error(), "event 2 of 3") {
		t.Errorf("ValidateAll = %v, want the bad event's position", err)
	}
}

type parentKey struct{}

func TestHandlerContext(t *testing.T) {
	base := context.WithValue(context.Background(), parentKey{}, "kept")
	if got := pubsub.HandlerContext(base, pubsub.Event{}); got != base {
		t.Error("HandlerContext of an event with no correlation or dry run should return ctx itself")
	}
	ctx := pubsub.HandlerContext(base, pubsub.Event{Meta: pubsub.Meta{CorrelationID: "c", IsDryRun: true}})
	if pubsub.CorrelationID(ctx) != "c" || !pubsub.IsDryRun(ctx) || ctx.Value(parentKey{}) != "kept" {
		t.Errorf("handler context: correlation %q, dry run %v, parent value %v", pubsub.CorrelationID(ctx), pubsub.IsDryRun(ctx), ctx.Value(parentKey{}))
	}
	outer := pubsub.HandlerContext(pubsub.WithCorrelationID(base, "outer"), pubsub.Event{Meta: pubsub.Meta{IsDryRun: true}})
	if pubsub.CorrelationID(outer) != "outer" {
		t.Errorf("an event without correlation ID hid the context's: got %q", pubsub.CorrelationID(outer))
	}
}

func TestDeadLetterError(t *testing.T) {
	cause := errors.New("boom")
	var err error = &pubsub.DeadLetterError{Attempts: 3, Err: cause}
	if !errors.Is(err, pubsub.ErrDeadLetter) || !errors.Is(err, cause) {
		t.Errorf("%v should match ErrDeadLetter and its cause", err)
	}
	if want := "pubsub: dead-lettered after 3 attempt(s): boom"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

type plainPublisher struct{ got []pubsub.Event }

func (p *plainPublisher) Emit(_ context.Context, evs ...pubsub.Event) error {
	p.got = append(p.got, evs...)
	return nil
}
func (p *plainPublisher) Close() error { return nil }

func TestEmitAfter(t *testing.T) {
	p := &plainPublisher{}
	ev := pubsub.NewEvent(context.Background(), "n", nil)
	if err := pubsub.EmitAfter(context.Background(), p, time.Minute, ev); !errors.Is(err, pubsub.ErrNotSupported) {
		t.Errorf("EmitAfter on a publisher without delayed emit = %v, want ErrNotSupported", err)
	}
	if err := pubsub.EmitAfter(context.Background(), p, 0, ev); err != nil || len(p.got) != 1 {
		t.Errorf("EmitAfter with no delay = %v, %d emitted; want an immediate Emit", err, len(p.got))
	}
}

func ExampleNewEvent() {
	ctx := pubsub.WithCorrelationID(context.Background(), "req-42")
	ev := pubsub.NewEvent(ctx, "order.created", []byte(`{"order_id":7}`))
	fmt.Println(ev.Name, string(ev.Payload))
	fmt.Println("correlation:", ev.Meta.CorrelationID, "attempts:", ev.Meta.Attempts)
	fmt.Println("UUIDv7 ID:", uuid.MustParse(string(ev.ID)).Version() == 7)
	// Output:
	// order.created {"order_id":7}
	// correlation: req-42 attempts: 0
	// UUIDv7 ID: true
}
