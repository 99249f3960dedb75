package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/webhook"
)

func TestConfigRateLimitErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"per_second zero", validSub + "    rate_limit: {per_second: 0}\n", `config: subscriptions[0]: webhook: subscription "orders": rate_limit: per_second 0 is outside`},
		{"per_second missing", validSub + "    rate_limit: {burst: 5}\n", `subscription "orders": rate_limit: per_second 0 is outside`},
		{"per_second negative", validSub + "    rate_limit: {per_second: -3}\n", `subscription "orders": rate_limit: per_second -3 is outside`},
		{"per_second too high", validSub + "    rate_limit: {per_second: 1e9}\n", `subscription "orders": rate_limit: per_second 1e+09 is outside`},
		{"per_second not a number", validSub + "    rate_limit: {per_second: fast}\n", "cannot unmarshal !!str `fast` into float64"},
		{"burst negative", validSub + "    rate_limit: {per_second: 20, burst: -1}\n", `subscription "orders": rate_limit: burst -1 is outside`},
		{"burst fractional", validSub + "    rate_limit: {per_second: 20, burst: 2.5}\n", "config: subscriptions[0].rate_limit.burst 2.5 (line 6): want a whole number"},
		{"unknown rate_limit key", validSub + "    rate_limit: {per_second: 20, per_minute: 5}\n", "config: unknown key subscriptions[0].rate_limit.per_minute (line 6)"},
		{"rate_limit not a mapping", validSub + "    rate_limit: 20\n", "cannot unmarshal !!int `20` into webhook.RateLimit"},
		{"endpoint without url", "endpoints:\n  - rate_limit: {per_second: 1}\n", "config: endpoints[0]: url is empty"},
		{"endpoint bad url", "endpoints:\n  - url: ftp://x\n    rate_limit: {per_second: 1}\n", "config: endpoints[0]: url: want http(s)://host[:port]"},
		{"endpoint without limit", "endpoints:\n  - url: http://x\n", "config: endpoints[0] (x): rate_limit is missing"},
		{"endpoint bad limit", "endpoints:\n  - url: https://hooks.example.com/in\n    rate_limit: {per_second: 5, burst: -2}\n",
			"config: endpoints[0] (hooks.example.com): rate_limit: burst -2 is outside"},
		{"endpoint twice", "endpoints:\n  - url: https://h.example\n    rate_limit: {per_second: 5}\n  - url: https://H.example:443/other\n    rate_limit: {per_second: 6}\n",
			"config: endpoints[0] and endpoints[1] are the same endpoint https://h.example:443"},
		{"unknown endpoint key", "endpoints:\n  - url: http://x\n    rate: 5\n", "config: unknown key endpoints[0].rate (line 3)"},
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
		})
	}
}

func TestConfigRateLimits(t *testing.T) {
	cfg, err := parseConfig([]byte(validSub + `    rate_limit: {per_second: 0.5}
endpoints:
  - url: https://hooks.example.com/in
    rate_limit: {per_second: 20, burst: 5}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Subscriptions[0].RateLimit; got == nil || *got != (webhook.RateLimit{PerSecond: 0.5}) {
		t.Errorf("subscription rate_limit = %+v", got)
	}
	want := map[string]webhook.RateLimit{"https://hooks.example.com:443": {PerSecond: 20, Burst: 5}}
	if got := cfg.endpointLimits(); len(got) != 1 || got["https://hooks.example.com:443"] != want["https://hooks.example.com:443"] {
		t.Errorf("endpoint limits = %v, want %v", got, want)
	}
	if _, ok := rateLimiter(cfg, nil).(*webhook.MemoryRateLimiter); !ok {
		t.Error("in memory the limiter is not a MemoryRateLimiter")
	}
}

// Two bridge processes on one Redis hold an endpoint's limit together:
// with budgets in each process they would let through twice as many.
func TestRateLimitAcrossBinaries(t *testing.T) {
	const events, perSecond, burst = 40, 10, 3
	s := httpsink.New(t, nil)
	cfg := backendConfig("redis")
	conf := cfg + "listen: LISTEN\nendpoints:\n  - url: " + s.URL + "\n    rate_limit: {per_second: 10, burst: 3}\n" + `
subscriptions:
  - id: sink
    topic: "*"
    url: ` + s.URL + "/hook\n"
	a := startBridge(t, conf)
	b := startBridge(t, strings.Replace(conf, "consumer: c1", "consumer: c2", 1))
	var batch []string
	for i := range events {
		batch = append(batch, fmt.Sprintf(`{"name": "n", "payload": %d}`, i))
	}
	a.emit(t, "", "["+strings.Join(batch, ",")+"]")
	hits := s.WaitFor(t, events, 20*time.Second)
	var at []time.Time
	for _, h := range hits {
		at = append(at, h.At)
		if a := h.Header.Get("Webhook-Attempt"); a != "1" {
			t.Errorf("attempt %s, want 1: waiting for the limit spent an attempt", a)
		}
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	most, j := 0, 0
	for i := range at {
		for j < len(at) && at[j].Sub(at[i]) < time.Second {
			j++
		}
		most = max(most, j-i)
	}
	t.Logf("%d deliveries in %s, at most %d in one second", len(at), at[len(at)-1].Sub(at[0]), most)
	if most > perSecond+burst {
		t.Errorf("%d deliveries within one second, want at most %d", most, perSecond+burst)
	}
	// Both replicas delivered, so the limit held for the two together.
	for i, p := range []*proc{a, b} {
		_, metrics := p.do(t, "GET", "/metrics", "", "")
		if !strings.Contains(metrics, `webhook_bridge_deliveries_total{outcome="delivered",subscription="sink"}`) {
			t.Errorf("replica %d delivered nothing: the test did not test two replicas", i)
		}
	}
}
