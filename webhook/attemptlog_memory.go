package webhook

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// DefaultMemoryAttemptLogMaxLen is how many attempts a [MemoryAttemptLog]
// keeps when its MaxLen is 0.
const DefaultMemoryAttemptLogMaxLen = 100000

// memoryScanLimit bounds the records one Query of a MemoryAttemptLog
// reads, so that a selective filter over a full log answers in bounded
// time (with a short page and a Next).
const memoryScanLimit = 50000

// MemoryAttemptLog is an [AttemptLog] in the process's memory, for one
// bridge without Redis and for tests. Make it with [NewMemoryAttemptLog].
type MemoryAttemptLog struct {
	maxLen int
	maxAge time.Duration
	now    func() time.Time

	mu      sync.Mutex
	records []memAttempt // oldest first
	head    int          // records[:head] are dropped, awaiting compaction
	last    logID
	bySub   map[string][]logID
	byEvent map[pubsub.ID][]logID
	events  map[pubsub.ID]memEvent
}

type memAttempt struct {
	id logID
	a  Attempt
}

type memEvent struct {
	ev   pubsub.Event
	last logID // the newest attempt recorded with it, or when it was recorded
}

// MemoryAttemptLogConfig configures a [MemoryAttemptLog].
type MemoryAttemptLogConfig struct {
	// MaxLen bounds the attempts kept; the oldest go first.
	// default: DefaultMemoryAttemptLogMaxLen
	MaxLen int
	// MaxAge bounds how long an attempt is kept.
	// default: DefaultAttemptLogMaxAge
	MaxAge time.Duration
}

// NewMemoryAttemptLog returns an empty log; negative bounds are an error.
func NewMemoryAttemptLog(cfg MemoryAttemptLogConfig) (*MemoryAttemptLog, error) {
	if cfg.MaxLen < 0 || cfg.MaxAge < 0 {
		return nil, fmt.Errorf("webhook: MemoryAttemptLogConfig: MaxLen %d and MaxAge %s must not be negative", cfg.MaxLen, cfg.MaxAge)
	}
	if cfg.MaxLen == 0 {
		cfg.MaxLen = DefaultMemoryAttemptLogMaxLen
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultAttemptLogMaxAge
	}
	return &MemoryAttemptLog{
		maxLen: cfg.MaxLen, maxAge: cfg.MaxAge, now: time.Now,
		bySub: map[string][]logID{}, byEvent: map[pubsub.ID][]logID{}, events: map[pubsub.ID]memEvent{},
	}, nil
}

// Record implements [AttemptLog].
func (l *MemoryAttemptLog) Record(ctx context.Context, b AttemptBatch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, ev := range b.Events {
		ev.Payload = append([]byte(nil), ev.Payload...)
		l.events[ev.ID] = memEvent{ev: ev, last: l.nextID(now)}
	}
	for _, a := range b.Attempts {
		id := l.nextID(now)
		a.ID = id.String()
		l.records = append(l.records, memAttempt{id: id, a: a})
		l.bySub[a.SubscriptionID] = append(l.bySub[a.SubscriptionID], id)
		l.byEvent[a.EventID] = append(l.byEvent[a.EventID], id)
		if e, ok := l.events[a.EventID]; ok {
			e.last = id
			l.events[a.EventID] = e
		}
	}
	l.trim(now)
	return nil
}

// nextID returns an ID after every one given so far, at now's ms when
// the clock allows.
func (l *MemoryAttemptLog) nextID(now time.Time) logID {
	ms := uint64(max(now.UnixMilli(), 0))
	if ms > l.last.ms {
		l.last = logID{ms: ms}
	} else {
		l.last.seq++
	}
	return l.last
}

// trim drops what retention no longer keeps. l.mu is held.
func (l *MemoryAttemptLog) trim(now time.Time) {
	oldest := logID{ms: uint64(max(now.Add(-l.maxAge).UnixMilli(), 0))}
	for l.head < len(l.records) && (len(l.records)-l.head > l.maxLen || l.records[l.head].id.less(oldest)) {
		l.head++
	}
	if l.head == 0 || l.head < len(l.records)/2 {
		return
	}
	// Compact: the indexes and events drop what is gone with the records.
	l.records = append([]memAttempt(nil), l.records[l.head:]...)
	l.head = 0
	first := oldest
	if len(l.records) > 0 {
		first = l.records[0].id
	}
	prune := func(ids []logID) []logID {
		i := sort.Search(len(ids), func(i int) bool { return !ids[i].less(first) })
		return append([]logID(nil), ids[i:]...)
	}
	for k, ids := range l.bySub {
		if ids = prune(ids); len(ids) == 0 {
			delete(l.bySub, k)
		} else {
			l.bySub[k] = ids
		}
	}
	for k, ids := range l.byEvent {
		if ids = prune(ids); len(ids) == 0 {
			delete(l.byEvent, k)
		} else {
			l.byEvent[k] = ids
		}
	}
	for k, e := range l.events {
		if e.last.less(first) {
			delete(l.events, k)
		}
	}
}

// find returns the record with id, if retention still keeps it.
func (l *MemoryAttemptLog) find(id logID) (*memAttempt, bool) {
	live := l.records[l.head:]
	i := sort.Search(len(live), func(i int) bool { return !live[i].id.less(id) })
	if i < len(live) && live[i].id == id {
		return &live[i], true
	}
	return nil, false
}

// Query implements [AttemptLog]: through the subscription's or the
// event's index when q names one, else through every record, newest
// first, reading at most memoryScanLimit records a call.
func (l *MemoryAttemptLog) Query(ctx context.Context, q AttemptQuery) (AttemptPage, error) {
	if err := q.Validate(); err != nil {
		return AttemptPage{}, err
	}
	if err := ctx.Err(); err != nil {
		return AttemptPage{}, err
	}
	upper := logID{ms: ^uint64(0), seq: ^uint64(0)}
	if q.Cursor != "" {
		id, ok := parseLogID(q.Cursor)
		if !ok {
			return AttemptPage{}, fmt.Errorf("%w: %q", ErrInvalidAttemptCursor, q.Cursor)
		}
		upper = id
	}
	if !q.Until.IsZero() {
		if u := (logID{ms: uint64(max(q.Until.UnixMilli(), 0))}); u.less(upper) {
			upper = u
		}
	}
	lower := logID{}
	if !q.Since.IsZero() {
		lower = logID{ms: uint64(max(q.Since.UnixMilli(), 0))}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trim(l.now())

	var ids []logID // the index to walk, nil: every record
	indexed := false
	switch {
	case q.EventID != "":
		ids, indexed = l.byEvent[q.EventID], true
	case q.SubscriptionID != "":
		ids, indexed = l.bySub[q.SubscriptionID], true
	}
	n := len(l.records) - l.head
	if indexed {
		n = len(ids)
	}
	at := func(i int) logID {
		if indexed {
			return ids[i]
		}
		return l.records[l.head+i].id
	}
	// The newest position below upper.
	i := sort.Search(n, func(i int) bool { return !at(i).less(upper) }) - 1
	page := AttemptPage{Attempts: []Attempt{}}
	limit := q.limit()
	for read := 0; i >= 0; i-- {
		id := at(i)
		if id.less(lower) {
			return page, nil
		}
		if read == memoryScanLimit {
			page.Next = logID{id.ms, id.seq + 1}.String() // resume at id itself
			return page, nil
		}
		read++
		var rec *memAttempt
		if indexed {
			var ok bool
			if rec, ok = l.find(id); !ok {
				continue
			}
		} else {
			rec = &l.records[l.head+i]
		}
		if !q.matches(&rec.a) {
			continue
		}
		page.Attempts = append(page.Attempts, rec.a)
		if len(page.Attempts) == limit {
			if i > 0 && !at(i-1).less(lower) {
				page.Next = id.String()
			}
			return page, nil
		}
	}
	return page, nil
}

// Event implements [AttemptLog].
func (l *MemoryAttemptLog) Event(ctx context.Context, id pubsub.ID) (pubsub.Event, error) {
	if err := ctx.Err(); err != nil {
		return pubsub.Event{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trim(l.now())
	e, ok := l.events[id]
	if !ok {
		return pubsub.Event{}, fmt.Errorf("%w: event %q", ErrNotFound, id)
	}
	ev := e.ev
	ev.Payload = append([]byte(nil), ev.Payload...)
	return ev, nil
}

// Len implements [AttemptLog].
func (l *MemoryAttemptLog) Len(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trim(l.now())
	return int64(len(l.records) - l.head), nil
}
