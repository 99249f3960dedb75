package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// RedisDeadLetters is a [DeadLetterStore] in a Redis stream, one entry per
// dead letter (a "dead_letter" field holding its JSON), so that every
// replica and the `webhook-bridge dlq` commands see the same list. Its IDs
// are the entries' stream IDs; its cursors look like
// "1700000000000-0..1700000000999-3". It needs Redis 6.2 or later.
type RedisDeadLetters struct {
	// Client is the caller's; it is never closed here.
	Client goredis.UniversalClient
	// Key is the stream's key.
	Key string
	// MaxLen bounds the stream to about this many entries: every Add
	// trims it with XADD MAXLEN ~, which drops the oldest entries in
	// whole macro nodes, so the stream may hold up to a node (100 entries
	// by default, stream-node-max-entries) more. A negative value keeps
	// every dead letter.
	// default: DefaultDeadLetterMaxLen
	MaxLen int64
}

// Add appends dl to the stream, trimming it to about MaxLen entries; its
// ID is the entry ID.
func (r RedisDeadLetters) Add(ctx context.Context, dl DeadLetter) error {
	dl.withKind()
	b, err := json.Marshal(dl)
	if err != nil {
		return err
	}
	args := &goredis.XAddArgs{Stream: r.Key, Values: []any{"dead_letter", b}}
	switch {
	case r.MaxLen == 0:
		args.MaxLen, args.Approx = DefaultDeadLetterMaxLen, true
	case r.MaxLen > 0:
		args.MaxLen, args.Approx = r.MaxLen, true
	}
	return r.Client.XAdd(ctx, args).Err()
}

// validStreamID accepts a complete stream entry ID, "<ms>-<seq>".
func validStreamID(s string) bool {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}

// lastStreamID reports whether s is the largest stream entry ID.
func lastStreamID(s string) bool {
	ms, seq, _ := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil && a == math.MaxUint64 && b == math.MaxUint64
}

// List reads one page of the stream with XRANGE (after COUNT, oldest first;
// see [DeadLetterStore.List]). The first page of a walk also reads the
// newest entry's ID, the end of the walk. Entries that are not dead
// letters are skipped.
func (r RedisDeadLetters) List(ctx context.Context, after string, limit int) ([]DeadLetter, string, error) {
	if limit < 1 {
		limit = DefaultDeadLetterPage
	}
	from, until, err := parseCursor(after, validStreamID)
	if err != nil {
		return nil, "", err
	}
	if until == "" {
		last, err := r.Client.XRevRangeN(ctx, r.Key, "+", "-", 1).Result()
		if err != nil {
			return nil, "", r.readError(ctx, err)
		}
		if len(last) == 0 {
			return nil, "", nil
		}
		until = last[0].ID
	}
	if lastStreamID(from) {
		return nil, "", nil // nothing can follow it, and "(" of it is no range
	}
	start := "-"
	if from != "" {
		start = "(" + from
	}
	// One entry more than the page tells whether another page follows.
	entries, err := r.Client.XRangeN(ctx, r.Key, start, until, int64(limit)+1).Result()
	if err != nil {
		return nil, "", r.readError(ctx, err)
	}
	next := ""
	if len(entries) > limit {
		entries = entries[:limit]
		next = entries[limit-1].ID + cursorSep + until
	}
	page := make([]DeadLetter, 0, len(entries))
	for _, e := range entries {
		raw, _ := e.Values["dead_letter"].(string)
		var dl DeadLetter
		if json.Unmarshal([]byte(raw), &dl) != nil {
			continue
		}
		dl.ID = e.ID
		page = append(page, dl)
	}
	return page, next, nil
}

func (r RedisDeadLetters) readError(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return ctx.Err()
	}
	return fmt.Errorf("webhook: reading dead letters from %q: %w", r.Key, err)
}

// Remove deletes entries by ID.
func (r RedisDeadLetters) Remove(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return r.Client.XDel(ctx, r.Key, ids...).Err()
}

// Len returns the stream's length (XLEN), entries that are not dead
// letters included.
func (r RedisDeadLetters) Len(ctx context.Context) (int64, error) {
	n, err := r.Client.XLen(ctx, r.Key).Result()
	if err != nil {
		return 0, r.readError(ctx, err)
	}
	return n, nil
}
