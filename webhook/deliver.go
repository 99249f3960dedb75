package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// deliver makes delivery attempt tried+1 of ev to rt, and settles its
// outcome: done, retry scheduled, deferred, or dead-lettered. It returns
// an error only when that outcome could not be recorded. The dispatcher
// calls it with one of the endpoint's slots taken.
//
// With spans on, the attempt has one ("webhook deliver"), a child of
// ctx's (the event's consumer span), linked to the delivery's first
// attempt when it is a retry.
func (b *Bridge) deliver(ctx context.Context, rt *route, ev pubsub.Event, eh *eventHeaders, tried int) error {
	if ev.Meta.IsDryRun || !b.tracer.On() {
		// Not even a lookup in ctx: through context.WithoutCancel's, one
		// allocates.
		return b.attempt(ctx, rt, ev, eh, tried, nil)
	}
	first := firstAttempt(ctx)
	ctx, span := b.tracer.Deliver(ctx, rt.sub.ID, rt.traceURL, tried+1, first)
	if !span.Recording() {
		return b.attempt(ctx, rt, ev, eh, tried, nil)
	}
	if !first.IsValid() {
		ctx = withFirstAttempt(ctx, span.SpanContext())
	}
	var n attemptNote
	err := b.attempt(ctx, rt, ev, eh, tried, &n)
	n.end(span, err)
	return err
}

// attempt is deliver's work; n, when not nil, is told what it came to.
func (b *Bridge) attempt(ctx context.Context, rt *route, ev pubsub.Event, eh *eventHeaders, tried int, n *attemptNote) error {
	attempt := tried + 1
	log := b.cfg.Logger
	if ev.Meta.IsDryRun {
		log.Info("webhook: dry run matched, not sent", "subscription", rt.sub.ID, "event_id", ev.ID, "event_name", ev.Name)
		b.cfg.Observer.Delivery(rt.sub.ID, DryRun, 0, 0)
		b.record(rt, rt.sub.ID, ev, attempt, DryRun, result{}, "")
		return nil
	}
	b.inFlight.Add(1)
	defer b.inFlight.Add(-1)

	ep := b.endpoints.get(rt.endpoint)
	now := time.Now()
	ok, probe, retryAt := ep.admit(now)
	if !ok {
		b.cfg.Observer.Delivery(rt.sub.ID, Deferred, 0, 0)
		n.set(Deferred, result{})
		b.record(rt, rt.sub.ID, ev, attempt, Deferred, result{}, errCircuitOpen.Error()+", waits until "+retryAt.UTC().Format(time.RFC3339))
		log.Debug("webhook: circuit open, delivery waits", "subscription", rt.sub.ID, "event_id", ev.ID, "until", retryAt)
		return b.schedule(ctx, rt, ev, tried, retryAt, result{err: errCircuitOpen})
	}
	if at, err := b.rateLimit(ctx, rt, ep, now); !at.IsZero() {
		if probe {
			ep.release() // the probe did not happen
		}
		b.cfg.Observer.Delivery(rt.sub.ID, RateLimited, 0, 0)
		rt.limitedAt.Store(now.UnixNano())
		reason := result{err: errRateLimited}
		if err != nil {
			log.Warn("webhook: rate limiter failed, delivery deferred", "subscription", rt.sub.ID, "event_id", ev.ID, "err", err)
			reason = result{err: fmt.Errorf("rate limiter: %w", err)}
		} else if log.Enabled(ctx, slog.LevelDebug) {
			log.Debug("webhook: rate limited, delivery waits", "subscription", rt.sub.ID, "event_id", ev.ID, "until", at)
		}
		n.set(RateLimited, result{})
		b.record(rt, rt.sub.ID, ev, attempt, RateLimited, reason, reason.err.Error()+", waits until "+at.UTC().Format(time.RFC3339))
		return b.schedule(ctx, rt, ev, tried, at, reason)
	}
	if probe {
		log.Info("webhook: circuit half-open, sending a probe", "endpoint", rt.endpoint, "subscription", rt.sub.ID, "event_id", ev.ID)
	}
	res := b.send(ctx, rt, ev, eh, attempt)
	if res.unsent {
		// Nothing reached the endpoint: its circuit learns nothing, and
		// no retry would send what could not be sent.
		if probe {
			ep.release()
		}
		n.dead(KindUndeliverable, res)
		return b.deadLetter(ctx, rt.sub.ID, KindUndeliverable, ev, tried, res, "undeliverable, never sent: "+res.describe())
	}
	if res.status == http.StatusTooManyRequests {
		b.tooMany(rt, ep, res.retryAfter)
	}
	circuit := ep.record(res.ok(), probe, time.Now(), b.cfg.Circuit)
	switch {
	case circuit.opened:
		log.Info("webhook: circuit open, deliveries to the endpoint wait", "endpoint", rt.endpoint, "failures", circuit.failures, "until", circuit.until)
	case circuit.closed:
		log.Info("webhook: circuit closed, the endpoint answers again", "endpoint", rt.endpoint, "subscription", rt.sub.ID, "event_id", ev.ID)
	}

	switch {
	case res.ok():
		b.cfg.Observer.Delivery(rt.sub.ID, Delivered, res.status, res.took)
		n.set(Delivered, res)
		b.record(rt, rt.sub.ID, ev, attempt, Delivered, res, "")
		if attempt > 1 {
			log.Info("webhook: delivered after retries", "subscription", rt.sub.ID, "event_id", ev.ID, "attempt", attempt, "status", res.status)
		} else if log.Enabled(ctx, slog.LevelDebug) {
			log.Debug("webhook: delivered", "subscription", rt.sub.ID, "event_id", ev.ID, "attempt", attempt, "status", res.status, "took", res.took)
		}
		return nil
	case res.status == http.StatusGone:
		b.cfg.Observer.Delivery(rt.sub.ID, Gone, res.status, res.took)
		n.dead(KindGone, res)
		return b.deadLetter(ctx, rt.sub.ID, KindGone, ev, attempt, res, "endpoint answered 410 Gone")
	}
	b.cfg.Observer.Delivery(rt.sub.ID, Failed, res.status, res.took)
	maxAttempts := b.cfg.Retry.MaxAttempts
	if rt.sub.MaxAttempts > 0 {
		maxAttempts = rt.sub.MaxAttempts
	}
	if attempt >= maxAttempts {
		n.dead(KindExhausted, res)
		return b.deadLetter(ctx, rt.sub.ID, KindExhausted, ev, attempt, res, fmt.Sprintf("%d attempts failed, the last: %s", attempt, res.describe()))
	}
	now = time.Now()
	at := now.Add(b.cfg.Retry.wait(attempt, res.retryAfter))
	circuitOpen := circuit.until.After(now)
	if circuitOpen {
		// Sooner, the retry would only find the circuit open.
		at = maxTime(at, circuit.until)
	}
	wait := at.Sub(now)
	log.Warn("webhook: delivery failed, retry scheduled", "subscription", rt.sub.ID, "event_id", ev.ID, "attempt", attempt,
		"status", res.status, "err", res.err, "retry_in", wait, "circuit_open", circuitOpen)
	b.cfg.Observer.RetryScheduled(rt.sub.ID, attempt+1, wait)
	outcome := Failed
	if res.timedOut {
		outcome = TimedOut
	}
	n.set(outcome, res)
	b.record(rt, rt.sub.ID, ev, attempt, outcome, res, "")
	return b.schedule(ctx, rt, ev, attempt, at, res)
}

// tooMany lowers the rate limits of rt's endpoint after it answered 429
// (with retryAfter, or none): see throttle. Endpoints without limits have
// no rate to lower; their retries wait for Retry-After.
func (b *Bridge) tooMany(rt *route, ep *endpoint, retryAfter time.Duration) {
	if b.cfg.RateLimiter == nil {
		return
	}
	if _, _, n := b.limitKeys(rt); n == 0 {
		return
	}
	factor, until := ep.tooMany(time.Now(), min(retryAfter, b.cfg.Retry.MaxRetryAfter))
	b.cfg.Logger.Info("webhook: endpoint answered 429, its rate limits lowered", "endpoint", rt.endpoint, "subscription", rt.sub.ID,
		"factor", factor, "until", until)
}

var (
	errCircuitOpen  = fmt.Errorf("circuit open after repeated failures")
	errEndpointBusy = fmt.Errorf("endpoint busy: its queue would not reach the delivery soon")
)

// schedule re-emits the delivery of ev to rt for at, with tried attempts
// counted so far.
func (b *Bridge) schedule(ctx context.Context, rt *route, ev pubsub.Event, tried int, at time.Time, last result) error {
	r := retry{SubscriptionID: rt.sub.ID, Attempts: tried, LastStatus: last.status, LastError: last.describe(), Event: ev,
		FirstAttempt: linkOf(firstAttempt(ctx))}
	rev, err := r.event()
	if err == nil {
		err = b.pub.EmitAt(ctx, at, rev)
	}
	if err != nil {
		return fmt.Errorf("webhook: scheduling the retry of %s for subscription %q: %w", ev.ID, rt.sub.ID, err)
	}
	return nil
}

// deadLetter records a delivery given up on.
func (b *Bridge) deadLetter(ctx context.Context, subID string, kind DeadLetterKind, ev pubsub.Event, attempts int, last result, reason string) error {
	dl := DeadLetter{SubscriptionID: subID, Kind: kind, Attempts: attempts, LastStatus: last.status, LastError: reason, At: time.Now().UTC(), Event: ev}
	if err := b.cfg.DeadLetters.Add(ctx, dl); err != nil {
		return fmt.Errorf("webhook: dead-lettering %q for subscription %q: %w", ev.ID, subID, err)
	}
	b.cfg.Observer.DeadLettered(subID, kind)
	b.record(b.table.Load().byID[subID], subID, ev, attempts, DeadLettered, last, reason)
	b.cfg.Logger.Error("webhook: delivery dead-lettered", "subscription", subID, "event_id", ev.ID, "kind", kind, "attempts", attempts,
		"last_status", last.status, "reason", reason)
	return nil
}

// Replay re-delivers the dead letters for which match returns true (all of
// them for a nil match), as fresh deliveries with a full set of attempts,
// and removes them from the store. It returns how many it scheduled. See
// [ReplayDeadLetters].
//
// Only dead letters that can go now are replayed: their subscription
// exists, is enabled and matches their event (topic and filter). The
// others, orphans of a removed subscription say, stay in the store with
// their history, for a replay once the subscription is back.
func (b *Bridge) Replay(ctx context.Context, match func(DeadLetter) bool) (int, error) {
	canGo := b.table.Load().canGo
	return ReplayDeadLetters(ctx, b.cfg.DeadLetters, b.pub, func(dl DeadLetter) bool {
		return (match == nil || match(dl)) && canGo(dl)
	})
}

// CanGo returns a match for [ReplayDeadLetters] that keeps the dead
// letters subs would deliver now: their subscription is among subs,
// enabled, and matches their event (topic and filter). It refuses
// subscriptions that do not compile, as [Bridge.SetSubscriptions] does.
// webhook-bridge's `dlq replay` uses it without a bridge.
func CanGo(subs []Subscription) (func(DeadLetter) bool, error) {
	t, err := compileTable(subs, nil)
	if err != nil {
		return nil, err
	}
	return t.canGo, nil
}

// replayPage is how many dead letters a replay reads, emits and removes
// at a time.
const replayPage = 500

// ReplayDeadLetters is [Bridge.Replay] without a bridge: it emits, through
// pub, a retry event with a full set of attempts for each dead letter in
// store that match accepts (all for nil), for whichever bridge consumes
// pub's stream, and removes it from the store. A dead letter whose event
// fails [CheckDeliverable] stays in the store: replayed, it would only be
// dead-lettered again.
//
// It walks the store one page at a time ([DeadLetterStore.List]), emitting
// a page's matches in one Emit and then removing them, so memory stays
// bounded by a page whatever the backlog. The walk covers the dead letters
// stored when it started, each once, even as they are removed behind it; a
// replayed delivery that fails and is dead-lettered again during the walk
// waits for the next replay, so a replay ends even when every delivery is
// refused at once. Two replays run at the same time may both emit a dead
// letter that both read before either removed it (deliveries are
// at-least-once: receivers deduplicate on webhook-id). On an
// error it returns how many were replayed and removed before it; the
// page being emitted may have been emitted in part, and those dead letters
// are still stored, so they are replayed again by the next call.
func ReplayDeadLetters(ctx context.Context, store DeadLetterStore, pub pubsub.Publisher, match func(DeadLetter) bool) (int, error) {
	n, after := 0, ""
	for {
		page, next, err := store.List(ctx, after, replayPage)
		if err != nil {
			return n, err
		}
		var (
			evs []pubsub.Event
			ids []string
		)
		for _, dl := range page {
			if match != nil && !match(dl) || CheckDeliverable(dl.Event) != nil {
				continue
			}
			rev, err := retry{SubscriptionID: dl.SubscriptionID, Event: dl.Event}.event()
			if err != nil {
				return n, fmt.Errorf("webhook: replaying dead letter %s: %w", dl.ID, err)
			}
			evs, ids = append(evs, rev), append(ids, dl.ID)
		}
		if len(evs) > 0 {
			if err := pub.Emit(ctx, evs...); err != nil {
				return n, fmt.Errorf("webhook: replaying dead letters %s to %s: %w", ids[0], ids[len(ids)-1], err)
			}
			if err := store.Remove(ctx, ids...); err != nil {
				return n, fmt.Errorf("webhook: removing replayed dead letters %s to %s: %w", ids[0], ids[len(ids)-1], err)
			}
			n += len(ids)
		}
		if next == "" {
			return n, nil
		}
		after = next
	}
}
