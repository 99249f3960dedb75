package pubsub

import (
	"context"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ID identifies one event. [NewEvent] makes UUIDv7 IDs, which sort by
// creation time; any non-empty UTF-8 text without control characters is
// accepted.
type ID string

// Name says what happened ("order.created"). Subscribers select events by
// name, and backends may route by it.
type Name string

// Meta is what travels with an event besides its payload.
type Meta struct {
	// CreatedAtUTC is when the event was made, in UTC.
	CreatedAtUTC time.Time `json:"created_at_utc"`
	// CorrelationID ties together the events of one flow (a request and
	// everything that follows from it).
	CorrelationID string `json:"correlation_id"`
	// Attempts counts the earlier failed attempts at handling this event:
	// 0 on the first delivery, one more on each redelivery.
	Attempts int `json:"attempts"`
	// IsDryRun marks an event that consumers should treat as a rehearsal:
	// process and log, but cause no side effects outside the system.
	IsDryRun bool `json:"is_dry_run"`
}

// Event is the unit that is emitted and consumed.
type Event struct {
	// ID is unique per event; redeliveries keep it.
	ID ID `json:"id"`
	// Name routes the event and selects its subscribers.
	Name Name `json:"name"`
	// Meta travels with the event.
	Meta Meta `json:"meta"`
	// Payload is opaque to every backend, carried byte for byte; JSON by
	// convention, which the webhook filters and test matchers read.
	Payload []byte `json:"payload"`
}

// NewEvent returns an event with a fresh UUIDv7 ID, the current UTC time,
// and the correlation ID and dry-run flag found in ctx. When ctx has no
// correlation ID, the event's own ID becomes its correlation ID, so the
// events that follow from this one share it. The payload is used as given,
// not copied.
func NewEvent(ctx context.Context, name Name, payload []byte) Event {
	id := newID()
	corr := CorrelationID(ctx)
	if corr == "" {
		corr = string(id)
	}
	return Event{
		ID:   id,
		Name: name,
		Meta: Meta{
			CreatedAtUTC:  time.Now().UTC(),
			CorrelationID: corr,
			IsDryRun:      IsDryRun(ctx),
		},
		Payload: payload,
	}
}

func newID() ID {
	u, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does; a random
		// V4 is the best that is left, and still unique.
		return ID(uuid.NewString())
	}
	return ID(u.String())
}

// Validate reports whether e can be emitted: it needs an ID and a name, a
// non-negative attempt count, and an ID, name and correlation ID that are
// valid UTF-8 without control characters (U+0000–U+001F, U+007F–U+009F),
// since every backend and consumer reads them as text, and a newline in
// one becomes a broken header, log line or key. The error wraps
// [ErrInvalidEvent] and names the field.
func (e Event) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%w: empty ID (make events with pubsub.NewEvent)", ErrInvalidEvent)
	case e.Name == "":
		return fmt.Errorf("%w %q: empty name", ErrInvalidEvent, e.ID)
	case e.Meta.Attempts < 0:
		return fmt.Errorf("%w %q: negative attempts %d", ErrInvalidEvent, e.ID, e.Meta.Attempts)
	}
	for _, f := range [...]struct{ field, v string }{
		{"ID", string(e.ID)}, {"name", string(e.Name)}, {"correlation ID", e.Meta.CorrelationID},
	} {
		if err := checkText(f.v); err != nil {
			return fmt.Errorf("%w %q: %s: %v", ErrInvalidEvent, shortID(e.ID), f.field, err)
		}
	}
	return nil
}

// shortID keeps an ID short enough for an error message.
func shortID(id ID) string {
	if len(id) > 64 {
		return string(id[:64]) + "..."
	}
	return string(id)
}

// checkText refuses invalid UTF-8 and control characters.
func checkText(s string) error {
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				return fmt.Errorf("byte %d is not valid UTF-8", i)
			}
		case unicode.IsControl(r):
			return fmt.Errorf("byte %d is the control character %U", i, r)
		}
	}
	return nil
}

// ValidateAll checks every event with [Event.Validate] and returns the
// first error. Backends call it before writing anything, so that a batch
// with one bad event is refused whole.
func ValidateAll(events []Event) error {
	for i := range events {
		if err := events[i].Validate(); err != nil {
			if len(events) > 1 {
				return fmt.Errorf("event %d of %d: %w", i, len(events), err)
			}
			return err
		}
	}
	return nil
}
