package interop

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// TestV1aDeliveriesVerifyInNode runs the bridge binary with ed25519
// (Standard Webhooks v1a) signing keys and has Node verify every delivery
// with node:crypto's ed25519, an implementation apart from Go's. None of
// the official Standard Webhooks libraries verifies v1a in a released
// version (npm standardwebhooks 1.1.1, the Go library v1.3.0, the Python
// package of the repository's main branch: support exists only in
// unmerged branches), so node:crypto stands in for them; the test also
// checks that standardwebhooks still refuses a whpk_ key, so that a
// release that accepts one is noticed and added. A rotation from a
// whsec_ secret to a whsk_ key sends both entries, and the v1 entry keeps
// verifying with the Go and Node libraries beside the v1a one.
func TestV1aDeliveriesVerifyInNode(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	seedKey := "whsk_" + base64.StdEncoding.EncodeToString(priv.Seed())
	longKey := "whsk_" + base64.StdEncoding.EncodeToString(priv) // seed and public key, 64 bytes
	publicKey := "whpk_" + base64.StdEncoding.EncodeToString(pub)
	old := newSecret(t, 32)

	secrets := map[string][]string{"node-rotate": {old}, "go-rotate": {old}}
	keys := map[string][]string{
		"node-rotate": {publicKey}, "go-rotate": {publicKey}, "node-v1a": {publicKey}, "node-v1a-long": {publicKey},
	}
	ds := newDeliveries()
	goURL := startGoReceiver(t, ds)
	node := startNodeReceiverWithKeys(t, ds, secrets, keys)

	stream := fmt.Sprintf("interop-v1a-%d", time.Now().UnixNano())
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	defer client.Close()
	ctx := context.Background()
	if err := client.XGroupCreateMkStream(ctx, stream, "webhook-bridge", "0").Err(); err != nil {
		t.Fatalf("XGROUP CREATE: %v", err)
	}
	startBridge(t, `
listen: LISTEN
redis:
  url: redis://`+redisServer.Addr+`/0
stream: `+stream+`
group: webhook-bridge
consumer: interop-v1a
subscriptions:
  - id: node-rotate
    topic: "*"
    url: `+node.url+`/rotate
    secret: [`+old+`, `+seedKey+`]
  - id: go-rotate
    topic: "*"
    url: `+goURL+`/rotate
    secret: [`+old+`, `+seedKey+`]
  - id: node-v1a
    topic: "*"
    url: `+node.url+`/v1a
    secret: `+seedKey+`
  - id: node-v1a-long
    topic: "*"
    url: `+node.url+`/v1a-long
    secret: `+longKey+`
`)
	events := []pubsub.Event{
		{ID: "v1a-json", Name: "order.created", Payload: []byte(`{ "customer": "Zoë", "amount": 1.50 }`)},
		{ID: "v1a-text", Name: "note.text", Payload: []byte("plain text ☃\n")},
		{ID: "v1a-binary", Name: "blob.uploaded", Payload: allBytes()},
		{ID: "v1a.dotted", Name: "forge.pushed", Payload: []byte(`{"dotted":true}`)},
	}
	pub2, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub2.Emit(ctx, events...); err != nil {
		t.Fatal(err)
	}
	_ = pub2.Close()

	want := len(events) * len(keys)
	all, ok := ds.waitUntil(wait, func(all []delivery) bool { return len(all) >= want })
	if !ok {
		t.Fatalf("%d deliveries within %s, want %d", len(all), wait, want)
	}
	for i := range all {
		if all[i].via == "go" {
			if err := node.check(&all[i]); err != nil {
				t.Fatalf("%s: %v", all[i], err)
			}
		}
	}
	for _, d := range all {
		sub := d.subscription()
		entries := strings.Fields(d.header.Get("Webhook-Signature"))
		wantEntries := []string{"v1a,"}
		if strings.HasSuffix(sub, "-rotate") {
			wantEntries = []string{"v1,", "v1a,"}
		}
		if len(entries) != len(wantEntries) {
			t.Errorf("%s: webhook-signature %q, want entries %v", d, d.header.Get("Webhook-Signature"), wantEntries)
		}
		for i := range min(len(entries), len(wantEntries)) {
			if !strings.HasPrefix(entries[i], wantEntries[i]) {
				t.Errorf("%s: signature entry %d is %q, want %s…", d, i+1, entries[i], wantEntries[i])
			}
		}
		if len(d.nodeV1a) != 1 {
			t.Errorf("%s: Node checked %d public keys, want 1", d, len(d.nodeV1a))
			continue
		}
		ch := d.nodeV1a[0]
		if ch.NodeCrypto != "ok" {
			t.Errorf("%s: node:crypto ed25519 with the whpk_ key: %s", d, ch.NodeCrypto)
		}
		if ch.StandardWebhooks == "ok" {
			t.Errorf("%s: npm standardwebhooks now verifies with a whpk_ key: add it as a v1a verifier (interop, docs/webhook-bridge.md)", d)
		}
		if strings.HasSuffix(sub, "-rotate") {
			// The v1 entry, beside a v1a one, still verifies with the
			// libraries of both languages.
			if err := verifyStandardWebhooks(old, d.header, d.body); err != nil {
				t.Errorf("%s: standard-webhooks (Go) with the whsec_ secret: %v", d, err)
			}
			if err := verifySvix(old, d.header, d.body); err != nil {
				t.Errorf("%s: svix (Go) with the whsec_ secret: %v", d, err)
			}
			checkNode(t, nil, d, 1)
		}
	}
	// A verifier that accepts anything proves nothing: Node must refuse
	// a changed body, and another key.
	tampered := all[0]
	tampered.body = bytes.Clone(tampered.body)
	tampered.body[len(tampered.body)/2] ^= 1
	if err := node.check(&tampered); err != nil {
		t.Fatal(err)
	}
	if len(tampered.nodeV1a) != 1 || tampered.nodeV1a[0].NodeCrypto == "ok" {
		t.Errorf("%s: node:crypto verified a changed body: %+v", tampered, tampered.nodeV1a)
	}
}
