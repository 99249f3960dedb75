package main

import (
	"encoding/base64"
	"strings"
	"testing"
)

// ADVERSARY: headers the bridge owns, invalid header names and values,
// secrets outside 24-64 bytes, and subscription ids that cannot travel in
// the Webhook-Subscription header are refused when the config loads.
func TestAdversaryConfigRefusesBadSubscriptions(t *testing.T) {
	sec := func(n int) string {
		return "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n)))
	}
	sub := func(id, extra string) string {
		return "subscriptions:\n  - id: " + id + "\n    topic: t\n    url: http://127.0.0.1:9/hook\n" + extra
	}
	for name, yaml := range map[string]string{
		"secret 23 bytes":           sub("a", "    secret: "+sec(23)+"\n"),
		"secret 65 bytes":           sub("a", "    secret: "+sec(65)+"\n"),
		"header Webhook-Signature":  sub("a", "    headers:\n      Webhook-Signature: v1,x\n"),
		"header ce-source":          sub("a", "    headers:\n      ce-source: x\n"),
		"header Content-Type":       sub("a", "    headers:\n      Content-Type: text/plain\n"),
		"header USER-AGENT":         sub("a", "    headers:\n      USER-AGENT: x\n"),
		"header Host":               sub("a", "    headers:\n      Host: x\n"),
		"header x-correlation-id":   sub("a", "    headers:\n      x-correlation-id: x\n"),
		"header name with space":    sub("a", "    headers:\n      \"X A\": x\n"),
		"header value newline":      sub("a", "    headers:\n      X-A: \"a\\nb\"\n"),
		"header value non-ASCII":    sub("a", "    headers:\n      X-A: é\n"),
		"header twice in two cases": sub("a", "    headers:\n      X-Tenant: a\n      x-tenant: b\n"),
		"header value outer spaces": sub("a", "    headers:\n      X-A: \" a \"\n"),
		"id with leading space":     sub("\" a\"", ""),
		"id non-ASCII":              sub("sübscription", ""),
		"id C1 control":             sub("\"a\\x85\"", ""),
		"id U+2028":                 sub("\"a\\u2028\"", ""),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseConfig([]byte(yaml)); err == nil {
				t.Errorf("parseConfig accepted:\n%s", yaml)
			} else if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
		})
	}
}
