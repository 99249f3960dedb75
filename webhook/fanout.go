package webhook

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// fanoutLogEvery is how often an event's deliveries still in progress
// have those settled so far written to the FanoutLog.
const fanoutLogEvery = 250 * time.Millisecond

// fanout is one event's deliveries on their way.
type fanout struct {
	mu        sync.Mutex
	remaining int
	errs      []error
	settled   []string // subscriptions settled (nil error), not yet logged
	done      chan struct{}
}

func (f *fanout) settle(j *job, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[j.index] = err
	if err == nil {
		f.settled = append(f.settled, j.rt.sub.ID)
	}
	if f.remaining--; f.remaining == 0 {
		close(f.done)
	}
}

// giveBack returns settled subscriptions that could not be logged.
func (f *fanout) giveBack(settled []string) {
	f.mu.Lock()
	f.settled = append(f.settled, settled...)
	f.mu.Unlock()
}

// takeSettled returns the subscriptions settled since the last call.
func (f *fanout) takeSettled() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.settled
	f.settled = nil
	return s
}

// fanOut delivers ev (attempt tried+1) to routes through the dispatcher
// and returns once each delivery is settled: sent, retry scheduled,
// deferred or dead-lettered. src is the event being handled (ev itself,
// or the retry event carrying it).
//
// With several routes, the settled ones are written to the FanoutLog
// every fanoutLogEvery while others are still on their way, and all of
// them before an error is returned; an event handed over again (its
// Meta.Attempts above 0: a crash, a lost acknowledgement, an error) skips
// the subscriptions the log has. Every SlotWait, deliveries still queued
// at an endpoint too slow to reach them soon are deferred (see
// dispatch.go).
func (b *Bridge) fanOut(ctx context.Context, src pubsub.Event, routes []*route, ev pubsub.Event, tried int) error {
	multi, logged := len(routes) > 1, false
	if multi && src.Meta.Attempts > 0 {
		routes, logged = b.skipSettled(ctx, src, routes)
		if len(routes) == 0 {
			return b.forgetFanout(ctx, src, true)
		}
	}
	f := &fanout{remaining: len(routes), errs: make([]error, len(routes)), done: make(chan struct{})}
	jobs := make([]*job, len(routes))
	run := func(j *job) { f.settle(j, b.deliver(ctx, j.rt, j.ev, j.eh, j.tried)) }
	eh := b.headersOf(ev)
	for i, rt := range routes {
		jobs[i] = &job{rt: rt, ev: ev, eh: eh, tried: tried, ep: b.endpoints.get(rt.endpoint), run: run, index: i}
	}
	b.disp.submit(jobs)

	check := time.NewTicker(b.cfg.SlotWait)
	defer check.Stop()
	var tick <-chan time.Time
	if multi {
		t := time.NewTicker(fanoutLogEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-f.done:
			err := errors.Join(f.errs...)
			if !multi {
				return err
			}
			if err != nil {
				// Handed over again, the event goes only where it has not.
				b.logSettled(ctx, src, f, f.takeSettled())
				return err
			}
			return b.forgetFanout(ctx, src, logged)
		case now := <-check.C:
			b.disp.kick(now)
			if busy := b.disp.withdrawSlow(jobs, now); len(busy) > 0 {
				err := b.deferBusy(ctx, busy)
				for _, j := range busy {
					f.settle(j, err)
				}
			}
		case <-tick:
			if s := f.takeSettled(); len(s) > 0 {
				logged = b.logSettled(ctx, src, f, s) || logged
			}
		}
	}
}

// skipSettled returns the routes the FanoutLog does not have as settled
// for src (all of them when it cannot be read), and whether it had any.
func (b *Bridge) skipSettled(ctx context.Context, src pubsub.Event, routes []*route) ([]*route, bool) {
	done, err := b.cfg.FanoutLog.Settled(ctx, src)
	if err != nil {
		b.cfg.Logger.Warn("webhook: fan-out log unreadable, the event goes to every subscription it matches again", "event_id", src.ID, "err", err)
		return routes, false
	}
	if len(done) == 0 {
		return routes, false
	}
	settled := make(map[string]bool, len(done))
	for _, id := range done {
		settled[id] = true
	}
	out := routes[:0:0]
	for _, rt := range routes {
		if !settled[rt.sub.ID] {
			out = append(out, rt)
		}
	}
	b.cfg.Logger.Info("webhook: event handed over again, its settled deliveries skipped", "event_id", src.ID,
		"skipped", len(routes)-len(out), "remaining", len(out))
	return out, true
}

// logSettled writes settled (taken from f) to the FanoutLog and reports
// whether it did; on failure they go back to f.
func (b *Bridge) logSettled(ctx context.Context, src pubsub.Event, f *fanout, settled []string) bool {
	if len(settled) == 0 {
		return false
	}
	if err := b.cfg.FanoutLog.Add(ctx, src, settled...); err != nil {
		f.giveBack(settled) // the next write, or the last, tries them again
		b.cfg.Logger.Warn("webhook: fan-out log not written; should the event be handed over again, these deliveries are made again",
			"event_id", src.ID, "deliveries", len(settled), "err", err)
		return false
	}
	return true
}

// forgetFanout removes src's entry from the FanoutLog when one was
// written. It never fails the event: an entry left behind expires.
func (b *Bridge) forgetFanout(ctx context.Context, src pubsub.Event, logged bool) error {
	if logged {
		if err := b.cfg.FanoutLog.Forget(ctx, src); err != nil {
			b.cfg.Logger.Debug("webhook: fan-out log entry not removed; it expires", "event_id", src.ID, "err", err)
		}
	}
	return nil
}
