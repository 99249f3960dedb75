package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

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
	key, kind := l.mainKey(), redisLogStream
	switch {
	case q.EventID != "":
		key, kind = l.eventIndexKey(q.EventID), redisLogEventSet
	case q.SubscriptionID != "":
		key = l.subKey(q.SubscriptionID)
	case q.Outcome != "":
		key = l.outcomeKey(q.Outcome)
	default:
		kind = redisLogMain
	}
	// Filters the index entries' own fields can check.
	small := kind != redisLogMain && ((q.Outcome != "" && key != l.outcomeKey(q.Outcome)) || q.Status != 0)
	// Filters a main stream entry's record must be read for.
	filtered := q.Status != 0

	// The range to read, as the kind of key spells it; start goes down
	// as the call reads.
	start, stop := "+", lower.String()
	if bounded {
		start = "(" + upper.String()
	}
	if kind == redisLogEventSet {
		start, stop = "("+redisLogFixedEnd, "["+redisLogFixed(lower)
		if bounded {
			start = "(" + redisLogFixed(upper)
		}
	}
	limit, read := q.limit(), 0
	var lastGood string // the ID of the last entry read that decoded
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
		entries, raw, last, err := l.readIndex(ctx, kind, key, start, stop, n)
		switch {
		case isWrongType(err):
			return page, nil // not of the type it should be: someone's garbage, nothing of ours
		case err != nil:
			return AttemptPage{}, l.redisError(ctx, "reading", err)
		}
		if kind != redisLogMain {
			if err := l.fetch(ctx, entries, q, small, need); err != nil {
				return AttemptPage{}, err
			}
		}
		for i, e := range entries {
			if a := e.a; a != nil && q.matches(a) {
				page.Attempts = append(page.Attempts, *a)
				if len(page.Attempts) == limit {
					if i < len(entries)-1 || raw == n {
						page.Next = a.ID
					}
					return page, nil
				}
			}
		}
		read += raw
		if len(entries) > 0 {
			lastGood = entries[len(entries)-1].id.String()
		}
		switch {
		case raw < n:
			return page, nil
		case read >= redisLogScanLimit:
			// The next call goes on below the last entry that decoded
			// (reading again what did not decode after it); with none in a
			// whole call, the walk ends there.
			page.Next = lastGood
			return page, nil
		}
		start = "(" + last
	}
}

// The kinds of key a query walks.
const (
	redisLogMain     = iota // the main stream
	redisLogStream          // an index stream
	redisLogEventSet        // an event's index, a sorted set
)

// redisLogEntry is an entry of the key a query walks: the main stream's
// with its record, an index's with its outcome and status when it has
// them (the record then fetched). An entry that does not decode has a nil
// record.
type redisLogEntry struct {
	id      logID
	outcome Outcome
	status  int
	fields  bool // outcome and status were read
	a       *Attempt
}

// readIndex reads up to n entries of key from start down to stop (in
// XREVRANGE's or ZREVRANGEBYLEX's terms), newest first. It returns those
// that decode, how many it read, and the last one read as the range
// spells it. Members of an event index that do not decode are left out;
// other entries that do not decode have no record.
func (l *RedisAttemptLog) readIndex(ctx context.Context, kind int, key, start, stop string, n int) (entries []redisLogEntry, read int, last string, err error) {
	if kind == redisLogEventSet {
		members, err := l.client.ZRevRangeByLex(ctx, key, &goredis.ZRangeBy{Max: start, Min: stop, Count: int64(n)}).Result()
		if err != nil || len(members) == 0 {
			return nil, 0, "", err
		}
		entries := make([]redisLogEntry, 0, len(members))
		for _, m := range members {
			if e, ok := parseRedisLogMember(m); ok {
				entries = append(entries, e)
			}
		}
		return entries, len(members), members[len(members)-1], nil
	}
	msgs, err := l.client.XRevRangeN(ctx, key, start, stop, int64(n)).Result()
	if err != nil || len(msgs) == 0 {
		return nil, 0, "", err
	}
	entries = make([]redisLogEntry, len(msgs))
	for i, m := range msgs {
		id, _ := parseLogID(m.ID)
		entries[i].id = id
		if kind == redisLogMain {
			entries[i].a = decodeRedisAttempt(m)
			continue
		}
		o, ok1 := m.Values["o"].(string)
		c, ok2 := m.Values["c"].(string)
		status, err := strconv.Atoi(c)
		entries[i].outcome, entries[i].status, entries[i].fields = Outcome(o), status, ok1 && ok2 && err == nil
	}
	return entries, len(msgs), msgs[len(msgs)-1].ID, nil
}

// redisLogFixed is an ID as the event index writes it: its ms and its
// sequence number, 20 digits each.
func redisLogFixed(id logID) string {
	return fmt.Sprintf("%020d%020d", id.ms, id.seq)
}

// redisLogFixedEnd sorts after every member of an event index whose ID
// decodes: the largest ID in 40 digits, its last one increased.
const redisLogFixedEnd = "1844674407370955161518446744073709551616"

// parseRedisLogMember reads a member of an event index: the ID in 40
// digits, ':', the status, ':', the outcome.
func parseRedisLogMember(m string) (redisLogEntry, bool) {
	if len(m) < 42 || m[40] != ':' {
		return redisLogEntry{}, false
	}
	ms, err1 := strconv.ParseUint(m[:20], 10, 64)
	seq, err2 := strconv.ParseUint(m[20:40], 10, 64)
	c, o, ok := strings.Cut(m[41:], ":")
	status, err3 := strconv.Atoi(c)
	if err1 != nil || err2 != nil || !ok || err3 != nil {
		return redisLogEntry{}, false
	}
	return redisLogEntry{id: logID{ms, seq}, outcome: Outcome(o), status: status, fields: true}, true
}

// fetch reads from the main stream the records of the index entries that
// pass q's filters on their own fields, in order, a batch at a time, and
// only until need of them match q; the others, those after, and those
// whose record is gone or does not decode are left without.
func (l *RedisAttemptLog) fetch(ctx context.Context, entries []redisLogEntry, q AttemptQuery, small bool, need int) error {
	i := 0
	for i < len(entries) && need > 0 {
		// The next batch: as many candidates as matches are still needed.
		var batch []int
		for ; i < len(entries) && len(batch) < need; i++ {
			e := &entries[i]
			if !small || !e.fields || ((q.Outcome == "" || e.outcome == q.Outcome) && (q.Status == 0 || e.status == q.Status)) {
				batch = append(batch, i)
			}
		}
		if len(batch) == 0 {
			break
		}
		cmds := make([]*goredis.XMessageSliceCmd, len(batch))
		_, err := l.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for j, k := range batch {
				id := entries[k].id.String()
				cmds[j] = p.XRange(ctx, l.mainKey(), id, id)
			}
			return nil
		})
		if err != nil && !isWrongType(err) {
			return l.redisError(ctx, "reading", err)
		}
		for j, k := range batch {
			msgs, err := cmds[j].Result()
			if err != nil || len(msgs) != 1 {
				continue
			}
			if a := decodeRedisAttempt(msgs[0]); a != nil {
				entries[k].a = a
				if q.matches(a) {
					need--
				}
			}
		}
	}
	return nil
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
