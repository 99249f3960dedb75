package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// positions remember, per stream, the furthest entry ID the group is
// known to have delivered: its last-delivered ID as read from Redis, or
// an entry this subscriber read. Should the group vanish (XGROUP DESTROY,
// a restart without persistence), it is made again there, so that no
// entry added after that point is skipped.
type positions struct {
	mu      sync.Mutex
	last    map[string]string
	written map[string]string // what was last recorded beside each stream
}

// unwritten returns the position of stream when it is ahead of what was
// last recorded beside it, else "".
func (p *positions) unwritten(stream string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if last := p.last[stream]; last != "" && last != p.written[stream] {
		return last
	}
	return ""
}

// wrote notes that id was recorded beside stream.
func (p *positions) wrote(stream, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.written == nil {
		p.written = make(map[string]string)
	}
	if old := p.written[stream]; old == "" || compareIDs(old, id) < 0 {
		p.written[stream] = id
	}
}

// advance records that the group delivered up to id on stream; it
// reports whether that moved the position.
func (p *positions) advance(stream, id string) bool {
	if id == "" {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		p.last = make(map[string]string)
	}
	if old, ok := p.last[stream]; !ok || compareIDs(old, id) < 0 {
		p.last[stream] = id
		return true
	}
	return false
}

func (p *positions) get(stream string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last[stream]
}

// compareIDs orders two stream entry IDs ("ms-seq"); one that does not
// parse sorts first.
func compareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	switch {
	case am != bm:
		if am < bm {
			return -1
		}
		return 1
	case as != bs:
		if as < bs {
			return -1
		}
		return 1
	}
	return 0
}

// validID reports whether id is a stream entry ID, "ms-seq" or "ms".
func validID(id string) bool {
	ms, seq, found := strings.Cut(id, "-")
	if _, err := strconv.ParseUint(ms, 10, 64); err != nil {
		return false
	}
	if found {
		if _, err := strconv.ParseUint(seq, 10, 64); err != nil {
			return false
		}
	}
	return true
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}

// nextID is the smallest entry ID after id.
func nextID(id string) string {
	m, s := splitID(id)
	if s == ^uint64(0) {
		return strconv.FormatUint(m+1, 10) + "-0"
	}
	return strconv.FormatUint(m, 10) + "-" + strconv.FormatUint(s+1, 10)
}

// notePosition reads the group's last-delivered ID on stream into the
// subscriber's positions, and records it beside the stream
// ([positionKey]) for a subscriber that finds the group gone at its
// start.
func (s *Subscriber) notePosition(ctx context.Context, stream string) error {
	groups, err := s.client.XInfoGroups(ctx, stream).Result()
	if err != nil {
		return err
	}
	for _, g := range groups {
		if g.Name == s.cfg.Group {
			s.pos.advance(stream, g.LastDeliveredID)
		}
	}
	// What the reader saw counts too: it may be ahead of what was
	// recorded even when the group's own figure adds nothing.
	if last := s.pos.unwritten(stream); last != "" {
		if err := s.client.Set(ctx, s.positionKey(stream), last, 0).Err(); err != nil {
			return err
		}
		s.pos.wrote(stream, last)
	}
	return nil
}

// positionKey holds the last position of the group on stream that a
// subscriber saw: "{orders}:group:billing:delivered". A subscriber that
// finds its group missing at start while this key is there makes it
// again at that position rather than at Start, so that a group deleted
// while none of its consumers ran skips nothing. Delete it with the group
// to start the group afresh.
func (s *Subscriber) positionKey(stream string) string { return PositionKey(stream, s.cfg.Group) }

// remakeGroup makes the group on stream again after it vanished. Into a
// stream that is gone or empty, it starts at "0": everything there is
// new. Otherwise it starts at the furthest entry the group is known to
// have delivered, so no entry added after that is skipped; entries
// between that point and where the lost group really was are delivered
// again.
func (s *Subscriber) remakeGroup(ctx context.Context, stream string) (start string, made bool, err error) {
	start = "0"
	info, err := s.client.XInfoStream(ctx, stream).Result()
	switch {
	case err != nil && strings.Contains(err.Error(), "no such key"):
	case err != nil:
		return "", false, err
	case info.Length > 0:
		if p := s.pos.get(stream); p != "" {
			// Never past the stream's last entry (a stream restored from
			// an older snapshot ends before what was seen).
			start = p
			if compareIDs(p, info.LastGeneratedID) > 0 {
				start = info.LastGeneratedID
			}
		}
	}
	made, err = s.createGroupAt(ctx, stream, start)
	return start, made, err
}

// recover reports a failed read of stream, makes a vanished group again,
// and backs off before the next try.
func (r *run) recover(stream string, err error, failures int) {
	if isNoGroup(err) {
		if r.remake(stream, err) {
			return
		}
	}
	r.eh(r.ctx, fmt.Errorf("redis: reading stream %q as group %q: %w", stream, r.s.cfg.Group, err), nil)
	r.pause(min(time.Duration(failures)*100*time.Millisecond, 5*time.Second))
}

// recoverAll is recover for a read of several streams: a missing group
// is made again on each stream that lacks it.
func (r *run) recoverAll(streams []string, err error, failures int) {
	if len(streams) == 1 {
		r.recover(streams[0], err, failures)
		return
	}
	if isNoGroup(err) {
		remade := false
		for _, stream := range streams {
			remade = r.remake(stream, err) || remade
		}
		if remade {
			return
		}
	}
	r.eh(r.ctx, fmt.Errorf("redis: reading %d streams as group %q: %w", len(streams), r.s.cfg.Group, err), nil)
	r.pause(min(time.Duration(failures)*100*time.Millisecond, 5*time.Second))
}

// remake makes the group on stream again if it is missing; it reports
// whether it did.
func (r *run) remake(stream string, cause error) bool {
	start, made, err := r.s.remakeGroup(r.life, stream)
	switch {
	case err != nil:
		r.eh(r.ctx, fmt.Errorf("redis: making group %q on stream %q again: %w", r.s.cfg.Group, stream, err), nil)
		return false
	case !made:
		return false
	}
	r.s.cfg.Logger.Warn("redis: consumer group missing, made it again", "stream", stream, "group", r.s.cfg.Group, "start", start)
	r.eh(r.ctx, fmt.Errorf("redis: group %q of stream %q was missing (deleted, or lost by a Redis restart); made it again after entry %s: %w", r.s.cfg.Group, stream, start, cause), nil)
	return true
}

func isNoGroup(err error) bool { return err != nil && strings.Contains(err.Error(), "NOGROUP") }
