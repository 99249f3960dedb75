package webhook

import (
	"testing"
	"time"
)

// An endpoint's queued deliveries are deferred when it answered nothing
// lately, when its queue would take more than 40 windows to get through,
// or more than 4 while it takes more than twice as long per delivery as
// the other endpoints on average; never when it merely has more work than
// the others, nor when everything is as slow.
func TestWhichEndpointsHoldThingsUp(t *testing.T) {
	const window = 250 * time.Millisecond
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	now := t0.Add(window + 100*time.Millisecond)
	// Each pace counted over the window before the current one and 100ms
	// of the current one: 350ms in all, done deliveries taking each.
	paceOf := func(done int, each time.Duration) pace {
		p := pace{start: t0.Add(window), last: done / 2, this: done - done/2, hasLast: true}
		p.lastBusy, p.thisBusy = time.Duration(p.last)*each, time.Duration(p.this)*each
		return p
	}
	ms := time.Millisecond
	for _, tc := range []struct {
		name               string
		epDone, epQueued   int
		epEach             time.Duration
		allDone, allQueued int
		allEach            time.Duration
		want               bool
	}{
		{"answered nothing lately", 0, 1, 0, 1000, 10, ms, true},
		{"quick: 100 queued at 350 per 350ms", 350, 100, 16 * ms, 350, 100, 16 * ms, false},
		{"alone and busy: 1000 queued at 175 per 350ms (2s)", 175, 1000, 32 * ms, 175, 1000, 32 * ms, false},
		{"slow beside quick ones: 2s, 32ms a delivery against 3ms", 175, 1000, 32 * ms, 3500, 1000, 3 * ms, true},
		{"everyone as slow: 2s, 32ms a delivery as all", 175, 1000, 32 * ms, 1750, 10000, 32 * ms, false},
		{"far too slow whatever the others: 14s", 25, 1000, 200 * ms, 25, 1000, 200 * ms, true},
		{"just under the bound: 0.9s, 14ms against 3ms", 389, 1000, 14 * ms, 3500, 1000, 3 * ms, false},
		{"most of the work, as quick as the rest: 1.1s, 10ms as all", 560, 1800, 10 * ms, 2240, 1850, 10 * ms, false},
		{"crawling: 2.2s, a window a delivery against 10ms", 16, 100, window, 2000, 500, 12 * ms, true},
		// Each event to it and to one quick endpoint: both finish as many.
		{"one to one with a quick endpoint, 20 times as slow: 16 windows", 10, 114, 40 * ms, 20, 200, 21 * ms, true},
		{"one to one with a quick endpoint, as quick: 16 windows", 10, 114, 2 * ms, 20, 200, 2 * ms, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dispatcher{window: window, pace: paceOf(tc.allDone, tc.allEach), queued: tc.allQueued}
			ep := &endpoint{pace: paceOf(tc.epDone, tc.epEach), queuedN: tc.epQueued}
			if got := d.tooSlow(ep, now); got != tc.want {
				mine, _ := ep.pace.drain(ep.queuedN, now, window)
				t.Errorf("tooSlow = %v, want %v (its queue drains in %s)", got, tc.want, mine)
			}
		})
	}
}
