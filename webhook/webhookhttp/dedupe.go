package webhookhttp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

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

// split returns the claim of the ids among written and that of the others,
// under the same token.
func (c claim) split(written []pubsub.ID) (in, out claim) {
	w := make(map[string]bool, len(written))
	for _, id := range written {
		w[string(id)] = true
	}
	in.token, out.token = c.token, c.token
	for _, id := range c.ids {
		if w[id] {
			in.ids = append(in.ids, id)
		} else {
			out.ids = append(out.ids, id)
		}
	}
	return in, out
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
		// Some claims may have been taken even so (their reply lost to a
		// timeout, a dropped connection or the client leaving): freed
		// now, a retry of the request is not told "busy" for ClaimTTL.
		h.release(r, claim{token: c.token, ids: ids})
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
	// The events are out: the claims stay valid for ClaimTTL, and a
	// post of the same ids meanwhile is told to try again (409), so a
	// commit that fails on a passing fault (a Cluster down for a few
	// seconds) is tried again for up to a third of that, rather than
	// leave the ids free to be emitted twice.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), ClaimTTL/3)
	defer cancel()
	for try := 0; ; try++ {
		err := h.cfg.Dedupe.Commit(ctx, c.token, c.ids, h.cfg.DedupeWindow)
		if err == nil || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(min(time.Duration(100<<min(try, 4))*time.Millisecond, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
