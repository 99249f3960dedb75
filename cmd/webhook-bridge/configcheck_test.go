package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// checkSecrets are the secrets of the configs below: none may be printed.
var checkSecrets = []string{"r3dis-pw", "s3ntinel-pw", "jwt-s3cret", "adm1n-token", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	"MfKQ9r8G", "h3ader-tok", "pa55w0rd", "us3r", "qu3ry-tok", "fr4g"}

func TestConfigCheck(t *testing.T) {
	t.Setenv("CHECK_JWT", "jwt-s3cret")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	// Nothing listens at the Redis address: the check connects to nothing.
	redisAddr := freeAddr(t)
	sub := `
subscriptions:
  - id: orders-to-billing
    topic: order.*
    filter: data.total > 500
    url: https://us3r:pa55w0rd@billing.example/hooks?tok=qu3ry-tok#fr4g
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    headers: {Authorization: Bearer h3ader-tok}
    rate_limit: {per_second: 5, burst: 10}
  - id: audit
    topic: "*"
    url: http://audit.example:8081/in
    disabled: true
endpoints:
  - url: https://billing.example
    rate_limit: {per_second: 20}
auth:
  jwt_secret: ${CHECK_JWT}
  admin_token: adm1n-token
telemetry:
  otlp_endpoint: http://127.0.0.1:4318
  sample_ratio: 0.25
`
	for _, tc := range []struct {
		name, redis string
		want        []string
	}{
		{"memory", "", []string{"backend: memory"}},
		{"single", "redis:\n  url: redis://app:r3dis-pw@" + redisAddr + "/3\npartitions: 4\npartition_key: data.customer\n",
			[]string{"backend: redis single, " + redisAddr + ", db 3, tls off (redis.url redis://app:xxxxx@" + redisAddr + "/3)",
				"partitions: 4, events:0 to events:3, placed by data.customer"}},
		{"cluster", "redis:\n  cluster_url: rediss://:r3dis-pw@10.0.0.1:7000?addr=10.0.0.2:7000\n",
			[]string{"backend: redis cluster, seed nodes 10.0.0.1:7000 10.0.0.2:7000, tls on (redis.cluster_url rediss://:xxxxx@10.0.0.1:7000?addr=10.0.0.2:7000)"}},
		{"sentinel", "redis:\n  sentinel_url: redis://:s3ntinel-pw@10.0.0.1:26379/1?master_name=main&addr=10.0.0.2:26379&password=r3dis-pw\n",
			[]string{`backend: redis sentinel, primary "main", db 1, sentinels 10.0.0.1:26379 10.0.0.2:26379, tls off`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, "listen: 127.0.0.1:9090\n"+tc.redis+sub)
			stdout, stderr, code := runCLI(t, "config", "check", path)
			if code != 0 {
				t.Fatalf("exit status %d, want 0; stderr:\n%s", code, stderr)
			}
			want := append(tc.want,
				"config "+path+": ok\n",
				"listen: 127.0.0.1:9090 (POST /v1/events, /healthz, /readyz, /metrics, /v1/subscriptions, /v1/dlq, /v1/attempts, the console /ui/)",
				"auth.jwt: on (HS256 bearer token on POST /v1/events)",
				"auth.admin_token: on",
				"tracing: on, spans to http://127.0.0.1:4318/v1/traces (from telemetry.otlp_endpoint), sample_ratio 0.25",
				"subscriptions: 2 in the config",
				"  - orders-to-billing: topic order.* -> https://xxxxx@billing.example/hooks?tok=xxxxx (signed (1 secret(s)), headers Authorization, rate_limit 5/s, burst 10, filter data.total > 500)\n",
				"  - audit: topic * -> http://audit.example:8081/in (disabled, not signed)\n",
				"endpoints: 1 with a rate limit\n  - https://billing.example:443: rate_limit 20/s, burst one second's worth\n",
			)
			for _, w := range want {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
			for _, s := range checkSecrets {
				if strings.Contains(stdout+stderr, s) {
					t.Errorf("output shows the secret %q:\n%s%s", s, stdout, stderr)
				}
			}
		})
	}
}

func TestConfigCheckRefuses(t *testing.T) {
	t.Setenv("CHECK_NUMBER", "12")
	valid := "subscriptions:\n  - id: a\n    topic: t\n    url: http://127.0.0.1:9/in\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "listen: 127.0.0.1:1\nlisen: x\n", "config: unknown key lisen (line 2)"},
		{"unknown subscription key", valid + "    filtr: x\n", "config: unknown key subscriptions[0].filtr (line 5)"},
		{"wrong type", "retry:\n  max_attempts: many\n", "config: retry.max_attempts (line 2): cannot unmarshal !!str `many` into int"},
		{"number from the environment", "concurrency: ${CHECK_NUMBER}\n", "config: concurrency (line 1): the text ${NAME} gave is not a whole number"},
		{"bad duration", valid + "    timeout: 5\n", `config: subscriptions[0].timeout (line 5): duration "5"`},
		{"bad enum", "start: middle\n", `config: start "middle": want end or beginning`},
		{"missing variable", "auth:\n  admin_token: ${CHECK_NOT_SET}\n", "config: auth.admin_token: environment variable CHECK_NOT_SET is not set"},
		{"bad redis url with a password", "redis:\n  url: redis://:r3dis-pw@h:6379/x\n", "config: redis.url redis://:xxxxx@h:6379/x"},
		{"secret that is not one", valid + "    secret: whsec_pa55w0rd\n", `config: subscriptions[0]: webhook: subscription "a": secret 1:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, "config", "check", writeConfig(t, tc.yaml))
			if code != 1 {
				t.Fatalf("exit status %d, want 1; stdout:\n%s", code, stdout)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if want := "webhook-bridge: " + tc.want; !strings.HasPrefix(stderr, want) {
				t.Errorf("stderr %q, want it to start with %q", stderr, want)
			}
			if strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", stderr)
			}
			for _, s := range checkSecrets {
				if strings.Contains(stderr, s) {
					t.Errorf("stderr shows the secret %q: %s", s, stderr)
				}
			}
		})
	}
}

func TestConfigCheckUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.yaml")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{"config", "check", missing}, "webhook-bridge: config: open " + missing + ": no such file or directory\n"},
		{"no file", []string{"config", "check"}, "webhook-bridge: " + configUsage + "\n"},
		{"two files", []string{"config", "check", missing, missing}, "webhook-bridge: " + configUsage + "\n"},
		{"no verb", []string{"config"}, "webhook-bridge: " + configUsage + "\n"},
		{"unknown verb", []string{"config", "lint", missing}, "webhook-bridge: " + configUsage + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, tc.args...)
			if code != 1 || stdout != "" || stderr != tc.want {
				t.Errorf("exit status %d, stdout %q, stderr %q; want 1, nothing, %q", code, stdout, stderr, tc.want)
			}
		})
	}
	stdout, _, code := runCLI(t, "--help")
	if code != 0 || !strings.Contains(stdout, "webhook-bridge config check FILE") {
		t.Errorf("--help (exit status %d) does not describe config check:\n%s", code, stdout)
	}
}
