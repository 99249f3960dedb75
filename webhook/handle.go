package webhook

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// Handle delivers one event to every subscription that matches it, or,
// for a retry event, to its one subscription. It returns nil once every
// delivery succeeded, was dead-lettered, or has its retry scheduled; an
// error (a retry that could not be scheduled) leaves the event to its
// backend's redelivery. An event that fails [CheckDeliverable] is
// dead-lettered for each subscription it matches, as
// [KindUndeliverable], without an attempt. Run uses it; it is exported
// for bridges driven some other way.
func (b *Bridge) Handle(ctx context.Context, ev pubsub.Event) error {
	// Deliveries in flight finish even as Consume stops; their outcome
	// is then recorded before the event is acknowledged.
	ctx = context.WithoutCancel(ctx)
	t := b.table.Load()
	if ev.Name == RecoverEventName {
		return b.handleRecovery(ctx, ev)
	}
	if ev.Name == RetryEventName {
		r, err := decodeRetry(ev)
		if err != nil {
			return err
		}
		rt, ok := t.byID[r.SubscriptionID]
		if (!ok || rt.sub.Disabled || !rt.accepts(r.Event)) && b.cfg.Reload != nil {
			// Another replica may have just changed it (enabled it, then
			// recovered through it): orphan it only by the newest set.
			if err := b.cfg.Reload(ctx); err != nil {
				return fmt.Errorf("webhook: reloading the subscriptions before orphaning a retry for %q: %w", r.SubscriptionID, err)
			}
			t = b.table.Load()
			rt, ok = t.byID[r.SubscriptionID]
		}
		if !ok || rt.sub.Disabled {
			return b.deadLetter(ctx, r.SubscriptionID, KindOrphaned, r.Event, r.Attempts, result{status: r.LastStatus},
				fmt.Sprintf("subscription %q was removed or disabled while a retry waited (last: %s)", r.SubscriptionID, r.LastError))
		}
		if err := CheckDeliverable(r.Event); err != nil {
			return b.deadLetter(ctx, rt.sub.ID, KindUndeliverable, r.Event, r.Attempts, result{status: r.LastStatus}, undeliverable(err))
		}
		// A retry goes only where its event would go now: a subscription
		// changed while it waited, or a retry event written by someone
		// else, reaches no subscription its event does not match.
		if !rt.accepts(r.Event) {
			return b.deadLetter(ctx, rt.sub.ID, KindOrphaned, r.Event, r.Attempts, result{status: r.LastStatus},
				fmt.Sprintf("subscription %q no longer matches the event (its topic or filter changed while a retry waited; last: %s)", rt.sub.ID, r.LastError))
		}
		if sc := r.FirstAttempt.spanContext(); sc.IsValid() {
			ctx = withFirstAttempt(ctx, sc)
		}
		return b.fanOut(ctx, ev, []*route{rt}, r.Event, r.Attempts)
	}

	routes, filteredOut := b.match(t, ev)
	b.cfg.Observer.EventConsumed(len(routes), filteredOut)
	if b.rec != nil {
		for _, rt := range t.disabled {
			if rt.accepts(ev) {
				b.record(rt, rt.sub.ID, ev, 0, Skipped, result{}, "subscription disabled")
			}
		}
	}
	if len(routes) == 0 {
		return nil
	}
	if ev.Meta.IsDryRun {
		for _, rt := range routes {
			_ = b.deliver(ctx, rt, ev, nil, 0) // logs, sends nothing
		}
		return nil
	}
	if err := CheckDeliverable(ev); err != nil {
		reason := undeliverable(err)
		var errs []error
		for _, rt := range routes {
			errs = append(errs, b.deadLetter(ctx, rt.sub.ID, KindUndeliverable, ev, 0, result{}, reason))
		}
		return errors.Join(errs...)
	}
	return b.fanOut(ctx, ev, routes, ev, 0)
}

// undeliverable is the dead-letter reason for an event CheckDeliverable
// refuses.
func undeliverable(err error) string {
	return "undeliverable, never sent: " + err.Error()
}

// filterWarnEvery is how often a subscription's failing filter may log.
const filterWarnEvery = time.Minute

// warnLimiter lets one warning per key through per interval and counts
// the others.
type warnLimiter struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*warnState
}

type warnState struct {
	last       time.Time
	suppressed int
}

func newWarnLimiter(every time.Duration) *warnLimiter {
	return &warnLimiter{every: every, now: time.Now, keys: map[string]*warnState{}}
}

// allow reports whether a warning for key may be logged now and, when it
// may, how many were suppressed since the last one logged.
func (w *warnLimiter) allow(key string) (bool, int) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	st, ok := w.keys[key]
	if !ok {
		w.keys[key] = &warnState{last: now}
		return true, 0
	}
	if now.Sub(st.last) < w.every {
		st.suppressed++
		return false, 0
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return true, n
}

// keepOnly forgets the keys keep refuses.
func (w *warnLimiter) keepOnly(keep func(string) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.keys {
		if !keep(k) {
			delete(w.keys, k)
		}
	}
}
