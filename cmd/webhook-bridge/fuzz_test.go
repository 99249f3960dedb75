package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// FuzzPostEvents feeds arbitrary bodies to the parser behind
// POST /v1/events: no panic; a refusal is 400 or 413 with a reason; an
// acceptance holds only named, valid events.
func FuzzPostEvents(f *testing.F) {
	for _, seed := range []string{
		`{"name": "a", "payload": {"x": 1}}`,
		`[{"name": "a"}, {"name": "b", "payload": "s", "id": "i", "correlation_id": "c", "dry_run": true}]`,
		`[]`, `{}`, `null`, `[null]`, `{"name": ""}`, `{"name": "a", "payload": }`, `{"name": "a"} trailing`,
		`[{"name": "switchyard.webhook.retry"}]`, "\xff\xfe", `{"name": 7}`,
	} {
		f.Add([]byte(seed))
	}
	cfg, err := parseConfig([]byte("max_batch: 5\n"))
	if err != nil {
		f.Fatal(err)
	}
	s := &server{cfg: cfg}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, status, err := s.parseEvents(context.Background(), body)
		if err != nil {
			if status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
				t.Fatalf("refused with status %d: %v", status, err)
			}
			if err.Error() == "" || strings.Contains(err.Error(), "\n") {
				t.Fatalf("reason %q is empty or spans lines", err)
			}
			return
		}
		if len(evs) == 0 || len(evs) > cfg.MaxBatch {
			t.Fatalf("accepted %d events", len(evs))
		}
		for _, ev := range evs {
			if err := ev.Validate(); err != nil {
				t.Fatalf("accepted an invalid event: %v", err)
			}
		}
	})
}

// FuzzConfig feeds arbitrary YAML to the config loader: no panic, and
// every refusal is one line.
func FuzzConfig(f *testing.F) {
	for _, seed := range []string{
		"", "listen: 127.0.0.1:1\n", validSub, validSub + "    filter: data.x == 1\n", "subscriptions: 7\n",
		"auth:\n  jwt_secret: ${NOPE}\n", "retry:\n  schedule: [1s, x]\n", "a: &a [*a]\n", "targets:\n  allow: [::/0]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, err := parseConfig(raw)
		if err != nil && strings.Contains(strings.TrimSpace(err.Error()), "\n") {
			t.Fatalf("error spans lines: %q", err)
		}
	})
}
