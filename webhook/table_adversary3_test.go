package webhook_test

import (
	"encoding/base64"
	"testing"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// Rotating a secret the natural way through the Go API — take the
// subscriptions in force, change one's secret, set them — must sign with
// the new secret. Subscriptions() hands out the table's own Secrets slice,
// so editing it in place also edits the compiled route's copy of the
// subscription: reuseOrCompile's DeepEqual then sees "unchanged" and keeps
// the HMAC keys compiled from the old secret.
func TestAdversary3SecretRotatedInPlaceTakesEffect(t *testing.T) {
	s := newSink(t, nil)
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{{
		ID: "orders", Topic: "order.created", URL: s.URL + "/hook", Secrets: webhook.Secrets{vectorSecret},
	}}})
	fresh := "whsec_" + base64.StdEncoding.EncodeToString([]byte("a brand new secret, 32 bytes...."))
	subs := h.bridge.Subscriptions()
	subs[0].Secrets[0] = fresh // rotate
	if err := h.bridge.SetSubscriptions(subs); err != nil {
		t.Fatal(err)
	}
	h.emit(t, pubsub.Event{ID: "evt-rot", Name: "order.created", Payload: []byte(`{}`)})
	got := s.waitFor(t, 1)[0]
	sig, ts := got.Header.Get("Webhook-Signature"), got.Header.Get("Webhook-Timestamp")
	if !verifyIndependently(fresh, "evt-rot", ts, got.Body, sig) {
		t.Errorf("after rotating the secret to a new one, the delivery is not signed with it (signature %q); old secret verifies: %v",
			sig, verifyIndependently(vectorSecret, "evt-rot", ts, got.Body, sig))
	}
}

// A filter edited back and forth must end as last set.
func TestAdversary3FilterEditedBackAndForth(t *testing.T) {
	s := newSink(t, nil)
	h := newHarness(t, webhook.Config{Subscriptions: []webhook.Subscription{{
		ID: "f", Topic: "t", URL: s.URL + "/f", Filter: `data.n == 1`,
	}}})
	set := func(f string) {
		subs := h.bridge.Subscriptions()
		subs[0].Filter = f
		if err := h.bridge.SetSubscriptions(subs); err != nil {
			t.Fatal(err)
		}
	}
	set(`data.n == 2`)
	set(`data.n == 1`)
	set(`data.n == 2`)
	h.emit(t, pubsub.Event{ID: "e1", Name: "t", Payload: []byte(`{"n":1}`)}, pubsub.Event{ID: "e2", Name: "t", Payload: []byte(`{"n":2}`)})
	s.waitFor(t, 1)
	h.until(t, "both events consumed", func() bool { return len(h.obs.consumedEvents()) >= 2 })
	hits := s.snapshot()
	if len(hits) != 1 || hits[0].Header.Get("Webhook-Id") != "e2" {
		t.Errorf("after editing the filter back and forth to data.n == 2, deliveries = %d (first id %q), want only e2", len(hits), hits[0].Header.Get("Webhook-Id"))
	}
}
