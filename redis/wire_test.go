package redis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

func TestKeys(t *testing.T) {
	for _, tc := range []struct{ stream, delayed, dead string }{
		{"orders", "{orders}:delayed", "{orders}:dead"},
		{"{orders}", "{orders}:delayed", "{orders}:dead"},
		{"{orders}.p1", "{orders}.p1:delayed", "{orders}.p1:dead"},
		{"orders:0", "{orders:0}:delayed", "{orders:0}:dead"},
	} {
		if got := DelayedKey(tc.stream); got != tc.delayed {
			t.Errorf("DelayedKey(%q) = %q, want %q", tc.stream, got, tc.delayed)
		}
		if got := DeadKey(tc.stream); got != tc.dead {
			t.Errorf("DeadKey(%q) = %q, want %q", tc.stream, got, tc.dead)
		}
		if hashTag(tc.stream) != hashTag(tc.delayed) || hashTag(tc.stream) != hashTag(tc.dead) {
			t.Errorf("%q and its helpers hash differently: %q %q %q", tc.stream, hashTag(tc.stream), hashTag(tc.delayed), hashTag(tc.dead))
		}
	}
	if got := HelperKey("{orders}.p1", "webhook:retries"); got != "{orders}.p1:webhook:retries" {
		t.Errorf("HelperKey of a tagged name = %q", got)
	}
	for _, bad := range []string{"", "a{b", "{}x", "x}"} {
		if validateStream(bad) == nil {
			t.Errorf("validateStream(%q) = nil, want an error", bad)
		}
	}
	if got := PartitionStreams("t", 3); strings.Join(got, ",") != "t:0,t:1,t:2" {
		t.Errorf("PartitionStreams = %v", got)
	}
	if got := PartitionStreams("t", 1); len(got) != 1 || got[0] != "t" {
		t.Errorf("PartitionStreams(t, 1) = %v", got)
	}
}

// fields turns encode's list into what XRANGE returns.
func fields(vals []any) map[string]any {
	m := make(map[string]any, len(vals)/2)
	for i := 0; i < len(vals); i += 2 {
		switch v := vals[i+1].(type) {
		case []byte:
			m[vals[i].(string)] = string(v)
		default:
			m[vals[i].(string)] = v
		}
	}
	return m
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	ev := pubsub.Event{ID: "e1", Name: "n", Payload: []byte("\x00\xffraw"), Meta: pubsub.Meta{
		CreatedAtUTC: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), CorrelationID: "c", Attempts: 4, IsDryRun: true,
	}}
	got, err := decode("1-1", fields(appendFields(nil, ev, traceFields{})))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != ev.ID || got.Name != ev.Name || string(got.Payload) != string(ev.Payload) || !got.Meta.CreatedAtUTC.Equal(ev.Meta.CreatedAtUTC) ||
		got.Meta.CorrelationID != ev.Meta.CorrelationID || got.Meta.Attempts != ev.Meta.Attempts || !got.Meta.IsDryRun {
		t.Errorf("round trip gave %+v, want %+v", got, ev)
	}
	minimal := pubsub.NewEvent(context.Background(), "m", nil)
	minimal.Meta = pubsub.Meta{}
	if n := len(appendFields(nil, minimal, traceFields{})); n != 6 {
		t.Errorf("an event with no meta encodes to %d values, want id, name and payload only", n)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   pubsub.Event
		poison string // "" when valid
	}{
		{"minimal", map[string]any{"name": "n", "payload": "p"},
			pubsub.Event{ID: "1700000000000-0", Name: "n", Payload: []byte("p"), Meta: pubsub.Meta{CreatedAtUTC: time.UnixMilli(1700000000000).UTC()}}, ""},
		{"empty payload", map[string]any{"name": "n", "payload": ""},
			pubsub.Event{ID: "1700000000000-0", Name: "n", Payload: []byte{}, Meta: pubsub.Meta{CreatedAtUTC: time.UnixMilli(1700000000000).UTC()}}, ""},
		{"dry_run true", map[string]any{"name": "n", "payload": "", "dry_run": "TRUE", "created_at": "2026-01-01T00:00:00Z"},
			pubsub.Event{ID: "1700000000000-0", Name: "n", Payload: []byte{}, Meta: pubsub.Meta{CreatedAtUTC: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), IsDryRun: true}}, ""},
		{"no name", map[string]any{"payload": "p"}, pubsub.Event{}, `no "name" field`},
		{"empty name", map[string]any{"name": "", "payload": "p"}, pubsub.Event{}, `no "name" field`},
		{"no payload", map[string]any{"name": "n"}, pubsub.Event{}, `no "payload" field`},
		{"negative attempts", map[string]any{"name": "n", "payload": "", "attempts": "-1"}, pubsub.Event{}, `attempts "-1"`},
		{"bad dry_run", map[string]any{"name": "n", "payload": "", "dry_run": "yes"}, pubsub.Event{}, `dry_run "yes"`},
		{"huge bad field", map[string]any{"name": "n", "payload": "", "created_at": strings.Repeat("x", 1<<20)}, pubsub.Event{}, "xxxx…\" is not RFC 3339"},
		{"not a string", map[string]any{"name": 7, "payload": ""}, pubsub.Event{}, `field "name" is int`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode("1700000000000-0", tc.values)
			if tc.poison != "" {
				if !errors.Is(err, pubsub.ErrMalformed) || !strings.Contains(err.Error(), tc.poison) {
					t.Fatalf("decode = %v, want ErrMalformed saying %q", err, tc.poison)
				}
				if len(err.Error()) > 300 {
					t.Errorf("error is %d bytes long; huge fields must be cut", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != tc.want.ID || got.Name != tc.want.Name || string(got.Payload) != string(tc.want.Payload) ||
				!got.Meta.CreatedAtUTC.Equal(tc.want.Meta.CreatedAtUTC) || got.Meta != (pubsub.Meta{CreatedAtUTC: got.Meta.CreatedAtUTC, IsDryRun: tc.want.Meta.IsDryRun}) {
				t.Errorf("decode = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPackFields(t *testing.T) {
	if got := packFields([]any{"name", "a:b,c", "payload", []byte("\x00")}); got != "4:name,5:a:b,c,7:payload,1:\x00," {
		t.Errorf("packFields = %q", got)
	}
}
