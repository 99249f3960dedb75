package main

import (
	"strings"
	"testing"
)

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
