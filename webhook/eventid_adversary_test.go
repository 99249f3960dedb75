package webhook_test

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"testing"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// ADVERSARY: two different event ids never map to the same webhook-id.
// An id outside the alphabet maps to "sw_" and 32 hex digits; such an id
// is refused at ingest, and from the stream it is mapped in turn, so no
// event can take the webhook-id of another.
func TestAdversaryMessageIDCollision(t *testing.T) {
	for _, victim := range []pubsub.ID{"order.1042", "a b", "é", "x\u2028y"} {
		sum := sha256.Sum256([]byte(victim))
		forged := pubsub.ID("sw_" + hex.EncodeToString(sum[:16]))
		if webhook.CheckEventID(string(forged)) == nil {
			t.Errorf("forged id %q is accepted at ingest", forged)
		}
		if a, b := webhook.MessageID(victim), webhook.MessageID(forged); a == b {
			t.Errorf("event ids %q and %q both get webhook-id %s", victim, forged, a)
		}
	}
}

// MessageID is ASCII without '.', stable, within the alphabet, and an id
// of the alphabet (not starting with sw_) is its own webhook-id.
func TestAdversaryMessageIDShape(t *testing.T) {
	alphabet := regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	for _, id := range []pubsub.ID{"a.b", ".", "..", "é", "a\u2028", "ｆ", "a b", "%2E", "sw_", "sw_zz", "order-1", "A_b-9"} {
		m := webhook.MessageID(id)
		if m != webhook.MessageID(id) || !alphabet.MatchString(m) {
			t.Errorf("MessageID(%q) = %q", id, m)
		}
		if webhook.CheckEventID(string(id)) == nil && m != string(id) {
			t.Errorf("MessageID(%q) = %q, want the id itself", id, m)
		}
	}
}
