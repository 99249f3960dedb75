package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// DefaultDisableAfter is how long a subscription's every delivery may fail
// before the bridge disables it, when [Config.DisableAfter] is 0.
const DefaultDisableAfter = 5 * 24 * time.Hour

// SubscriptionDisabledEvent is the name of the event the bridge emits into
// its own stream when it disables a subscription that only failed, so that
// another subscription can tell a person. Its payload is a
// [DisabledNotice] in JSON.
const SubscriptionDisabledEvent pubsub.Name = "webhook.subscription.disabled"

// DisabledNotice is the payload of a [SubscriptionDisabledEvent].
type DisabledNotice struct {
	SubscriptionID      string       `json:"subscription_id"`
	Reason              string       `json:"reason"`
	FailingSince        time.Time    `json:"failing_since"`
	ConsecutiveFailures int64        `json:"consecutive_failures"`
	LastFailure         *LastAttempt `json:"last_failure,omitempty"`
}

// HealthState sums up how a subscription's deliveries go.
type HealthState string

// The states of a subscription, in the order they take precedence.
const (
	// StateDisabled: the subscription is disabled.
	StateDisabled HealthState = "disabled"
	// StateCircuitOpen: its endpoint's circuit is open (as this bridge
	// sees it): deliveries wait for the cooldown.
	StateCircuitOpen HealthState = "circuit_open"
	// StateFailing: its last attempt failed.
	StateFailing HealthState = "failing"
	// StateRateLimited: a rate limit held its deliveries back within the
	// last minute (on this bridge).
	StateRateLimited HealthState = "rate_limited"
	// StateHealthy: none of the above.
	StateHealthy HealthState = "healthy"
)

// SubscriptionHealth is a subscription's health report.
type SubscriptionHealth struct {
	SubscriptionID string      `json:"subscription_id"`
	State          HealthState `json:"state"`
	HealthStats
}

// limitedRecently is how long after a rate limit held a delivery back a
// subscription's state says rate_limited.
const limitedRecently = time.Minute

// Health reports the health of the subscriptions named (every one in
// force when none is), in the order asked; IDs not in force are left out.
// Without a [Config.Health] store, only the state is reported, from what
// this bridge knows (disabled, circuit, rate limits).
func (b *Bridge) Health(ctx context.Context, ids ...string) ([]SubscriptionHealth, error) {
	t := b.table.Load()
	if len(ids) == 0 {
		for _, s := range t.list {
			ids = append(ids, s.ID)
		}
	}
	now := time.Now()
	var stats map[string]HealthStats
	if b.cfg.Health != nil {
		var err error
		if stats, err = b.cfg.Health.Stats(ctx, now, ids...); err != nil {
			return nil, fmt.Errorf("webhook: reading health: %w", err)
		}
	}
	out := make([]SubscriptionHealth, 0, len(ids))
	for _, id := range ids {
		rt, ok := t.byID[id]
		if !ok {
			continue
		}
		h := SubscriptionHealth{SubscriptionID: id, HealthStats: stats[id]}
		switch {
		case rt.sub.Disabled:
			h.State = StateDisabled
		case b.circuitOpen(rt, now):
			h.State = StateCircuitOpen
		case h.ConsecutiveFailures > 0:
			h.State = StateFailing
		case now.Sub(time.Unix(0, rt.limitedAt.Load())) < limitedRecently:
			h.State = StateRateLimited
		default:
			h.State = StateHealthy
		}
		out = append(out, h)
	}
	return out, nil
}

// ResetHealth forgets what the health store counted of a subscription, so
// that it starts afresh (after it was enabled again, say). Without a
// health store it does nothing.
func (b *Bridge) ResetHealth(ctx context.Context, id string) error {
	if b.cfg.Health == nil {
		return nil
	}
	return b.cfg.Health.Forget(ctx, id)
}

// circuitOpen reports whether rt's endpoint's circuit holds deliveries
// back at now, without making an endpoint the bridge has not met.
func (b *Bridge) circuitOpen(rt *route, now time.Time) bool {
	b.endpoints.mu.Lock()
	ep, ok := b.endpoints.m[rt.endpoint]
	b.endpoints.mu.Unlock()
	if !ok {
		return false
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return !ep.openUntil.IsZero() && now.Before(ep.openUntil)
}

// disableFailing disables the subscriptions among those that failed in
// samples whose every delivery has failed for DisableAfter. It runs on
// the recorder's goroutine, after the samples are counted.
func (b *Bridge) disableFailing(samples []HealthSample) {
	if b.cfg.DisableAfter < 0 {
		return
	}
	var ids []string
	for _, s := range samples {
		if s.Kind == FailedSample && !slices.Contains(ids, s.SubscriptionID) {
			ids = append(ids, s.SubscriptionID)
		}
	}
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now()
	stats, err := b.cfg.Health.Stats(ctx, now, ids...)
	if err != nil {
		b.cfg.Logger.Warn("webhook: reading health to check for subscriptions to disable", "err", err)
		return
	}
	for _, id := range ids {
		st, ok := stats[id]
		if !ok || st.ConsecutiveFailures == 0 || st.FailingSince.IsZero() || now.Sub(st.FailingSince) < b.cfg.DisableAfter {
			continue
		}
		// Replicas write their samples each in its own batches: failures
		// that ended before another replica's success may be counted after
		// it, and then FailingSince is older than that success. The last
		// success, the latest ever counted whatever the order, decides.
		if st.LastSuccess != nil && now.Sub(st.LastSuccess.At) < b.cfg.DisableAfter {
			continue
		}
		reason := fmt.Sprintf("every delivery failed for %s (%d in a row since %s)", b.cfg.DisableAfter, st.ConsecutiveFailures,
			st.FailingSince.UTC().Format(time.RFC3339))
		if err := b.disable(ctx, id, reason, st); err != nil {
			b.cfg.Logger.Error("webhook: disabling a subscription that only fails", "subscription", id, "err", err)
		}
	}
}

// disable disables a subscription through Config.Disable, or in the
// bridge's own set without one, and when that changed anything, emits a
// SubscriptionDisabledEvent and logs it.
func (b *Bridge) disable(ctx context.Context, id, reason string, st HealthStats) error {
	if rt, ok := b.table.Load().byID[id]; !ok || rt.sub.Disabled {
		return nil
	}
	var changed bool
	var err error
	if b.cfg.Disable != nil {
		changed, err = b.cfg.Disable(ctx, id, reason)
	} else {
		changed, err = b.disableHere(id)
	}
	if err != nil || !changed {
		return err
	}
	b.cfg.Logger.Warn("webhook: subscription disabled: every delivery failed for disable_after; re-enable it once its endpoint is fixed",
		"subscription", id, "reason", reason)
	if o, ok := b.cfg.Observer.(DisableObserver); ok {
		o.SubscriptionDisabled(id)
	}
	payload, err := json.Marshal(DisabledNotice{SubscriptionID: id, Reason: reason, FailingSince: st.FailingSince.UTC(),
		ConsecutiveFailures: st.ConsecutiveFailures, LastFailure: st.LastFailure})
	if err != nil {
		return err
	}
	ev := pubsub.NewEvent(ctx, SubscriptionDisabledEvent, payload)
	if err := b.pub.Emit(ctx, ev); err != nil {
		return fmt.Errorf("emitting %s: %w", SubscriptionDisabledEvent, err)
	}
	return nil
}

// disableHere disables a subscription in the bridge's own set: what
// [Bridge.SetSubscriptions] gives it next replaces that.
func (b *Bridge) disableHere(id string) (bool, error) {
	b.disableMu.Lock()
	defer b.disableMu.Unlock()
	t := b.table.Load()
	subs := slices.Clone(t.list)
	for i := range subs {
		if subs[i].ID == id && !subs[i].Disabled {
			subs[i].Disabled = true
			return true, b.SetSubscriptions(subs)
		}
	}
	return false, nil
}

// DisableObserver is an [Observer] that is also told of subscriptions the
// bridge disabled because every delivery failed for [Config.DisableAfter].
type DisableObserver interface {
	SubscriptionDisabled(subscriptionID string)
}
