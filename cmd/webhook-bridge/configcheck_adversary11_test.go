package main

import (
	"strconv"
	"strings"
	"testing"
)

// TestConfigCheckHidesSecretsOfRefusedValues: a value refused for its
// type is not printed when it may be a secret: the text of a ${NAME}
// reached through an alias, any value reached through an alias (it was
// written under another key, perhaps a secret one), and the value of a
// text key refused for an explicit tag. The key's path is still named.
func TestConfigCheckHidesSecretsOfRefusedValues(t *testing.T) {
	t.Setenv("ADV11_SECRET", "env-s3cret-value")
	for _, tc := range []struct{ name, config, key string }{
		{"env text through an alias into a number", "consumer: &a \"${ADV11_SECRET}\"\nconcurrency: *a\n", "concurrency (line 2)"},
		{"env text through an alias into a duration", "auth:\n  admin_token: &a \"${ADV11_SECRET}\"\ntimeout: *a\n", "timeout (line 3)"},
		{"a token through an alias into a number", "auth:\n  admin_token: &a env-s3cret-value\nconcurrency: *a\n", "concurrency (line 3)"},
		{"a token through an alias into a boolean", "auth:\n  admin_token: &a env-s3cret-value\ntargets:\n  deny_private: *a\n", "targets.deny_private (line 4)"},
		{"a tagged token", "auth:\n  jwt_secret: !!int env-s3cret-value\n", "auth.jwt_secret (line 2)"},
		{"a tagged header value", "subscriptions:\n  - id: a\n    topic: t\n    url: http://h/\n    headers: {Authorization: !!int Bearer-env-s3cret-value}\n", "subscriptions[0].headers (line 5)"},
		{"a tagged redis URL", "redis:\n  url: !!float redis://:env-s3cret-value@h:6379\n", "redis.url (line 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runCLI(t, "config", "check", writeConfig(t, tc.config))
			if code != 1 {
				t.Fatalf("exit status %d, want 1; stderr:\n%s", code, stderr)
			}
			if strings.Contains(stderr, "s3c") {
				t.Errorf("stderr shows the secret:\n%s", stderr)
			}
			if !strings.Contains(stderr, tc.key) {
				t.Errorf("stderr does not name %q:\n%s", tc.key, stderr)
			}
		})
	}
}

// TestConfigCheckHidesPasswordLikeRedisOptions: a Redis URL with an
// option go-redis does not know is refused, and an option whose name
// says it holds a password or token (sentinel_password, as other
// clients spell it) is not printed.
func TestConfigCheckHidesPasswordLikeRedisOptions(t *testing.T) {
	for _, key := range []string{"url", "cluster_url", "sentinel_url"} {
		for _, opt := range []string{"sentinel_password", "auth_token", "pass"} {
			t.Run(key+" "+opt, func(t *testing.T) {
				config := "redis:\n  " + key + ": redis://h:6379?master_name=m&" + opt + "=r3dis-s3cret\n"
				_, stderr, code := runCLI(t, "config", "check", writeConfig(t, config))
				if code != 1 {
					t.Fatalf("exit status %d, want 1; stderr:\n%s", code, stderr)
				}
				if strings.Contains(stderr, "s3cret") {
					t.Errorf("stderr shows the password:\n%s", stderr)
				}
				if !strings.Contains(stderr, "redis."+key) {
					t.Errorf("stderr does not name redis.%s:\n%s", key, stderr)
				}
			})
		}
	}
}

// TestConfigMergeKeys: YAML's merge key << shares settings between
// subscriptions, as the config schema (and any YAML editor) reads it;
// the merged keys are checked like the others.
func TestConfigMergeKeys(t *testing.T) {
	good := `subscriptions:
  - &base {id: a, topic: t, url: "http://h.example/in", timeout: 5s}
  - <<: *base
    id: b
`
	stdout, stderr, code := runCLI(t, "config", "check", writeConfig(t, good))
	if code != 0 || !strings.Contains(stdout, "b: topic t -> http://h.example/in (not signed, timeout 5s)") {
		t.Errorf("exit status %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, tc := range []struct{ name, config, want string }{
		{"unknown merged key", "subscriptions:\n  - &base {id: a, topic: t, url: \"http://h.example/in\"}\n  - <<: [*base, {filtr: x}]\n    id: b\n", "unknown key subscriptions[1].filtr"},
		{"merged value of the wrong type", "retry: &r {max_attempts: 3}\ntargets:\n  <<: {deny_private: sure}\n", "targets.deny_private"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runCLI(t, "config", "check", writeConfig(t, tc.config))
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit status %d, want 1 naming %q; stderr:\n%s", code, tc.want, stderr)
			}
		})
	}
}

// TestConfigAliasToItself: an alias inside the node it names is refused
// with its line, whatever the key, instead of being followed forever.
func TestConfigAliasToItself(t *testing.T) {
	for _, config := range []string{
		"subscriptions: &x\n  - <<: *x\n",
		"targets:\n  <<: &m {deny_private: true, <<: *m}\n",
		"targets: &t\n  allow: *t\n",
	} {
		_, stderr, code := runCLI(t, "config", "check", writeConfig(t, config))
		if code != 1 || !strings.HasPrefix(stderr, "webhook-bridge: config: ") {
			t.Errorf("%q: exit status %d, want 1 with a config error; stderr:\n%.300s", config, code, stderr)
		}
	}
}

// TestConfigMergeBomb: merges of merges, each naming the one before nine
// times, are checked once each: the check answers rather than walking
// 9^12 mappings.
func TestConfigMergeBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("subscriptions:\n  - &s0 {id: a, topic: t, url: \"http://h.example/in\"}\n")
	for i := 1; i <= 12; i++ {
		prev := "*s" + strconv.Itoa(i-1)
		b.WriteString("  - &s" + strconv.Itoa(i) + " {<<: [" + strings.Repeat(prev+", ", 8) + prev + "], id: a" + strconv.Itoa(i) + "}\n")
	}
	_, stderr, code := runCLI(t, "config", "check", writeConfig(t, b.String()))
	if code != 0 && code != 1 {
		t.Errorf("exit status %d; stderr:\n%.500s", code, stderr)
	}
}
