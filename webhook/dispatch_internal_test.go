package webhook

import (
	"testing"
	"time"
)

// An endpoint's queued deliveries are deferred when it answered nothing
// lately, when its queue would take more than 40 windows to get through,
// or more than 4 and twice what all the queues together take; never when
// it is merely as busy as everything else.
func TestWhichEndpointsHoldThingsUp(t *testing.T) {
	const window = 250 * time.Millisecond
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	now := t0.Add(window + 100*time.Millisecond)
	// Each pace counted over the window before the current one and 100ms
	// of the current one: 350ms in all.
	paceOf := func(done int) pace {
		return pace{start: t0.Add(window), last: done / 2, this: done - done/2, hasLast: true}
	}
	for _, tc := range []struct {
		name               string
		epDone, epQueued   int
		allDone, allQueued int
		want               bool
	}{
		{"answered nothing lately", 0, 1, 1000, 10, true},
		{"quick: 100 queued at 350 per 350ms", 350, 100, 350, 100, false},
		{"alone and busy: 1000 queued at 175 per 350ms (2s)", 175, 1000, 175, 1000, false},
		{"slow beside quick ones: 2s against 0.1s", 175, 1000, 3500, 1000, true},
		{"everyone as slow: 2s against 2s", 175, 1000, 1750, 10000, false},
		{"far too slow whatever the others: 14s", 25, 1000, 25, 1000, true},
		{"just under the bound: 0.9s against 0.1s", 389, 1000, 3500, 1000, false},
	} {
		d := &dispatcher{window: window, pace: paceOf(tc.allDone), queued: tc.allQueued}
		ep := &endpoint{pace: paceOf(tc.epDone), queuedN: tc.epQueued}
		if got := d.tooSlow(ep, now); got != tc.want {
			mine, _ := ep.pace.drain(ep.queuedN, now, window)
			all, _ := d.pace.drain(d.queued, now, window)
			t.Errorf("%s: tooSlow = %v, want %v (its queue drains in %s, all in %s)", tc.name, got, tc.want, mine, all)
		}
	}
}
