package redis

import (
	"errors"
	"testing"

	"github.com/switchyard-go/switchyard/pubsub"
)

// FuzzDecode feeds arbitrary stream entries to the decoder: it must never
// panic, must accept only entries with a name and a payload, and must
// report everything else as malformed with a bounded message.
func FuzzDecode(f *testing.F) {
	f.Add("1-1", "order.created", "{}", "2026-01-02T03:04:05Z", "0", "1", true, true, true)
	f.Add("1-2", "", "", "", "", "", false, false, false)
	f.Add("x", "n", "\x00\xff", "not a time", "-3", "maybe", true, true, true)
	f.Add("99999999999999999999-1", "n", "", "", "18446744073709551616", "TRUE", true, true, false)
	f.Fuzz(func(t *testing.T, id, name, payload, createdAt, attempts, dryRun string, hasName, hasPayload, hasMeta bool) {
		values := map[string]any{"unknown": "ignored"}
		if hasName {
			values[fieldName] = name
		}
		if hasPayload {
			values[fieldPayload] = payload
		}
		if hasMeta {
			values[fieldCreatedAt], values[fieldAttempts], values[fieldDryRun] = createdAt, attempts, dryRun
		}
		ev, err := decode(id, values)
		if err != nil {
			if !errors.Is(err, pubsub.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if len(err.Error()) > 1024 {
				t.Fatalf("error message of %d bytes", len(err.Error()))
			}
			return
		}
		if !hasName || name == "" || !hasPayload || ev.Name != pubsub.Name(name) || string(ev.Payload) != payload || ev.Meta.Attempts < 0 {
			t.Fatalf("accepted %v as %+v", values, ev)
		}
		// What decodes must survive a round trip through the encoder.
		back, err := decode(id, fields(appendFields(nil, ev, traceFields{})))
		if err != nil || back.Name != ev.Name || string(back.Payload) != string(ev.Payload) || back.Meta.Attempts != ev.Meta.Attempts {
			t.Fatalf("round trip of %+v gave %+v, %v", ev, back, err)
		}
	})
}
