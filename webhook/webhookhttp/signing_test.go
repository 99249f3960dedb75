package webhookhttp_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// receivedDelivery is what the test receiver got.
type receivedDelivery struct {
	header http.Header
	body   []byte
}

// verifyEntries checks a webhook-signature header the way the Standard
// Webhooks specification describes it, with crypto/hmac and
// crypto/ed25519 directly (not the webhook package): it reports whether
// a "v1" entry is the HMAC-SHA256 of "id.timestamp.body" by secret (when
// secret is not ""), and whether a "v1a" entry is an ed25519 signature of
// it by the "whpk_" public key (when publicKey is not "").
func verifyEntries(t *testing.T, d receivedDelivery, secret, publicKey string) (v1, v1a bool) {
	t.Helper()
	content := append([]byte(d.header.Get("Webhook-Id")+"."+d.header.Get("Webhook-Timestamp")+"."), d.body...)
	for _, entry := range strings.Fields(d.header.Get("Webhook-Signature")) {
		version, b64, _ := strings.Cut(entry, ",")
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Errorf("signature entry %q is not base64", entry)
			continue
		}
		switch version {
		case "v1":
			if secret == "" {
				continue
			}
			key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
			mac := hmac.New(sha256.New, key)
			mac.Write(content)
			v1 = v1 || hmac.Equal(mac.Sum(nil), sig)
		case "v1a":
			if publicKey == "" {
				continue
			}
			pub, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(publicKey, "whpk_"))
			if err != nil || len(pub) != ed25519.PublicKeySize {
				t.Fatalf("public key %q does not decode to 32 bytes", publicKey)
			}
			v1a = v1a || ed25519.Verify(ed25519.PublicKey(pub), content, sig)
		}
	}
	return v1, v1a
}

// The admin API makes an ed25519 key pair for a subscription on request,
// shows only its public key from then on (never the private key: not in
// the answer, GET, the list or the logs), and deliveries verify with that
// public key, through a rotation from a whsec_ secret and its end.
func TestAdminGeneratedSigningKey(t *testing.T) {
	got := make(chan receivedDelivery, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- receivedDelivery{header: r.Header.Clone(), body: b}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)

	bridge, broker := bridgeOn(t, webhook.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go bridge.Run(ctx)
	t.Cleanup(func() { _ = bridge.Close() })
	var logs bytes.Buffer
	ts, _ := api(t, webhookhttp.Config{Bridge: bridge, AdminToken: adminToken,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})

	view := func(status int, body string, want int) webhookhttp.SubscriptionView {
		t.Helper()
		if status != want {
			t.Fatalf("status %d %s, want %d", status, body, want)
		}
		if strings.Contains(body, "whsk_") {
			t.Fatalf("an answer shows a private key: %s", body)
		}
		var v webhookhttp.SubscriptionView
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	deliver := func(id string) receivedDelivery {
		t.Helper()
		if err := broker.Emit(ctx, pubsub.Event{ID: pubsub.ID(id), Name: "order.created", Payload: []byte(`{"id":"` + id + `"}`)}); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-got:
			return d
		case <-time.After(10 * time.Second):
			t.Fatalf("no delivery of %s", id)
		}
		return receivedDelivery{}
	}

	// Create with a whsec_ secret and a generated key: both sign.
	status, body, _ := call(t, ts, http.MethodPost, "/v1/subscriptions", adminToken,
		`{"id": "s1", "topic": "*", "url": "`+recv.URL+`", "secret": "`+secretA+`", "signing": "ed25519"}`)
	v := view(status, body, http.StatusCreated)
	if v.SecretCount != 2 || len(v.PublicKeys) != 1 || !strings.HasPrefix(v.PublicKeys[0], "whpk_") {
		t.Fatalf("created: %s, want 2 secrets and one whpk_ public key", body)
	}
	pk := v.PublicKeys[0]
	status, body, _ = call(t, ts, http.MethodGet, "/v1/subscriptions/s1", adminToken, "")
	if g := view(status, body, http.StatusOK); len(g.PublicKeys) != 1 || g.PublicKeys[0] != pk {
		t.Errorf("GET shows public keys %v, want [%s]", g.PublicKeys, pk)
	}
	status, body, _ = call(t, ts, http.MethodGet, "/v1/subscriptions", adminToken, "")
	if status != http.StatusOK || strings.Contains(body, "whsk_") || !strings.Contains(body, pk) {
		t.Errorf("list: %d %s, want the public key and no private key", status, body)
	}
	d := deliver("evt-1")
	if n := len(strings.Fields(d.header.Get("Webhook-Signature"))); n != 2 {
		t.Errorf("webhook-signature %q: %d entries, want 2", d.header.Get("Webhook-Signature"), n)
	}
	if v1, v1a := verifyEntries(t, d, secretA, pk); !v1 || !v1a {
		t.Errorf("v1 verifies: %v, v1a verifies: %v; want both", v1, v1a)
	}

	// The end of the rotation: the public key in "secret" keeps its
	// private key, and the whsec_ secret goes.
	status, body, _ = call(t, ts, http.MethodPut, "/v1/subscriptions/s1", adminToken,
		`{"topic": "*", "url": "`+recv.URL+`", "secret": ["`+pk+`"]}`)
	if v = view(status, body, http.StatusOK); v.SecretCount != 1 || len(v.PublicKeys) != 1 || v.PublicKeys[0] != pk {
		t.Fatalf("PUT keeping the public key's private key: %s", body)
	}
	d = deliver("evt-2")
	if v1, v1a := verifyEntries(t, d, secretA, pk); v1 || !v1a || strings.Count(d.header.Get("Webhook-Signature"), ",") != 1 {
		t.Errorf("after the rotation: %q, v1 %v, v1a %v; want one v1a entry that verifies", d.header.Get("Webhook-Signature"), v1, v1a)
	}

	// A rotation from one generated key to another: a PUT of the view
	// with "signing" keeps the stored key and adds one.
	status, body, _ = call(t, ts, http.MethodGet, "/v1/subscriptions/s1", adminToken, "")
	view(status, body, http.StatusOK)
	withSigning := strings.Replace(body, `{`, `{"signing": "ed25519", `, 1)
	status, body, _ = call(t, ts, http.MethodPut, "/v1/subscriptions/s1", adminToken, withSigning)
	if v = view(status, body, http.StatusOK); v.SecretCount != 2 || len(v.PublicKeys) != 2 || v.PublicKeys[0] != pk || v.PublicKeys[1] == pk {
		t.Fatalf("PUT with signing: %s, want the old public key then a new one", body)
	}
	pk2 := v.PublicKeys[1]
	d = deliver("evt-3")
	_, old := verifyEntries(t, d, "", pk)
	_, fresh := verifyEntries(t, d, "", pk2)
	if !old || !fresh {
		t.Errorf("during the second rotation the old key verifies: %v, the new: %v; want both", old, fresh)
	}

	// The bridge holds whsk_ secrets whose public keys are the ones shown.
	for _, s := range bridge.Subscriptions() {
		for i, sec := range s.Secrets {
			if p, err := webhook.PublicKey(sec); err != nil || p != v.PublicKeys[i] {
				t.Errorf("secret %d of the bridge's subscription: public key %s, %v; want %s", i+1, p, err, v.PublicKeys[i])
			}
		}
	}
	if strings.Contains(logs.String(), "whsk_") {
		t.Errorf("the logs show a private key:\n%s", logs.String())
	}
}

func TestAdminRefusesBadSigningKeys(t *testing.T) {
	ts, _ := api(t, webhookhttp.Config{Bridge: newBridge(t), AdminToken: adminToken})
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey)
	pk := "whpk_" + base64.StdEncoding.EncodeToString(pub)
	for _, c := range []struct{ name, method, path, body, want string }{
		{"unknown signing", http.MethodPost, "/v1/subscriptions", `{"id": "a", "topic": "*", "url": "http://127.0.0.1:1/", "signing": "rsa"}`, `signing "rsa"`},
		{"bad base64", http.MethodPost, "/v1/subscriptions", `{"id": "a", "topic": "*", "url": "http://127.0.0.1:1/", "secret": "whsk_%%%"}`, "not valid base64"},
		{"wrong length", http.MethodPost, "/v1/subscriptions", `{"id": "a", "topic": "*", "url": "http://127.0.0.1:1/", "secret": "whsk_AAAA"}`, "3 bytes once decoded"},
		{"public key to create", http.MethodPost, "/v1/subscriptions", `{"id": "a", "topic": "*", "url": "http://127.0.0.1:1/", "secret": "` + pk + `"}`, "whpk_"},
		{"public key in check", http.MethodPost, "/v1/subscriptions/check", `{"id": "a", "topic": "*", "url": "http://127.0.0.1:1/", "secret": "` + pk + `"}`, "whpk_"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body, ct := call(t, ts, c.method, c.path, adminToken, c.body)
			if p := problem(t, status, body, ct); status != http.StatusBadRequest || !strings.Contains(p.Error, c.want) || !strings.Contains(p.Error, `subscription "a"`) {
				t.Errorf("%d %s, want 400 naming the subscription and saying %q", status, body, c.want)
			}
		})
	}
	// A public key that names no private key of the subscription.
	status, body, _ := call(t, ts, http.MethodPost, "/v1/subscriptions", adminToken,
		`{"id": "b", "topic": "*", "url": "http://127.0.0.1:1/", "signing": "ed25519"}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	status, body, ct := call(t, ts, http.MethodPut, "/v1/subscriptions/b", adminToken,
		`{"topic": "*", "url": "http://127.0.0.1:1/", "secret": ["`+pk+`"]}`)
	if p := problem(t, status, body, ct); status != http.StatusBadRequest || !strings.Contains(p.Error, "secret 1") {
		t.Errorf("PUT with an unknown public key: %d %s", status, body)
	}
	status, body, _ = call(t, ts, http.MethodPost, "/v1/subscriptions/check", adminToken,
		`{"id": "c", "topic": "*", "url": "http://127.0.0.1:1/", "signing": "ed25519"}`)
	if status != http.StatusOK {
		t.Errorf("check with signing: %d %s", status, body)
	}
}
