package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// recoverLink is how many events one recovery event delivers, one after
// another, before it hands the rest to the next.
const recoverLink = 100

// recovery is the payload of a RecoverEventName event: the events still to
// deliver to one subscription, in order.
type recovery struct {
	SubscriptionID string      `json:"subscription_id"`
	ID             string      `json:"recovery"`
	Events         []pubsub.ID `json:"events"`
}

func (r recovery) event() (pubsub.Event, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return pubsub.Event{}, err
	}
	return pubsub.Event{
		ID:   pubsub.ID(fmt.Sprintf("%s/%s/%d", r.ID, r.SubscriptionID, len(r.Events))),
		Name: RecoverEventName, Meta: pubsub.Meta{CreatedAtUTC: time.Now().UTC()}, Payload: b,
	}, nil
}

func (r recovery) marker() string { return recoverRecorded + " (" + r.ID + ")" }

// handleRecovery delivers the first events of a recovery event to its
// subscription one after another, then emits the rest as the next one.
// An event is sent only while the recovery's record is its newest attempt
// (see Recover). A subscription removed or disabled meanwhile has each
// remaining event dead-lettered as orphaned, for a later recovery.
func (b *Bridge) handleRecovery(ctx context.Context, ev pubsub.Event) error {
	var r recovery
	if err := json.Unmarshal(ev.Payload, &r); err != nil || r.SubscriptionID == "" || r.ID == "" {
		return fmt.Errorf("webhook: recovery event %s is not one of this bridge: %w", ev.ID, pubsub.ErrPermanent)
	}
	if b.cfg.AttemptLog == nil {
		return fmt.Errorf("webhook: recovery event %s needs the delivery log (Config.AttemptLog), which this bridge has not: %w", ev.ID, pubsub.ErrPermanent)
	}
	rt := b.routeNow(ctx, r.SubscriptionID)
	n := len(r.Events)
	if rt != nil {
		n = min(n, recoverLink)
	}
	for _, id := range r.Events[:n] {
		pending, err := b.recoveryPending(ctx, r, id)
		if err != nil || !pending {
			if err != nil {
				return err
			}
			continue
		}
		e, err := b.cfg.AttemptLog.Event(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // past retention since Recover read it
		}
		if err != nil {
			return fmt.Errorf("webhook: recovery %s: reading event %s: %w", r.ID, id, err)
		}
		if rt == nil {
			err = b.deadLetter(ctx, r.SubscriptionID, KindOrphaned, e, 0, result{},
				fmt.Sprintf("subscription %q was removed or disabled while its recovery waited", r.SubscriptionID))
		} else {
			err = b.fanOut(ctx, ev, []*route{rt}, e, 0)
		}
		if err != nil {
			return err
		}
		// Its attempt in the log before the next is sent: handled again
		// (a crash, a lost acknowledgement), the recovery skips it.
		if err := b.flushLog(ctx); err != nil {
			return fmt.Errorf("webhook: recovery %s: writing the attempt of %s to the delivery log: %w", r.ID, id, err)
		}
	}
	if rest := r.Events[n:]; len(rest) > 0 {
		r.Events = rest
		next, err := r.event()
		if err == nil {
			err = b.pub.Emit(ctx, next)
		}
		if err != nil {
			return fmt.Errorf("webhook: recovery %s: handing on %d events: %w", r.ID, len(rest), err)
		}
	}
	return nil
}

// flushLog waits, up to recordRetryFor, until the attempts queued so far
// are in the delivery log.
func (b *Bridge) flushLog(ctx context.Context) error {
	if b.rec == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, recordRetryFor)
	defer cancel()
	return b.rec.flush(ctx)
}

// routeNow returns the subscription's route if it is in force and
// enabled, reloading the set first when it is not (another replica may
// have just enabled it); nil otherwise.
func (b *Bridge) routeNow(ctx context.Context, id string) *route {
	rt, ok := b.table.Load().byID[id]
	if (!ok || rt.sub.Disabled) && b.cfg.Reload != nil && b.cfg.Reload(ctx) == nil {
		rt, ok = b.table.Load().byID[id]
	}
	if !ok || rt.sub.Disabled {
		return nil
	}
	return rt
}

// recoveryPending reports whether the recovery's record is still event
// id's newest attempt for the subscription.
func (b *Bridge) recoveryPending(ctx context.Context, r recovery, id pubsub.ID) (bool, error) {
	for q := (AttemptQuery{SubscriptionID: r.SubscriptionID, EventID: id, Limit: 1}); ; {
		page, err := b.cfg.AttemptLog.Query(ctx, q)
		if err != nil {
			return false, fmt.Errorf("webhook: recovery %s: reading the attempts of %s: %w", r.ID, id, err)
		}
		if len(page.Attempts) > 0 {
			return page.Attempts[0].Outcome == Deferred && page.Attempts[0].Error == r.marker(), nil
		}
		if page.Next == "" {
			return false, nil
		}
		q.Cursor = page.Next // a page may hold none before the end
	}
}
