package redis

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/internal/tracing"
	"github.com/switchyard-go/switchyard/pubsub"
)

// The field names of the wire format (docs/wire-format.md).
const (
	fieldID            = "id"
	fieldName          = "name"
	fieldPayload       = "payload"
	fieldCreatedAt     = "created_at"
	fieldCorrelationID = "correlation_id"
	fieldAttempts      = "attempts"
	fieldDryRun        = "dry_run"
	fieldTraceparent   = tracing.FieldTraceparent
	fieldTracestate    = tracing.FieldTracestate
)

// appendFields appends the XADD field/value list of ev to vals, with the
// trace context tc. Optional fields are written only when set, so that
// entries stay small.
func appendFields(vals []any, ev pubsub.Event, tc traceFields) []any {
	vals = append(vals,
		fieldID, string(ev.ID),
		fieldName, string(ev.Name),
		fieldPayload, ev.Payload,
	)
	if t := ev.Meta.CreatedAtUTC; !t.IsZero() && representable(t) {
		vals = append(vals, fieldCreatedAt, t.UTC().Format(time.RFC3339Nano))
	}
	if ev.Meta.CorrelationID != "" {
		vals = append(vals, fieldCorrelationID, ev.Meta.CorrelationID)
	}
	if ev.Meta.Attempts != 0 {
		vals = append(vals, fieldAttempts, strconv.Itoa(ev.Meta.Attempts))
	}
	if ev.Meta.IsDryRun {
		vals = append(vals, fieldDryRun, "1")
	}
	if tc.parent != "" {
		vals = append(vals, fieldTraceparent, tc.parent)
		if tc.state != "" {
			vals = append(vals, fieldTracestate, tc.state)
		}
	}
	return vals
}

// traceFields are the values of the traceparent and tracestate fields.
type traceFields struct{ parent, state string }

// traceOf returns the trace context an entry carries; it is not valid when
// it carries none (or one that does not parse, which is ignored: trace
// context is never a reason to refuse an event).
func traceOf(values map[string]any) trace.SpanContext {
	tp, _ := values[fieldTraceparent].(string)
	if tp == "" {
		return trace.SpanContext{}
	}
	ts, _ := values[fieldTracestate].(string)
	return tracing.Parse(tp, ts)
}

// decode turns a stream entry into an event. The entry ID stands in for a
// missing id and its time for a missing created_at. A missing name, a
// missing payload, a field that does not parse, or an event that
// [pubsub.Event.Validate] refuses (control characters or invalid UTF-8 in
// its id, name or correlation ID) makes the entry poison:
// the error wraps [pubsub.ErrMalformed] and the event holds what could be
// read.
func decode(entryID string, values map[string]any) (pubsub.Event, error) {
	var ev pubsub.Event
	var problems []string
	str := func(field string) (string, bool) {
		v, ok := values[field]
		if !ok {
			return "", false
		}
		s, ok := v.(string)
		if !ok {
			problems = append(problems, fmt.Sprintf("field %q is %T, not a string", field, v))
		}
		return s, ok
	}

	if id, ok := str(fieldID); ok && id != "" {
		ev.ID = pubsub.ID(id)
	} else {
		ev.ID = pubsub.ID(entryID)
	}
	if name, ok := str(fieldName); ok && name != "" {
		ev.Name = pubsub.Name(name)
	} else {
		problems = append(problems, `no "name" field`)
	}
	if p, ok := str(fieldPayload); ok {
		ev.Payload = []byte(p)
	} else if _, present := values[fieldPayload]; !present {
		problems = append(problems, `no "payload" field`)
	}
	if s, ok := str(fieldCreatedAt); ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			problems = append(problems, fmt.Sprintf("created_at %q is not RFC 3339", truncate(s)))
		}
		ev.Meta.CreatedAtUTC = t.UTC()
	} else if ms, err := entryMillis(entryID); err == nil && representable(time.UnixMilli(ms)) {
		ev.Meta.CreatedAtUTC = time.UnixMilli(ms).UTC()
	}
	if s, ok := str(fieldCorrelationID); ok {
		ev.Meta.CorrelationID = s
	}
	if s, ok := str(fieldAttempts); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			problems = append(problems, fmt.Sprintf("attempts %q is not a non-negative integer", truncate(s)))
		}
		ev.Meta.Attempts = max(n, 0)
	}
	if s, ok := str(fieldDryRun); ok {
		switch strings.ToLower(s) {
		case "1", "true":
			ev.Meta.IsDryRun = true
		case "0", "false", "":
		default:
			problems = append(problems, fmt.Sprintf("dry_run %q is not 1, true, 0 or false", truncate(s)))
		}
	}
	if len(problems) == 0 {
		// What Emit refuses, a handler never sees either.
		if err := ev.Validate(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return ev, fmt.Errorf("%w: entry %s: %s", pubsub.ErrMalformed, truncate(entryID), strings.Join(problems, "; "))
	}
	return ev, nil
}

// representable reports whether RFC 3339 can write t: years 0 to 9999.
func representable(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 0 && y <= 9999
}

// entryMillis returns the millisecond time part of a stream entry ID.
func entryMillis(entryID string) (int64, error) {
	ms, _, ok := strings.Cut(entryID, "-")
	if !ok {
		return 0, errors.New("no dash")
	}
	return strconv.ParseInt(ms, 10, 64)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// DecodeEntry turns a stream entry (its ID and fields, as XRANGE or
// XREADGROUP return them) into an event, as a subscriber does. An entry
// that breaks the wire format returns an error wrapping
// [pubsub.ErrMalformed] with what could be read.
func DecodeEntry(entryID string, values map[string]any) (pubsub.Event, error) {
	return decode(entryID, values)
}
