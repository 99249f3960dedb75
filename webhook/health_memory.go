package webhook

import (
	"context"
	"sync"
	"time"
)

// MemoryHealth is a [HealthStore] in the process's memory, for one bridge
// without Redis and for tests. Its zero value is ready to use.
type MemoryHealth struct {
	mu   sync.Mutex
	subs map[string]*memHealth
}

type memHealth struct {
	stats   HealthStats
	minutes map[int64]*healthMinute
}

// Observe implements [HealthStore]; minutes past the HealthWindow are
// dropped as new ones come.
func (h *MemoryHealth) Observe(ctx context.Context, samples []HealthSample) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = map[string]*memHealth{}
	}
	for sub, d := range healthDeltas(samples) {
		s := h.subs[sub]
		if s == nil {
			s = &memHealth{minutes: map[int64]*healthMinute{}}
			h.subs[sub] = s
		}
		d.apply(&s.stats)
		newest := int64(0)
		for minute, m := range d.minutes {
			newest = max(newest, minute)
			into := s.minutes[minute]
			if into == nil {
				into = &healthMinute{}
				s.minutes[minute] = into
			}
			into.ok += m.ok
			into.fail += m.fail
			into.limited += m.limited
			for i, n := range m.buckets {
				into.buckets[i] += n
			}
		}
		for minute := range s.minutes {
			if minute <= newest-int64(HealthWindow/time.Minute) {
				delete(s.minutes, minute)
			}
		}
	}
	return nil
}

// Stats implements [HealthStore].
func (h *MemoryHealth) Stats(ctx context.Context, now time.Time, ids ...string) (map[string]HealthStats, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]HealthStats, len(ids))
	for _, id := range ids {
		s, ok := h.subs[id]
		if !ok {
			continue
		}
		st := s.stats
		windowStats(&st, now, s.minutes)
		out[id] = st
	}
	return out, nil
}

// Forget implements [HealthStore].
func (h *MemoryHealth) Forget(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, id)
	return nil
}
