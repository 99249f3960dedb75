package pubsubtest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/switchyard-go/switchyard/pubsub"
)

// IsExpectedEvent reports whether ev has the given name and a JSON payload
// equal to want, compared as JSON values: key order, white space and
// number formatting do not matter. want may be JSON text ([]byte, string,
// [json.RawMessage]) or any value that marshals to JSON. A payload that is
// not JSON matches only when want is byte-for-byte equal to it.
func IsExpectedEvent(ev pubsub.Event, name pubsub.Name, want any) bool {
	return ev.Name == name && JSONEqual(ev.Payload, want)
}

// Matches returns a function reporting [IsExpectedEvent] for name and want,
// for [Recorder.WaitForEvent].
func Matches(name pubsub.Name, want any) func(pubsub.Event) bool {
	return func(ev pubsub.Event) bool { return IsExpectedEvent(ev, name, want) }
}

// JSONEqual reports whether payload and want hold the same JSON value; see
// [IsExpectedEvent] for what want may be.
func JSONEqual(payload []byte, want any) bool {
	wantJSON, err := toJSON(want)
	if err != nil {
		return false
	}
	var a, b any
	if json.Unmarshal(payload, &a) != nil || json.Unmarshal(wantJSON, &b) != nil {
		return string(payload) == string(wantJSON)
	}
	return reflect.DeepEqual(a, b)
}

func toJSON(v any) ([]byte, error) {
	switch w := v.(type) {
	case []byte:
		return w, nil
	case json.RawMessage:
		return w, nil
	case string:
		return []byte(w), nil
	default:
		return json.Marshal(v)
	}
}

// describe renders events briefly for failure messages.
func describe(evs []pubsub.Event) string {
	const most = 10
	var b strings.Builder
	for i, ev := range evs {
		if i == most {
			fmt.Fprintf(&b, " … and %d more", len(evs)-most)
			break
		}
		payload := string(ev.Payload)
		if len(payload) > 60 {
			payload = payload[:60] + "…"
		}
		fmt.Fprintf(&b, "\n  %s %s attempts=%d payload=%q", ev.ID, ev.Name, ev.Meta.Attempts, payload)
	}
	return b.String()
}
