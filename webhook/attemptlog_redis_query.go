package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"
)

// redisLogScanLimit bounds the stream entries one Query of a
// RedisAttemptLog reads, so that a selective filter over a full log
// answers in bounded time (with a short page and a Next).
const redisLogScanLimit = 5000

// Query implements [AttemptLog]: through the event's index when q names
// an event, else the subscription's, else the outcome's, else the main
// stream, newest first, reading at most 5,000 entries a call. The filters
// an index does not serve are checked on its entries' outcome and status
// first, then on the records, which are read from the main stream in one
// pipeline per batch. Entries that do not decode, and index entries whose
// attempt is gone, are skipped.
func (l *RedisAttemptLog) Query(ctx context.Context, q AttemptQuery) (AttemptPage, error) {
	if err := q.Validate(); err != nil {
		return AttemptPage{}, err
	}
	if err := ctx.Err(); err != nil {
		return AttemptPage{}, err
	}
	page := AttemptPage{Attempts: []Attempt{}}
	upper := logID{ms: ^uint64(0), seq: ^uint64(0)}
	bounded := false // upper is exclusive; without a bound, "+" includes the last ID
	if q.Cursor != "" {
		id, ok := parseLogID(q.Cursor)
		if !ok {
			return AttemptPage{}, fmt.Errorf("%w: %q", ErrInvalidAttemptCursor, q.Cursor)
		}
		upper, bounded = id, true
	}
	if !q.Until.IsZero() {
		if u := (logID{ms: uint64(max(q.Until.UnixMilli(), 0))}); u.less(upper) {
			upper, bounded = u, true
		}
	}
	lower := logID{ms: uint64(max(l.now().Add(-l.maxAge).UnixMilli(), 0))}
	if !q.Since.IsZero() {
		if s := (logID{ms: uint64(max(q.Since.UnixMilli(), 0))}); lower.less(s) {
			lower = s
		}
	}
	if bounded && !lower.less(upper) {
		return page, nil // nothing in [lower, upper), and "(0-0" is no range
	}
	key, indexed := l.mainKey(), true
	switch {
	case q.EventID != "":
		key = l.eventIndexKey(q.EventID)
	case q.SubscriptionID != "":
		key = l.subKey(q.SubscriptionID)
	case q.Outcome != "":
		key = l.outcomeKey(q.Outcome)
	default:
		indexed = false
	}
	// Filters the index entries' own fields can check.
	small := indexed && ((q.Outcome != "" && key != l.outcomeKey(q.Outcome)) || q.Status != 0)
	// Filters a main stream entry's record must be read for.
	filtered := q.Status != 0

	start, stop := "+", lower.String()
	if bounded {
		start = "(" + upper.String()
	}
	limit, read := q.limit(), 0
	grow := 1
	for {
		need := limit - len(page.Attempts)
		budget := redisLogScanLimit - read
		n := need + 1 // one more than the page tells whether another follows
		if small || filtered {
			n = max(n, 256) * grow
			grow = min(grow*2, 16)
		}
		n = min(n, budget)
		entries, err := l.client.XRevRangeN(ctx, key, start, stop, int64(n)).Result()
		switch {
		case isWrongType(err):
			return page, nil // not a stream: someone's garbage, nothing of ours
		case err != nil:
			return AttemptPage{}, l.redisError(ctx, "reading", err)
		}
		var recs []*Attempt
		if indexed {
			if recs, err = l.fetch(ctx, entries, q, small, need); err != nil {
				return AttemptPage{}, err
			}
		} else {
			recs = make([]*Attempt, len(entries))
			for i, e := range entries {
				recs[i] = decodeRedisAttempt(e)
			}
		}
		for i, e := range entries {
			read++
			if a := recs[i]; a != nil && q.matches(a) {
				page.Attempts = append(page.Attempts, *a)
				if len(page.Attempts) == limit {
					if i < len(entries)-1 || len(entries) == n {
						page.Next = e.ID
					}
					return page, nil
				}
			}
		}
		switch {
		case len(entries) < n:
			return page, nil
		case read >= redisLogScanLimit:
			page.Next = entries[len(entries)-1].ID
			return page, nil
		}
		start = "(" + entries[len(entries)-1].ID
	}
}

// fetch reads from the main stream the records of the index entries that
// pass q's filters on their own fields, in order, a batch at a time, and
// only until need of them match q: the result holds nil for the others
// and for those after. Records that are gone or do not decode are nil.
func (l *RedisAttemptLog) fetch(ctx context.Context, entries []goredis.XMessage, q AttemptQuery, small bool, need int) ([]*Attempt, error) {
	recs := make([]*Attempt, len(entries))
	i := 0
	for i < len(entries) && need > 0 {
		// The next batch: as many candidates as matches are still needed.
		var batch []int
		for ; i < len(entries) && len(batch) < need; i++ {
			if !small || indexEntryMatches(entries[i], q) {
				batch = append(batch, i)
			}
		}
		if len(batch) == 0 {
			break
		}
		cmds := make([]*goredis.XMessageSliceCmd, len(batch))
		_, err := l.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for j, k := range batch {
				id := entries[k].ID
				cmds[j] = p.XRange(ctx, l.mainKey(), id, id)
			}
			return nil
		})
		if err != nil && !isWrongType(err) {
			return nil, l.redisError(ctx, "reading", err)
		}
		for j, k := range batch {
			msgs, err := cmds[j].Result()
			if err != nil || len(msgs) != 1 || msgs[0].ID != entries[k].ID {
				continue
			}
			if a := decodeRedisAttempt(msgs[0]); a != nil {
				recs[k] = a
				if q.matches(a) {
					need--
				}
			}
		}
	}
	return recs, nil
}

// indexEntryMatches reports whether an index entry may be of an attempt
// q selects, by its outcome and status fields; an entry without them
// (not written here) leaves it to the record.
func indexEntryMatches(e goredis.XMessage, q AttemptQuery) bool {
	if o, ok := e.Values["o"].(string); ok && q.Outcome != "" && Outcome(o) != q.Outcome {
		return false
	}
	if c, ok := e.Values["c"].(string); ok && q.Status != 0 {
		if s, err := strconv.Atoi(c); err == nil && s != q.Status {
			return false
		}
	}
	return true
}

// decodeRedisAttempt returns the attempt of a main stream entry, or nil
// for an entry that is not one.
func decodeRedisAttempt(e goredis.XMessage) *Attempt {
	raw, ok := e.Values["j"].(string)
	if !ok {
		return nil
	}
	var a Attempt
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		return nil
	}
	a.ID = e.ID
	return &a
}

var _ AttemptLog = (*RedisAttemptLog)(nil)
