package webhook

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// RetryEventName names the events a bridge emits to itself to retry one
// delivery later. Subscriptions never match them, "*" included.
const RetryEventName pubsub.Name = "switchyard.webhook.retry"

// RecoverEventName names the events a bridge emits to itself to deliver
// recovered events to one subscription one after another ([Recover]).
// Subscriptions never match them.
const RecoverEventName pubsub.Name = "switchyard.webhook.recover"

// IsBridgeEvent reports whether name is one of the bridge's own events
// ([RetryEventName], [RecoverEventName]): never matched to a subscription,
// kept beside the stream (webhook-bridge routes them to its retry stream),
// and refused by ingest.
func IsBridgeEvent(name pubsub.Name) bool { return name == RetryEventName || name == RecoverEventName }

// retry is the payload of a retry event: one subscription's delivery of
// one event, and what happened so far.
type retry struct {
	SubscriptionID string       `json:"subscription_id"`
	Attempts       int          `json:"attempts"` // deliveries tried so far
	LastStatus     int          `json:"last_status,omitempty"`
	LastError      string       `json:"last_error,omitempty"`
	Event          pubsub.Event `json:"event"`
	// FirstAttempt is the traceparent of the span of the delivery's first
	// attempt, which the span of each retry links to; "" with spans off.
	// A malformed value is ignored.
	FirstAttempt traceLink `json:"first_attempt_traceparent,omitempty"`
}

func (r retry) event() (pubsub.Event, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return pubsub.Event{}, err
	}
	return pubsub.Event{
		ID:   pubsub.ID(fmt.Sprintf("%s/%s/%d", r.Event.ID, r.SubscriptionID, r.Attempts)),
		Name: RetryEventName,
		Meta: pubsub.Meta{
			CreatedAtUTC: time.Now().UTC(), CorrelationID: r.Event.Meta.CorrelationID,
			Attempts: r.Attempts, IsDryRun: r.Event.Meta.IsDryRun,
		},
		Payload: b,
	}, nil
}

func decodeRetry(ev pubsub.Event) (retry, error) {
	var r retry
	if err := json.Unmarshal(ev.Payload, &r); err != nil || r.SubscriptionID == "" || r.Event.ID == "" || r.Attempts < 0 || r.Event.Name == RetryEventName || r.Event.Name == "" {
		return r, fmt.Errorf("webhook: retry event %s is not a retry of this bridge: %w", ev.ID, pubsub.ErrPermanent)
	}
	return r, nil
}

// UnwrapRetry returns the subscription and the event of a retry event the
// bridge emitted to itself ([RetryEventName]); ok is false for any other
// event. Listings use it to show a dead-lettered retry as the delivery it
// stood for.
func UnwrapRetry(ev pubsub.Event) (subscriptionID string, event pubsub.Event, attempts int, ok bool) {
	if ev.Name != RetryEventName {
		return "", ev, 0, false
	}
	r, err := decodeRetry(ev)
	if err != nil {
		return "", ev, 0, false
	}
	return r.SubscriptionID, r.Event, r.Attempts, true
}

// UnwrapRecovery returns the subscription and the events still to deliver,
// in order, of a recovery event the bridge emitted to itself
// ([RecoverEventName]); ok is false for any other event.
func UnwrapRecovery(ev pubsub.Event) (subscriptionID string, events []pubsub.ID, ok bool) {
	if ev.Name != RecoverEventName {
		return "", nil, false
	}
	var r recovery
	if err := json.Unmarshal(ev.Payload, &r); err != nil || r.SubscriptionID == "" {
		return "", nil, false
	}
	return r.SubscriptionID, r.Events, true
}
