package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/switchyard-go/switchyard/pubsub"
)

// Limits on what a delivery carries in its headers. Ingest refuses events
// beyond them; an event beyond them that reaches the bridge some other way
// (written to the stream directly) is dead-lettered at once as
// [KindUndeliverable], never tried.
const (
	// MaxEventIDLen is the longest event ID ingest accepts, in bytes.
	MaxEventIDLen = 128
	// MaxNameLen is the longest event name a delivery carries, in bytes.
	MaxNameLen = 256
	// MaxCorrelationIDLen is the longest correlation ID a delivery
	// carries, in bytes.
	MaxCorrelationIDLen = 256
)

// messageIDPrefix starts the webhook-id of an event whose ID is outside the
// ID alphabet.
const messageIDPrefix = "sw_"

// CheckEventID reports whether id may be given to an event at ingest: 1 to
// [MaxEventIDLen] bytes of ASCII letters, digits, '-' and '_'. Such an id is
// the delivery's webhook-id as it is, which every Standard Webhooks
// verifier reads alike (no '.', which the signed content uses as its
// separator; no byte that an HTTP stack could re-encode).
func CheckEventID(id string) error {
	switch {
	case id == "":
		return errors.New("empty")
	case len(id) > MaxEventIDLen:
		return fmt.Errorf("%d bytes, at most %d", len(id), MaxEventIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			return fmt.Errorf("byte %d is %q: an id is made of ASCII letters, digits, '-' and '_'", i, id[i])
		}
	}
	return nil
}

func idByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// MessageID is the webhook-id of a delivery of the event with id: id itself
// when [CheckEventID] accepts it, else "sw_" followed by the first 16 bytes
// of the SHA-256 of id in lowercase hex. The mapping is stable, so retries
// and replicas send the same webhook-id for the same event and receivers
// can deduplicate on it; the event's own id still travels, percent-encoded,
// in ce-id.
func MessageID(id pubsub.ID) string {
	if CheckEventID(string(id)) == nil {
		return string(id)
	}
	sum := sha256.Sum256([]byte(id))
	return messageIDPrefix + hex.EncodeToString(sum[:16])
}

// CheckDeliverable reports why ev cannot become a delivery, or nil: it must
// pass [pubsub.Event.Validate] (no control characters or invalid UTF-8 in
// its id, name or correlation ID) and keep its name and correlation ID
// within [MaxNameLen] and [MaxCorrelationIDLen]. The error names the
// field.
func CheckDeliverable(ev pubsub.Event) error {
	if err := ev.Validate(); err != nil {
		return err
	}
	switch {
	case len(ev.Name) > MaxNameLen:
		return fmt.Errorf("name: %d bytes, at most %d", len(ev.Name), MaxNameLen)
	case len(ev.Meta.CorrelationID) > MaxCorrelationIDLen:
		return fmt.Errorf("correlation_id: %d bytes, at most %d", len(ev.Meta.CorrelationID), MaxCorrelationIDLen)
	}
	return nil
}
