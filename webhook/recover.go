package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/switchyard-go/switchyard/pubsub"
)

// ErrSubscriptionDisabled is returned, wrapped, by [Bridge.Recover] for a
// disabled subscription: its deliveries would only be skipped again.
var ErrSubscriptionDisabled = errors.New("webhook: subscription disabled")

// RecoverReport is what a recovery found and did.
type RecoverReport struct {
	// Scheduled counts the events delivered again, each once.
	Scheduled int `json:"scheduled"`
	// InProgress counts the events not delivered yet whose retries still
	// run: they are left to them.
	InProgress int `json:"in_progress"`
	// Expired counts the events whose attempts failed but which the log
	// no longer holds (past its retention): they cannot be sent again.
	Expired int `json:"expired"`
	// More: MaxRecover events were scheduled and more qualify; recover
	// again once these are delivered.
	More bool `json:"more,omitempty"`
}

// Recovery is what [Recover] needs: where the attempts and events are
// recorded, where the dead letters are, and where to emit.
type Recovery struct {
	Log         AttemptLog
	DeadLetters DeadLetterStore // nil: none to remove
	Publisher   pubsub.Publisher
}

// recoverRecorded starts the error of the attempt a recovery records for
// each event it schedules ("recovery scheduled (<id>)"): the chain of
// recovery events delivers an event only while that is its newest
// attempt, and a second recovery finds it on its way.
const recoverRecorded = "recovery scheduled"

// MaxRecover is the most events one recovery schedules; [RecoverReport]
// says when more were left for another.
const MaxRecover = 100000

// Recover delivers again, as fresh deliveries with a full set of attempts,
// every event that subscription subID was offered in [since, until) (by
// the delivery log's time) and that was not delivered to it: its delivery
// was dead-lettered (attempts spent, 410, undeliverable, orphaned) or
// skipped while the subscription was disabled, and no later attempt
// succeeded. Events whose retries are still running are left to them. A
// zero since or until leaves that side open.
//
// Each event is delivered once, in the order it was first emitted (its
// creation time, then its first attempt): Recover records an attempt
// ("deferred", "recovery scheduled") for each and emits one
// [RecoverEventName] event, which the bridge handles by sending the
// first events one after another, each waiting for the one before to be
// delivered or to have its retry scheduled, and then emitting the rest
// as the next such event. (An event whose first attempt fails is retried
// as any delivery, after the others.) Each attempt is in the log before
// the next event is sent. A bridge that stops midway goes on where it was
// when the backend hands the event over again; an event is sent only while
// the recovery's record is its newest attempt, so one delivered or retried
// meanwhile is not sent again (but for the one being sent when it
// stopped). The events' dead
// letters for the subscription are removed so that a replay does not send
// them again. At most MaxRecover events are scheduled per call.
//
// A second recovery of the same window, on any replica, finds the events
// on their way and schedules none again (two started at the very same
// moment may both; receivers deduplicate on webhook-id). [Bridge.Recover]
// checks the subscription first; webhook-bridge recover uses this without
// a bridge.
func Recover(ctx context.Context, r Recovery, subID string, since, until time.Time) (RecoverReport, error) {
	todo, rep, err := recoverable(ctx, r.Log, subID, since, until)
	if err != nil || len(todo) == 0 {
		return rep, err
	}
	// The dead letters to remove are those stored now: the deliveries it
	// schedules may be dead-lettered again while it runs, and those stay.
	var dead []string
	if r.DeadLetters != nil {
		due := make(map[pubsub.ID]bool, len(todo))
		for _, ev := range todo {
			due[ev.ID] = true
		}
		if dead, err = deadLetterIDs(ctx, r.DeadLetters, func(dl DeadLetter) bool {
			return dl.SubscriptionID == subID && due[dl.Event.ID]
		}); err != nil {
			return rep, fmt.Errorf("webhook: recover: reading the dead letters: %w", err)
		}
	}
	rec := recovery{SubscriptionID: subID, ID: uuid.NewString()}
	marks := AttemptBatch{}
	for _, ev := range todo {
		rec.Events = append(rec.Events, ev.ID)
		marks.Attempts = append(marks.Attempts, Attempt{EventID: ev.ID, EventName: ev.Name, SubscriptionID: subID,
			At: time.Now(), Outcome: Deferred, Error: rec.marker()})
	}
	if err := r.Log.Record(ctx, marks); err != nil {
		return rep, fmt.Errorf("webhook: recover: recording what it schedules: %w", err)
	}
	link, err := rec.event()
	if err == nil {
		err = r.Publisher.Emit(ctx, link)
	}
	if err != nil {
		return rep, fmt.Errorf("webhook: recover: emitting the recovery of %d events: %w", len(todo), err)
	}
	rep.Scheduled = len(todo)
	for start := 0; start < len(dead); start += replayPage {
		if err := r.DeadLetters.Remove(ctx, dead[start:min(start+replayPage, len(dead))]...); err != nil {
			return rep, fmt.Errorf("webhook: recover: removing the recovered dead letters: %w", err)
		}
	}
	return rep, nil
}

// recoverable returns the events Recover would deliver again, in order,
// with the counts of those it leaves.
func recoverable(ctx context.Context, log AttemptLog, subID string, since, until time.Time) ([]pubsub.Event, RecoverReport, error) {
	var rep RecoverReport
	type seen struct {
		first     string // its oldest attempt in the window
		delivered bool
	}
	events := map[pubsub.ID]*seen{}
	var order []pubsub.ID
	q := AttemptQuery{SubscriptionID: subID, Since: since, Until: until, Limit: MaxAttemptPage}
	for {
		page, err := log.Query(ctx, q)
		if err != nil {
			return nil, rep, fmt.Errorf("webhook: recover: reading the delivery log: %w", err)
		}
		for _, a := range page.Attempts {
			s := events[a.EventID]
			if s == nil {
				s = &seen{}
				events[a.EventID] = s
				order = append(order, a.EventID)
			}
			s.first = a.ID // newest first: the last one seen is the oldest
			s.delivered = s.delivered || a.Outcome == Delivered
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	type due struct {
		ev    pubsub.Event
		first logID
	}
	var todo []due
	for _, id := range order {
		if events[id].delivered {
			continue
		}
		// Its newest attempt, in the window or after it, says where it is.
		// A page may hold none before the end (the event's attempts for
		// other subscriptions are read past), so the walk goes on to it.
		var newest *Attempt
		delivered := false
		for q := (AttemptQuery{SubscriptionID: subID, EventID: id, Limit: MaxAttemptPage}); ; {
			page, err := log.Query(ctx, q)
			if err != nil {
				return nil, rep, fmt.Errorf("webhook: recover: reading the attempts of %s: %w", id, err)
			}
			if newest == nil && len(page.Attempts) > 0 {
				newest = &page.Attempts[0]
			}
			delivered = delivered || slices.ContainsFunc(page.Attempts, func(a Attempt) bool { return a.Outcome == Delivered })
			if delivered || page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
		if newest == nil || delivered {
			continue
		}
		switch newest.Outcome {
		case DeadLettered, Skipped:
		case DryRun: // never to be sent, and no retry of it runs
			continue
		default:
			rep.InProgress++
			continue
		}
		ev, err := log.Event(ctx, id)
		if errors.Is(err, ErrNotFound) {
			rep.Expired++
			continue
		}
		if err != nil {
			return nil, rep, fmt.Errorf("webhook: recover: reading event %s: %w", id, err)
		}
		if len(todo) == MaxRecover {
			rep.More = true
			break
		}
		first, _ := parseLogID(events[id].first)
		todo = append(todo, due{ev: ev, first: first})
	}
	slices.SortStableFunc(todo, func(a, b due) int {
		if c := a.ev.Meta.CreatedAtUTC.Compare(b.ev.Meta.CreatedAtUTC); c != 0 {
			return c
		}
		if a.first.less(b.first) {
			return -1
		}
		return 0
	})
	out := make([]pubsub.Event, len(todo))
	for i, d := range todo {
		out[i] = d.ev
	}
	return out, rep, nil
}

// deadLetterIDs walks store once and returns the IDs of the dead letters
// match accepts.
func deadLetterIDs(ctx context.Context, store DeadLetterStore, match func(DeadLetter) bool) ([]string, error) {
	var ids []string
	after := ""
	for {
		page, next, err := store.List(ctx, after, replayPage)
		if err != nil {
			return nil, err
		}
		for _, dl := range page {
			if match(dl) {
				ids = append(ids, dl.ID)
			}
		}
		if next == "" {
			return ids, nil
		}
		after = next
	}
}

// Recover is [Recover] with the bridge's delivery log, dead letters and
// publisher, for a subscription in force: one unknown is an error
// wrapping [ErrNotFound], a disabled one [ErrSubscriptionDisabled], and a
// bridge without a delivery log cannot recover.
func (b *Bridge) Recover(ctx context.Context, subID string, since, until time.Time) (RecoverReport, error) {
	if b.cfg.AttemptLog == nil {
		return RecoverReport{}, errors.New("webhook: recover needs the delivery log (Config.AttemptLog)")
	}
	rt, ok := b.table.Load().byID[subID]
	switch {
	case !ok:
		return RecoverReport{}, fmt.Errorf("%w: subscription %q", ErrNotFound, subID)
	case rt.sub.Disabled:
		return RecoverReport{}, fmt.Errorf("%w: %q; enable it first", ErrSubscriptionDisabled, subID)
	}
	return Recover(ctx, Recovery{Log: b.cfg.AttemptLog, DeadLetters: b.cfg.DeadLetters, Publisher: b.pub}, subID, since, until)
}
