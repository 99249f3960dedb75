package webhook_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// ADVERSARY: two different event ids never map to the same webhook-id.
// An id outside the alphabet maps to "sw_" and 32 hex digits, which is
// itself an id inside the alphabet, mapped to itself: anyone who can post
// an event (or write one to the stream) can give it the webhook-id of
// another event whose id holds a '.', a space or non-ASCII, and the
// receiver, deduplicating on webhook-id as the doc tells it to, drops
// whichever arrives second.
func TestAdversaryMessageIDCollision(t *testing.T) {
	for _, victim := range []pubsub.ID{"order.1042", "a b", "é", "x\u2028y"} {
		sum := sha256.Sum256([]byte(victim))
		forged := pubsub.ID("sw_" + hex.EncodeToString(sum[:16]))
		if webhook.CheckEventID(string(forged)) != nil {
			t.Fatalf("forged id %q is refused at ingest; no collision through POST", forged)
		}
		if a, b := webhook.MessageID(victim), webhook.MessageID(forged); a == b {
			t.Errorf("event ids %q and %q both get webhook-id %s", victim, forged, a)
		}
	}
}

// MessageID is ASCII without '.', stable, and within the alphabet.
func TestAdversaryMessageIDShape(t *testing.T) {
	for _, id := range []pubsub.ID{"a.b", ".", "..", "é", "a\u2028", "ｆ", "a b", "%2E", "sw_", "sw_zz"} {
		m := webhook.MessageID(id)
		if m != webhook.MessageID(id) || webhook.CheckEventID(m) != nil {
			t.Errorf("MessageID(%q) = %q", id, m)
		}
	}
}
