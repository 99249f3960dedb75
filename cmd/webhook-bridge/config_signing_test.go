package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/webhook"
)

// A subscription's secrets may be ed25519 private keys (whsk_) from the
// environment, alone or beside whsec_ secrets while rotating; keys that
// cannot sign are refused at load, naming the subscription and the
// secret's position.
func TestConfigSigningKeysFromEnv(t *testing.T) {
	priv, pub, err := webhook.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OLD_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	t.Setenv("NEW_KEY", priv)
	cfg, err := parseConfig([]byte(validSub + "    secret:\n      - ${OLD_SECRET}\n      - ${NEW_KEY}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Subscriptions[0]
	if len(s.Secrets) != 2 || s.Secrets[1] != priv {
		t.Fatalf("secrets %v (%d), want the whsec_ secret and the whsk_ key", s.Secrets, len(s.Secrets))
	}
	if got := s.PublicKeys(); len(got) != 1 || got[0] != pub {
		t.Errorf("public keys %v, want [%s]", got, pub)
	}
	sig, err := webhook.Sign(s.Secrets, "msg_1", 1700000000, []byte("{}"))
	if err != nil || !strings.HasPrefix(sig, "v1,") || !strings.Contains(sig, " v1a,") {
		t.Errorf("Sign = %q, %v; want a v1 entry and a v1a entry", sig, err)
	}

	short := "whsk_" + base64.StdEncoding.EncodeToString(make([]byte, 31))
	long := ed25519.NewKeyFromSeed(make([]byte, 32))
	long[40] ^= 1 // its public half no longer matches its seed
	for _, c := range []struct{ name, value, want string }{
		{"public key", pub, `subscription "orders": secret 2: a "whpk_" public key cannot sign`},
		{"bad base64", "whsk_***", `subscription "orders": secret 2: "whsk_" key: not valid base64`},
		{"wrong length", short, `subscription "orders": secret 2: "whsk_" key: 31 bytes once decoded`},
		{"halves not a pair", "whsk_" + base64.StdEncoding.EncodeToString(long), `subscription "orders": secret 2: "whsk_" key of 64 bytes: its last 32 bytes are not the public key`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("NEW_KEY", c.value)
			_, err := parseConfig([]byte(validSub + "    secret:\n      - ${OLD_SECRET}\n      - ${NEW_KEY}\n"))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("parseConfig = %v, want %q", err, c.want)
			}
			if raw := strings.TrimPrefix(strings.TrimPrefix(c.value, "whsk_"), "whpk_"); strings.Contains(err.Error(), raw) {
				t.Errorf("the error shows the key: %v", err)
			}
		})
	}
}
