package webhookhttp

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// MemoryDedupe is a [Deduper] in process memory, for one replica.
type MemoryDedupe struct {
	mu    sync.Mutex
	ids   map[string]memClaim
	swept int // size after the last sweep
}

type memClaim struct {
	token   string // "" once committed
	expires time.Time
}

// NewMemoryDedupe returns an empty MemoryDedupe.
func NewMemoryDedupe() *MemoryDedupe { return &MemoryDedupe{ids: map[string]memClaim{}} }

// Claim implements [Deduper].
func (m *MemoryDedupe) Claim(_ context.Context, token string, ids []string) ([]ClaimState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.sweep(now)
	out := make([]ClaimState, len(ids))
	for i, id := range ids {
		c, ok := m.ids[id]
		switch {
		case !ok || !now.Before(c.expires):
			m.ids[id] = memClaim{token: token, expires: now.Add(ClaimTTL)}
		case c.token == "":
			out[i] = Duplicate
		default:
			out[i] = Busy
		}
	}
	return out, nil
}

// Commit implements [Deduper].
func (m *MemoryDedupe) Commit(_ context.Context, token string, ids []string, window time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	taken := 0
	for _, id := range ids {
		if c, ok := m.ids[id]; ok && c.token != "" && c.token != token && now.Before(c.expires) {
			taken++
			continue
		}
		m.ids[id] = memClaim{expires: now.Add(window)}
	}
	if taken > 0 {
		return fmt.Errorf("%d of %d ids were claimed by another request after this one's claim lapsed", taken, len(ids))
	}
	return nil
}

// Release implements [Deduper].
func (m *MemoryDedupe) Release(_ context.Context, token string, ids []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		if c, ok := m.ids[id]; ok && c.token == token {
			delete(m.ids, id)
		}
	}
	return nil
}

// sweep drops expired ids once the map has doubled since the last sweep,
// so memory follows what the window holds.
func (m *MemoryDedupe) sweep(now time.Time) {
	if len(m.ids) < 2*max(m.swept, 1024) {
		return
	}
	for id, c := range m.ids {
		if !now.Before(c.expires) {
			delete(m.ids, id)
		}
	}
	m.swept = len(m.ids)
}
