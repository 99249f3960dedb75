package webhook_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// testKey is an ed25519 key pair made with crypto/ed25519 alone, in the
// Standard Webhooks forms: "whsk_" and the base64 of the 32-byte seed,
// "whpk_" and the base64 of the 32-byte public key.
type testKey struct {
	seed, public string
	pub          ed25519.PublicKey
	priv         ed25519.PrivateKey
}

func newTestKey(seedByte byte) testKey {
	seed := bytes.Repeat([]byte{seedByte}, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	return testKey{
		seed:   "whsk_" + base64.StdEncoding.EncodeToString(seed),
		public: "whpk_" + base64.StdEncoding.EncodeToString(pub),
		pub:    pub, priv: priv,
	}
}

// verifyV1aIndependently is the Standard Webhooks v1a algorithm written
// from the specification, apart from the package's signer: an ed25519
// signature, by the key whose public key is publicKey ("whpk_" and the
// base64 of its 32 bytes), of "id.timestamp.body", in one of the
// header's space-separated "v1a,<base64>" entries. Standard Webhooks'
// official libraries do not verify v1a in any released version (npm
// standardwebhooks 1.1.1, the Go library v1.3.0, the Python package of
// the repository's main branch; support exists only in unmerged branches),
// so this and the interop module's check with node:crypto
// (interop/node/receiver.mjs) are the independent verifiers.
func verifyV1aIndependently(publicKey, id, timestamp string, body []byte, header string) bool {
	raw, ok := strings.CutPrefix(publicKey, "whpk_")
	if !ok {
		return false
	}
	pub, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return false
	}
	msg := append([]byte(id+"."+timestamp+"."), body...)
	for _, part := range strings.Fields(header) {
		version, sig, ok := strings.Cut(part, ",")
		if !ok || version != "v1a" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && ed25519.Verify(ed25519.PublicKey(pub), msg, b) {
			return true
		}
	}
	return false
}

func TestSignV1a(t *testing.T) {
	k := newTestKey(1)
	got, err := webhook.Sign([]string{k.seed}, vectorID, vectorTimestamp, []byte(vectorPayload))
	if err != nil {
		t.Fatal(err)
	}
	// ed25519 signatures are deterministic: crypto/ed25519 on the signed
	// content gives the very same bytes.
	content := fmt.Sprintf("%s.%d.%s", vectorID, vectorTimestamp, vectorPayload)
	want := "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(k.priv, []byte(content)))
	if got != want {
		t.Errorf("Sign with a whsk_ key = %s, want %s", got, want)
	}
	if !verifyV1aIndependently(k.public, vectorID, fmt.Sprint(vectorTimestamp), []byte(vectorPayload), got) {
		t.Error("the independent verifier refuses the v1a signature")
	}
	// The 64-byte form (seed and public key, as Go's ed25519.PrivateKey,
	// libsodium and stablelib hold it) signs alike.
	long := "whsk_" + base64.StdEncoding.EncodeToString(k.priv)
	if got2, err := webhook.Sign([]string{long}, vectorID, vectorTimestamp, []byte(vectorPayload)); err != nil || got2 != want {
		t.Errorf("Sign with the 64-byte form = %s, %v; want %s", got2, err, want)
	}
	if pk, err := webhook.PublicKey(k.seed); err != nil || pk != k.public {
		t.Errorf("PublicKey = %s, %v; want %s", pk, err, k.public)
	}
	if !webhook.Verify(k.public, vectorID, vectorTimestamp, []byte(vectorPayload), "v1,bogus "+got) {
		t.Error("Verify with the whpk_ key refused the signature among others")
	}
	if webhook.Verify(k.public, vectorID, vectorTimestamp, []byte(vectorPayload+" "), got) {
		t.Error("Verify with the whpk_ key accepted a changed body")
	}
	if webhook.Verify(newTestKey(2).public, vectorID, vectorTimestamp, []byte(vectorPayload), got) {
		t.Error("Verify accepted another key's public key")
	}
	// A v1a entry never satisfies a whsec_ secret, nor a v1 entry a whpk_ key.
	if webhook.Verify(vectorSecret, vectorID, vectorTimestamp, []byte(vectorPayload), got) ||
		webhook.Verify(k.public, vectorID, vectorTimestamp, []byte(vectorPayload), vectorSignature) {
		t.Error("Verify mixed up v1 and v1a")
	}
}

func TestSignV1AndV1aTogether(t *testing.T) {
	k := newTestKey(3)
	got, err := webhook.Sign([]string{vectorSecret, k.seed}, vectorID, vectorTimestamp, []byte(vectorPayload))
	if err != nil {
		t.Fatal(err)
	}
	entries := strings.Fields(got)
	if len(entries) != 2 || entries[0] != vectorSignature || !strings.HasPrefix(entries[1], "v1a,") {
		t.Fatalf("Sign(whsec, whsk) = %q, want the spec's v1 signature then one v1a", got)
	}
	ts := fmt.Sprint(vectorTimestamp)
	if !verifyIndependently(vectorSecret, vectorID, ts, []byte(vectorPayload), got) ||
		!verifyV1aIndependently(k.public, vectorID, ts, []byte(vectorPayload), got) {
		t.Errorf("one of the two signatures does not verify independently: %q", got)
	}
}

func TestNewSigningKey(t *testing.T) {
	priv, pub, err := webhook.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(priv, "whsk_"))
	if !strings.HasPrefix(priv, "whsk_") || err != nil || len(seed) != ed25519.SeedSize {
		t.Fatalf("private key %q (%v): want whsk_ and the base64 of a 32-byte seed", priv, err)
	}
	want := "whpk_" + base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	if pub != want {
		t.Errorf("public key %s, want %s", pub, want)
	}
	priv2, _, _ := webhook.NewSigningKey()
	if priv2 == priv {
		t.Error("two keys made alike")
	}
}

func TestBadSigningKeysRefused(t *testing.T) {
	k := newTestKey(4)
	other := newTestKey(5)
	mismatched := append(append([]byte{}, k.priv[:32]...), other.pub...)
	for _, c := range []struct {
		name, secret, want string
	}{
		{"bad base64", "whsk_not*base64", "not valid base64"},
		{"seed too short", "whsk_" + base64.StdEncoding.EncodeToString(make([]byte, 16)), "16 bytes once decoded"},
		{"seed too long", "whsk_" + base64.StdEncoding.EncodeToString(make([]byte, 48)), "48 bytes once decoded"},
		{"empty", "whsk_", "0 bytes once decoded"},
		{"64 bytes, halves not a pair", "whsk_" + base64.StdEncoding.EncodeToString(mismatched), "not the public key of its first 32"},
		{"public key given", k.public, `"whpk_" public key cannot sign`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := webhook.Subscription{ID: "orders", Topic: "*", URL: "http://example.com/", Secrets: webhook.Secrets{vectorSecret, c.secret}}
			err := s.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, part := range []string{`subscription "orders"`, "secret 2", c.want} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
			if raw := strings.TrimPrefix(strings.TrimPrefix(c.secret, "whsk_"), "whpk_"); len(raw) > 8 && strings.Contains(err.Error(), raw) {
				t.Errorf("error %q shows the key", err)
			}
			if _, err := webhook.Sign([]string{c.secret}, "id", 1, nil); err == nil {
				t.Error("Sign accepted it")
			}
		})
	}
	if err := (webhook.Subscription{ID: "ok", Topic: "*", URL: "http://example.com/", Secrets: webhook.Secrets{k.seed, "whsk_" + base64.StdEncoding.EncodeToString(k.priv)}}).Validate(); err != nil {
		t.Errorf("a 32-byte seed and a 64-byte key: %v", err)
	}
}

// TestV1aDeliveriesVerifyIndependently runs the bridge with a rotation
// from a whsec_ secret to a whsk_ key and checks real deliveries, received
// by an httptest server, with verifiers written from the specification.
func TestV1aDeliveriesVerifyIndependently(t *testing.T) {
	k := newTestKey(6)
	s := newSink(t, nil)
	sub := webhook.Subscription{ID: "rotating", Topic: "*", URL: s.URL + "/r", Secrets: webhook.Secrets{vectorSecret, k.seed}}
	if got := sub.PublicKeys(); len(got) != 1 || got[0] != k.public {
		t.Errorf("PublicKeys = %v, want [%s]", got, k.public)
	}
	if shown := fmt.Sprintf("%v %+v %#v", sub.Secrets, sub, sub); strings.Contains(shown, strings.TrimPrefix(k.seed, "whsk_")) {
		t.Errorf("the private key prints: %s", shown)
	}
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{
		sub,
		{ID: "asymmetric", Topic: "*", URL: s.URL + "/a", Secrets: webhook.Secrets{k.seed}},
	}})
	bodies := [][]byte{[]byte(`{"n": 1, "s": "Zoë"}`), {0, 0xff, 0xfe, '.', 0x80}}
	for i, b := range bodies {
		h.emit(t, pubsub.Event{ID: pubsub.ID(fmt.Sprintf("evt-%d", i)), Name: "x", Payload: b})
	}
	for _, hit := range s.waitFor(t, 2*len(bodies)) {
		sig := hit.Header.Get("Webhook-Signature")
		id, ts := hit.Header.Get("Webhook-Id"), hit.Header.Get("Webhook-Timestamp")
		entries := strings.Fields(sig)
		switch hit.Header.Get(webhook.HeaderSubscription) {
		case "rotating":
			if len(entries) != 2 || !strings.HasPrefix(entries[0], "v1,") || !strings.HasPrefix(entries[1], "v1a,") {
				t.Errorf("rotating: webhook-signature %q, want a v1 entry then a v1a entry", sig)
			}
			if !verifyIndependently(vectorSecret, id, ts, hit.Body, sig) {
				t.Errorf("rotating: the v1 signature does not verify: %q", sig)
			}
		case "asymmetric":
			if len(entries) != 1 || !strings.HasPrefix(entries[0], "v1a,") {
				t.Errorf("asymmetric: webhook-signature %q, want one v1a entry", sig)
			}
		}
		if !verifyV1aIndependently(k.public, id, ts, hit.Body, sig) {
			t.Errorf("%s: the v1a signature does not verify with %s: %q", hit.Header.Get(webhook.HeaderSubscription), k.public, sig)
		}
		tampered := append(bytes.Clone(hit.Body), 'x')
		if verifyV1aIndependently(k.public, id, ts, tampered, sig) {
			t.Error("a changed body verifies")
		}
	}
}
