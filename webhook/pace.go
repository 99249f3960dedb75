package webhook

import "time"

// How slow an endpoint may be before the deliveries waiting at it are
// deferred, in SlotWaits (windows) of draining its queue at its recent
// pace.
const (
	// drainSlow: slower than this, and answering more than twice as
	// slowly as the other endpoints do, it holds others up.
	drainSlow = 4
	// drainMost: slower than this, it keeps its events waiting too long,
	// whatever the others do.
	drainMost = 40
)

// pace counts the deliveries an endpoint (or every endpoint together)
// finished, and how long they took, in windows of SlotWait: the current
// one and the one before.
type pace struct {
	start              time.Time // of the current window
	this, last         int
	thisBusy, lastBusy time.Duration // the time the deliveries counted took, each at most a window
	hasLast            bool          // the window before the current one was counted
}

// answered counts a finished delivery that took took.
func (p *pace) answered(now time.Time, took, window time.Duration) {
	p.roll(now, window)
	p.this++
	// A delivery that hung until its timeout counts as one window: it
	// says the endpoint is slow, without making every other one look
	// quick for a while.
	p.thisBusy += min(took, window)
}

func (p *pace) roll(now time.Time, window time.Duration) {
	switch gone := now.Sub(p.start); {
	case gone < window:
		return
	case gone < 2*window && !p.start.IsZero():
		p.last, p.lastBusy, p.hasLast = p.this, p.thisBusy, true
	default:
		p.last, p.lastBusy, p.hasLast = 0, 0, false
	}
	// Windows start at multiples of the window, so that every pace
	// counts over the same spans: an endpoint's is part of the whole's.
	p.this, p.thisBusy, p.start = 0, 0, now.Truncate(window)
}

// drain returns how long queued deliveries take to go at the pace
// measured over the last window or two; ok is false when none finished.
func (p *pace) drain(queued int, now time.Time, window time.Duration) (time.Duration, bool) {
	p.roll(now, window)
	done := p.last + p.this
	if done == 0 {
		return 0, false
	}
	elapsed := now.Sub(p.start)
	if p.hasLast {
		elapsed += window
	}
	elapsed = max(elapsed, window/4) // a pace over a moment says little
	return time.Duration(float64(queued) / float64(done) * float64(elapsed)), true
}

// counted returns the deliveries finished over the last window or two
// and the time they took. p.roll was called.
func (p *pace) counted() (int, time.Duration) {
	return p.last + p.this, p.lastBusy + p.thisBusy
}

// tooSlow reports whether ep holds things up. Never while it has a free
// slot: its deliveries then wait for workers, not for it. Otherwise, when
// it finished nothing over the last window or two while deliveries wait
// for it; or getting through its queue at its recent pace would take
// longer than drainMost windows; or longer than drainSlow windows while
// it answers more than twice as slowly as the other endpoints (over the
// same windows). A long queue at an endpoint that answers as quickly as
// the others is work, not a hold-up: one event for a thousand
// subscriptions of one receiver, or a bridge slowed all round (a busy
// machine) defers nothing, since deferring would only add work. d.mu is
// held.
func (d *dispatcher) tooSlow(ep *endpoint, now time.Time) bool {
	if ep.active < d.perEndpoint {
		return false // its deliveries wait for workers, not for it
	}
	mine, ok := ep.pace.drain(ep.queuedN, now, d.window)
	if !ok {
		return true
	}
	if mine > drainMost*d.window {
		return true
	}
	if mine <= drainSlow*d.window {
		return false
	}
	d.pace.roll(now, d.window)
	done, busy := ep.pace.counted()
	allDone, allBusy := d.pace.counted()
	othersDone, othersBusy := allDone-done, allBusy-busy
	if othersDone < 4 || othersBusy <= 0 {
		return false // the others did next to nothing lately: nothing to compare with
	}
	// Its time per delivery more than twice the others', without dividing.
	return float64(busy)*float64(othersDone) > 2*float64(othersBusy)*float64(done)
}
