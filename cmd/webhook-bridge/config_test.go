package main

import (
	"strings"
	"testing"
	"time"
)

const validSub = `
subscriptions:
  - id: orders
    topic: order.created
    url: http://127.0.0.1:9/hook
`

func TestConfigErrors(t *testing.T) {
	t.Setenv("SET_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "listen: 127.0.0.1:1\nlisten_addr: x\n", "config: unknown key listen_addr (line 2)"},
		{"unknown nested key", "auth:\n  jwt_secrt: x\n", "config: unknown key auth.jwt_secrt (line 2)"},
		{"unknown subscription key", validSub + "    filtr: x\n", "config: unknown key subscriptions[0].filtr (line 6)"},
		{"filter does not compile", validSub + "    filter: data.x ==\n", `config: subscriptions[0]: webhook: subscription "orders": filter: unexpected token EOF (line 1, column 9)`},
		{"filter not bool", validSub + "    filter: '\"text\"'\n", `subscription "orders": filter: expected bool, but got string`},
		{"bad url", "subscriptions:\n  - id: a\n    topic: t\n    url: ftp://x\n", `subscription "a": url "ftp://x": scheme must be http or https`},
		{"no id", "subscriptions:\n  - topic: t\n    url: http://x\n", "config: subscriptions[0]: webhook: subscription without an id"},
		{"duplicate id", validSub + "  - id: orders\n    topic: t\n    url: http://x\n", `config: subscriptions[1]: id "orders" is used twice`},
		{"missing env", "auth:\n  jwt_secret: ${NOT_SET_ANYWHERE}\n", "config: auth.jwt_secret: environment variable NOT_SET_ANYWHERE is not set"},
		{"bad duration", "timeout: soon\n", `config: timeout (line 1): duration "soon": want Go duration text`},
		{"duration without a unit", "retry:\n  schedule: [1s, 5]\n", `config: retry.schedule[1] (line 2): duration "5": want Go duration text`},
		{"nested duration", validSub + "    timeout: 1.5\n", `config: subscriptions[0].timeout (line 6): duration "1.5"`},
		{"number from the environment", "concurrency: ${SET_SECRET}\n", "config: concurrency (line 1): the text ${NAME} gave is not a whole number (${NAME} is replaced in strings and durations only"},
		{"duration from the environment", "timeout: ${SET_SECRET}\n", "config: timeout (line 1): the text ${NAME} gave is not a Go duration such as 5s or 2h"},
		{"bool not a bool", "targets:\n  deny_private: sure\n", "config: targets.deny_private (line 2): cannot unmarshal !!str `sure` into bool"},
		{"mapping where a list is wanted", "subscriptions:\n  id: a\n", "config: subscriptions (line 2): cannot unmarshal !!map into []webhook.Subscription"},
		{"document not a mapping", "just text\n", "config: the document (line 1): cannot unmarshal !!str `just text` into main.Config"},
		{"timeout over the limit", "timeout: 6m\n", "config: timeout 6m0s is over the 5m0s limit"},
		{"subscription timeout over the limit", validSub + "    timeout: 10m\n", `subscription "orders": timeout 10m0s is outside 0 to 5m0s`},
		{"bad schedule", "retry:\n  schedule: [1s, -2s]\n", "config: retry.schedule[1] is -2s"},
		{"bad listen", "listen: nowhere\n", `config: listen "nowhere": want host:port`},
		{"bad secret", validSub + "    secret: whsec_???\n", `subscription "orders": secret 1: not a Standard Webhooks secret`},
		{"bad yaml", "listen: [\n", "config: yaml:"},
		{"unknown dead_letters key", "dead_letters:\n  maxlen: 5\n", "config: unknown key dead_letters.maxlen (line 2)"},
		{"dead_letters.max_len not a number", "dead_letters:\n  max_len: lots\n", "config: dead_letters.max_len (line 2): cannot unmarshal !!str `lots` into int64"},
		{"bad cidr", "targets:\n  deny_private: true\n  allow: [10.0.0.0/8, intranet]\n", `config: targets.allow[1] "intranet": want a CIDR`},
		{"response bodies too big to keep", "delivery_log:\n  response_body_bytes: 1000000\n", "config: delivery_log.response_body_bytes 1000000: want at most 65536"},
		{"disable_after past the health kept", "disable_after: 1000h\n", "config: disable_after 1000h0m0s: want at most 720h0m0s"},
		{"negative disable_after", "disable_after: -1h\n", "config: disable_after is negative"},
		{"unknown delivery_log key", "delivery_log:\n  max_ag: 1h\n", "config: unknown key delivery_log.max_ag (line 2)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseConfig = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			if strings.Contains(err.Error(), "MfKQ9r8G") {
				t.Errorf("error shows the secret from SET_SECRET: %q", err)
			}
		})
	}
}

func TestConfigDefaultsAndEnv(t *testing.T) {
	t.Setenv("ORDERS_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	t.Setenv("REDIS_PASSWORD", "p4ss")
	cfg, err := parseConfig([]byte(validSub + `    secret: ${ORDERS_SECRET}
    filter: data["a"] == "${NOT_EXPANDED}"
redis:
  url: redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0
retry:
  schedule: [1s, 1m]
`))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Subscriptions[0]
	if len(s.Secrets) != 1 || s.Secrets[0] != "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" {
		t.Errorf("secret from the environment not read: %d secrets", len(s.Secrets))
	}
	if s.Filter != `data["a"] == "${NOT_EXPANDED}"` {
		t.Errorf("filter was expanded: %s", s.Filter)
	}
	if cfg.Redis.URL != "redis://:p4ss@127.0.0.1:6379/0" {
		t.Errorf("redis.url = %q", cfg.Redis.URL)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.Stream != "events" || cfg.Group != "webhook-bridge" || cfg.Concurrency != 64 ||
		time.Duration(cfg.Timeout) != 10*time.Second || cfg.MaxBodyBytes != 1<<20 || time.Duration(cfg.Retry.Schedule[1]) != time.Minute {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if cfg.DeadLetters.MaxLen != 100000 {
		t.Errorf("dead_letters.max_len default = %d, want 100000", cfg.DeadLetters.MaxLen)
	}
	if _, err := parseConfig(nil); err != nil {
		t.Errorf("an empty config is valid (all defaults): %v", err)
	}
	for text, want := range map[string]int64{"dead_letters:\n  max_len: 0\n": 100000, "dead_letters:\n  max_len: -1\n": -1, "dead_letters:\n  max_len: 500\n": 500} {
		if cfg, err := parseConfig([]byte(text)); err != nil || cfg.DeadLetters.MaxLen != want {
			t.Errorf("%q: max_len %v, %v; want %d", text, cfg, err, want)
		}
	}
}
