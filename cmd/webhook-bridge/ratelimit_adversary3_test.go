package main

import (
	"strings"
	"testing"
)

// Odd YAML rate limits: refused, the subscription or endpoint named.
func TestAdversary3ConfigOddRateLimits(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"nan":              {validSub + "    rate_limit: {per_second: .nan}\n", `subscription "orders": rate_limit`},
		"inf":              {validSub + "    rate_limit: {per_second: .inf}\n", `subscription "orders": rate_limit`},
		"-inf":             {validSub + "    rate_limit: {per_second: -.inf}\n", `subscription "orders": rate_limit`},
		"empty mapping":    {validSub + "    rate_limit: {}\n", `subscription "orders": rate_limit`},
		"huge burst":       {validSub + "    rate_limit: {per_second: 1, burst: 99999999999999999999}\n", "burst"},
		"endpoint nan":     {"endpoints:\n  - url: http://h\n    rate_limit: {per_second: .nan}\n", "endpoints[0]"},
		"endpoint empty":   {"endpoints:\n  - url: http://h\n    rate_limit: {}\n", "endpoints[0]"},
		"endpoint no host": {"endpoints:\n  - url: http:///x\n    rate_limit: {per_second: 1}\n", "endpoints[0]"},
	} {
		_, err := parseConfig([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: parseConfig = %v, want an error with %q", name, err, tc.want)
		}
	}
}
