package webhookhttp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
)

// ClaimState is what [Deduper.Claim] found for one id.
type ClaimState int

// The states of a claimed id.
const (
	// Claimed: the id is new; this request accepts it.
	Claimed ClaimState = iota
	// Duplicate: an event with this id was accepted within the window.
	Duplicate
	// Busy: another request is accepting an event with this id now.
	Busy
)

// ClaimTTL is how long a claim lasts when its request never commits or
// releases it (its process died mid-request): the id is free again after
// it. Emitting a request's events must take less.
const ClaimTTL = 30 * time.Second

// Deduper remembers the event ids ingest accepted. A request claims its
// ids, emits the events of those it claimed, then commits them (or
// releases them when the emit failed), so that an id is never remembered
// for an event that was not emitted. Implementations are safe for
// concurrent use; [RedisDedupe] is shared by replicas.
type Deduper interface {
	// Claim claims each id that is neither accepted within its window nor
	// claimed by another request, for ClaimTTL, under token.
	Claim(ctx context.Context, token string, ids []string) ([]ClaimState, error)
	// Commit marks ids, claimed under token, accepted for window.
	Commit(ctx context.Context, token string, ids []string, window time.Duration) error
	// Release frees the ids still claimed under token.
	Release(ctx context.Context, token string, ids []string) error
}

// claim is the ids one request claimed, under its token.
type claim struct {
	token string
	ids   []string
}

// dedupe claims the ids the client gave; it returns the events to emit,
// the ids not emitted as duplicates, and the claim to commit or release.
func (h *Handler) dedupe(r *http.Request, evs []pubsub.Event, given []bool) (emit []pubsub.Event, dups []pubsub.ID, c claim, status int, err error) {
	if h.cfg.DedupeWindow < 0 {
		return evs, nil, c, 0, nil
	}
	var ids []string
	first := map[pubsub.ID]bool{}
	for i, ev := range evs {
		if given[i] && !first[ev.ID] {
			first[ev.ID] = true
			ids = append(ids, string(ev.ID))
		}
	}
	if len(ids) == 0 {
		return evs, nil, c, 0, nil
	}
	c.token = newToken()
	states, err := h.cfg.Dedupe.Claim(r.Context(), c.token, ids)
	if err != nil {
		h.cfg.Logger.Error("webhookhttp: deduplication store", "err", err)
		return nil, nil, c, http.StatusServiceUnavailable, fmt.Errorf("events not published: deduplication store: %v", err)
	}
	state := make(map[pubsub.ID]ClaimState, len(ids))
	busy := ""
	for i, id := range ids {
		state[pubsub.ID(id)] = states[i]
		switch states[i] {
		case Claimed:
			c.ids = append(c.ids, id)
		case Busy:
			busy = id
		}
	}
	if busy != "" {
		h.release(r, c)
		return nil, nil, claim{}, http.StatusConflict, fmt.Errorf("id %q: an event with this id is being accepted by another request now; post again to learn its outcome", shown(busy))
	}
	seen := map[pubsub.ID]bool{}
	for i, ev := range evs {
		if given[i] && (state[ev.ID] == Duplicate || seen[ev.ID]) {
			dups = append(dups, ev.ID)
			continue
		}
		seen[ev.ID] = true
		emit = append(emit, ev)
	}
	return emit, dups, c, 0, nil
}

// release frees a claim whose events were not emitted; the claim expires
// by itself should this fail.
func (h *Handler) release(r *http.Request, c claim) {
	if len(c.ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := h.cfg.Dedupe.Release(ctx, c.token, c.ids); err != nil {
		h.cfg.Logger.Warn("webhookhttp: releasing deduplication claims; the ids are free again within "+ClaimTTL.String(), "err", err)
	}
}

// commit remembers the emitted ids for the dedupe window.
func (h *Handler) commit(r *http.Request, c claim) error {
	if len(c.ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	return h.cfg.Dedupe.Commit(ctx, c.token, c.ids, h.cfg.DedupeWindow)
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

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
func (m *MemoryDedupe) Commit(_ context.Context, _ string, ids []string, window time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	exp := time.Now().Add(window)
	for _, id := range ids {
		m.ids[id] = memClaim{expires: exp}
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

// RedisDedupe is a [Deduper] in Redis, shared by every replica: one key
// per id, Prefix followed by the id, expiring with its window. Give the
// prefix a hash tag ("{events}:webhook:ingest:") so that a request's keys
// share a Cluster slot.
type RedisDedupe struct {
	Client goredis.UniversalClient
	Prefix string
}

// committed is the value of an accepted id's key.
const committed = "accepted"

// Claim implements [Deduper].
func (d RedisDedupe) Claim(ctx context.Context, token string, ids []string) ([]ClaimState, error) {
	cmds := make([]*goredis.BoolCmd, len(ids))
	if _, err := d.Client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.SetNX(ctx, d.Prefix+id, token, ClaimTTL)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]ClaimState, len(ids))
	for i, id := range ids {
		if cmds[i].Val() {
			continue
		}
		v, err := d.Client.Get(ctx, d.Prefix+id).Result()
		switch {
		case err == goredis.Nil: // expired meanwhile: another request may take it
			out[i] = Busy
		case err != nil:
			return nil, err
		case v == committed:
			out[i] = Duplicate
		default:
			out[i] = Busy
		}
	}
	return out, nil
}

// Commit implements [Deduper].
func (d RedisDedupe) Commit(ctx context.Context, _ string, ids []string, window time.Duration) error {
	_, err := d.Client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, id := range ids {
			p.Set(ctx, d.Prefix+id, committed, window)
		}
		return nil
	})
	return err
}

// releaseScript deletes a claim only while it is still the caller's.
var releaseScript = goredis.NewScript(`
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
return 1
`)

// Release implements [Deduper].
func (d RedisDedupe) Release(ctx context.Context, token string, ids []string) error {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = d.Prefix + id
	}
	if len(keys) == 1 || d.sameSlot() {
		return releaseScript.Run(ctx, d.Client, keys, token).Err()
	}
	for _, k := range keys {
		if err := releaseScript.Run(ctx, d.Client, []string{k}, token).Err(); err != nil {
			return err
		}
	}
	return nil
}

// sameSlot reports whether every key of the prefix shares a Cluster slot.
func (d RedisDedupe) sameSlot() bool {
	open := -1
	for i := 0; i < len(d.Prefix); i++ {
		if d.Prefix[i] == '{' && open < 0 {
			open = i
		}
		if d.Prefix[i] == '}' && open >= 0 {
			return i > open+1
		}
	}
	return false
}
