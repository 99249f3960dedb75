package redis

import (
	"sync"
	"time"
)

// holding is what a run knows of one entry it holds: queued for a
// handler, being handled, waiting for a retry, or being acknowledged.
type holding struct {
	// confirmed is when the last command that gave or confirmed this
	// consumer's ownership was sent. Redis starts the entry's idle clock
	// later than that, so no other consumer can take the entry over
	// before confirmed + ClaimIdle.
	confirmed time.Time
	// deliveries is how often Redis has delivered the entry to the group.
	deliveries int64
	// lost is set once another consumer was found holding the entry: it
	// is handed to no handler of this run.
	lost bool
}

// holdings are the entries a run holds, per stream. Keeping them fresh in
// Redis (see [run.refresh]) is what stops other consumers from taking
// over entries that merely wait in this run's queue.
type holdings struct {
	mu sync.Mutex
	m  map[string]map[string]holding
}

func newHoldings(streams []string) *holdings {
	h := &holdings{m: make(map[string]map[string]holding, len(streams))}
	for _, s := range streams {
		h.m[s] = make(map[string]holding)
	}
	return h
}

// take records that the run holds id since confirmed; it reports false,
// and only renews the confirmation, when the run held it already.
func (h *holdings) take(stream, id string, confirmed time.Time, deliveries int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := h.m[stream]
	if old, ok := ids[id]; ok {
		if confirmed.After(old.confirmed) {
			old.confirmed = confirmed
			old.lost = false
			ids[id] = old
		}
		return false
	}
	ids[id] = holding{confirmed: confirmed, deliveries: deliveries}
	return true
}

// confirm renews the ownership of id, which a command sent at confirmed
// found still this consumer's; deliveries is the count Redis now holds,
// or 0 to keep the one recorded.
func (h *holdings) confirm(stream, id string, confirmed time.Time, deliveries int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.m[stream][id]; ok {
		old.confirmed, old.lost = confirmed, false
		if deliveries > 0 {
			old.deliveries = deliveries
		}
		h.m[stream][id] = old
	}
}

// lose marks id as held by another consumer now.
func (h *holdings) lose(stream, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.m[stream][id]; ok {
		old.lost = true
		h.m[stream][id] = old
	}
}

// get returns what is known of id, and whether the run holds it.
func (h *holdings) get(stream, id string) (holding, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[stream][id]
	return v, ok
}

// has reports whether the run holds id.
func (h *holdings) has(stream, id string) bool {
	_, ok := h.get(stream, id)
	return ok
}

// release forgets entries that are acknowledged, dead-lettered, given up
// or abandoned.
func (h *holdings) release(stream string, ids ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		delete(h.m[stream], id)
	}
}

// heldEntry is an entry ID with its delivery count.
type heldEntry struct {
	id         string
	deliveries int64
}

// stale returns the entries of stream not lost and last confirmed before
// t: the ones whose ownership needs renewing.
func (h *holdings) stale(stream string, t time.Time) []heldEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []heldEntry
	for id, v := range h.m[stream] {
		if !v.lost && v.confirmed.Before(t) {
			out = append(out, heldEntry{id, v.deliveries})
		}
	}
	return out
}
