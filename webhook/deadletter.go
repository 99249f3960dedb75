package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
)

// DefaultDeadLetterMaxLen is how many dead letters a store keeps when its
// MaxLen is 0: the oldest go first beyond it.
const DefaultDeadLetterMaxLen = 100000

// DefaultDeadLetterPage is the page size of [DeadLetterStore.List] when it
// is given a limit below 1.
const DefaultDeadLetterPage = 100

// ErrInvalidCursor is returned, wrapped, by [DeadLetterStore.List] when
// its after argument is neither "" nor a cursor or ID of that store.
var ErrInvalidCursor = errors.New("webhook: invalid dead-letter cursor")

// DeadLetterKind says why a delivery was given up on.
type DeadLetterKind string

// The kinds of dead letter.
const (
	// KindExhausted: every attempt failed (an error or a status other than
	// 2xx and 410), the last one included.
	KindExhausted DeadLetterKind = "exhausted"
	// KindGone: the endpoint answered 410 Gone, which ends retries at once.
	KindGone DeadLetterKind = "gone"
	// KindUndeliverable: the event cannot become an HTTP request (it fails
	// [CheckDeliverable], or the request could not be built or holds a
	// header value HTTP refuses). Nothing was sent and nothing is retried;
	// the endpoint's circuit does not count it.
	KindUndeliverable DeadLetterKind = "undeliverable"
	// KindOrphaned: the subscription was removed or disabled while a retry
	// of the delivery waited.
	KindOrphaned DeadLetterKind = "orphaned"
	// KindUnhandled is reserved for entries a backend dead-lettered before
	// the bridge saw them (a stream entry that does not decode, say), for
	// listings that show both; the bridge never records it.
	KindUnhandled DeadLetterKind = "unhandled"
)

// legacyKind is the kind of a dead letter stored without one, by a version
// that did not record kinds: gone after a 410, else exhausted.
func legacyKind(lastStatus int) DeadLetterKind {
	if lastStatus == http.StatusGone {
		return KindGone
	}
	return KindExhausted
}

// DeadLetter is a delivery given up on: the event, the subscription, and
// why.
type DeadLetter struct {
	// ID identifies the dead letter in its store.
	ID string `json:"id"`
	// SubscriptionID is the subscription the delivery was for.
	SubscriptionID string `json:"subscription_id"`
	// Kind says why the delivery was given up on. A dead letter decoded
	// from JSON without a kind (stored by an earlier version) reads as
	// [KindGone] when LastStatus is 410, else as [KindExhausted]; stores
	// record the same for one added without a kind.
	Kind DeadLetterKind `json:"kind"`
	// Attempts is how many deliveries were tried; 0 for an event
	// undeliverable from the start.
	Attempts int `json:"attempts"`
	// LastStatus is the last HTTP status, 0 when there was no response.
	LastStatus int `json:"last_status"`
	// LastError says what went wrong last.
	LastError string `json:"last_error"`
	// At is when the delivery was given up on.
	At time.Time `json:"at"`
	// Event is the event as it was emitted.
	Event pubsub.Event `json:"event"`
}

// UnmarshalJSON decodes a dead letter, giving one stored without a kind
// the kind it had before kinds were recorded.
func (d *DeadLetter) UnmarshalJSON(b []byte) error {
	type plain DeadLetter // without this method
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*d = DeadLetter(p)
	d.withKind()
	return nil
}

// withKind sets a missing kind as for an entry stored before kinds.
func (d *DeadLetter) withKind() {
	if d.Kind == "" {
		d.Kind = legacyKind(d.LastStatus)
	}
}

// DeadLetterStore keeps dead letters until they are replayed, up to a
// bound set by the implementation (the oldest go first beyond it).
//
// A store gives each dead letter an ID when it is added. IDs are never
// reused and follow the order in which dead letters were added, which is
// the order List returns them in.
//
// Listing is paged, so that no call has to hold or send the whole store.
// A walk starts with List(ctx, "", limit) and goes on with the next cursor
// of each page until next is "". The first call of a walk fixes its end:
// a walk returns every dead letter that was stored when it started and is
// still stored when its page is read, each exactly once, oldest first;
// dead letters added after it started (a replayed delivery that fails
// again, say) are left for the next walk, so a walk always ends. Removing
// dead letters during a walk, those already returned included, neither
// skips nor repeats any other: a cursor is a position among IDs, not an
// offset. A cursor stays valid for as long as the store exists.
//
// Implementations are safe for concurrent use by several goroutines (and,
// for a shared store such as [RedisDeadLetters], by several processes).
// A method that waits on I/O gives up when ctx is done.
type DeadLetterStore interface {
	// Add stores dl; its ID is set by the store, and so is its Kind when
	// it has none (as [DeadLetter.Kind] says). When the store is at its
	// bound, the oldest dead letters are dropped to make room.
	Add(ctx context.Context, dl DeadLetter) error
	// List returns up to limit dead letters ([DefaultDeadLetterPage] when
	// limit < 1), oldest first: from the start of the store when after is
	// "", else from just after the position that after names, which is
	// the next of an earlier page or the ID of a dead letter (removed or
	// not). next is the cursor of the following page, "" when this page
	// ends the walk. A page may hold fewer than limit dead letters while
	// next is not "" (entries that do not decode are skipped). An after
	// the store cannot read is an error wrapping [ErrInvalidCursor].
	List(ctx context.Context, after string, limit int) (page []DeadLetter, next string, err error)
	// Remove deletes the dead letters with these IDs; IDs it does not hold
	// are ignored.
	Remove(ctx context.Context, ids ...string) error
	// Len returns how many dead letters the store holds now.
	Len(ctx context.Context) (int64, error)
}

// cursorSep separates a cursor's position from the end of its walk:
// "<after>..<until>".
const cursorSep = ".."

// parseCursor splits a cursor into the position after which the page
// starts and the ID that ends its walk ("" when the walk starts now),
// checking both with valid.
func parseCursor(cursor string, valid func(string) bool) (after, until string, err error) {
	if cursor == "" {
		return "", "", nil
	}
	after, until, walk := strings.Cut(cursor, cursorSep)
	if !valid(after) || (walk && !valid(until)) {
		return "", "", fmt.Errorf("%w: %q", ErrInvalidCursor, cursor)
	}
	return after, until, nil
}

// MemoryDeadLetters is a [DeadLetterStore] in process memory, the default
// when no store is configured. It is safe for concurrent use. Its IDs are
// decimal integers, counting from 1. Set MaxLen before first use; the zero
// value is ready to use.
type MemoryDeadLetters struct {
	// MaxLen is how many dead letters are kept: adding one more drops the
	// oldest, counted by [MemoryDeadLetters.Dropped]. A negative value
	// keeps every dead letter.
	// default: DefaultDeadLetterMaxLen
	MaxLen int

	mu      sync.Mutex
	seq     uint64            // the last ID given
	entries []memoryDeadEntry // ascending IDs; removed ones stay as tombstones until compacted
	live    int
	dropped int64
}

type memoryDeadEntry struct {
	n    uint64
	gone bool
	dl   DeadLetter
}

func (m *MemoryDeadLetters) maxLen() int {
	if m.MaxLen == 0 {
		return DefaultDeadLetterMaxLen
	}
	return m.MaxLen
}

// Add stores dl, dropping the oldest dead letter when the store holds
// MaxLen already.
func (m *MemoryDeadLetters) Add(_ context.Context, dl DeadLetter) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	dl.ID = strconv.FormatUint(m.seq, 10)
	dl.withKind()
	m.entries = append(m.entries, memoryDeadEntry{n: m.seq, dl: dl})
	m.live++
	if limit := m.maxLen(); limit > 0 {
		for i := 0; m.live > limit && i < len(m.entries); i++ {
			if !m.entries[i].gone {
				m.removeAt(i)
				m.dropped++
			}
		}
	}
	m.tidy()
	return nil
}

// removeAt turns entry i into a tombstone.
func (m *MemoryDeadLetters) removeAt(i int) {
	m.entries[i] = memoryDeadEntry{n: m.entries[i].n, gone: true}
	m.live--
}

// tidy drops leading tombstones and compacts once tombstones outnumber
// live entries, so that both Add and Remove cost O(1) amortized (plus the
// search for an ID).
func (m *MemoryDeadLetters) tidy() {
	i := 0
	for i < len(m.entries) && m.entries[i].gone {
		i++
	}
	m.entries = m.entries[i:]
	if dead := len(m.entries) - m.live; dead > 64 && dead > m.live {
		kept := make([]memoryDeadEntry, 0, m.live+m.live/4+1)
		for _, e := range m.entries {
			if !e.gone {
				kept = append(kept, e)
			}
		}
		m.entries = kept
	}
}

// search returns the index of the first entry whose ID is above n.
func (m *MemoryDeadLetters) search(n uint64) int {
	return sort.Search(len(m.entries), func(i int) bool { return m.entries[i].n > n })
}

func validMemoryID(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// List returns a page of copies of the dead letters, oldest first; see
// [DeadLetterStore.List]. Cursors look like "12..40".
func (m *MemoryDeadLetters) List(_ context.Context, after string, limit int) ([]DeadLetter, string, error) {
	if limit < 1 {
		limit = DefaultDeadLetterPage
	}
	from, until, err := parseCursor(after, validMemoryID)
	if err != nil {
		return nil, "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	end := m.seq
	if until != "" {
		end, _ = strconv.ParseUint(until, 10, 64)
	}
	start := 0
	if from != "" {
		n, _ := strconv.ParseUint(from, 10, 64)
		start = m.search(n)
	}
	var page []DeadLetter
	for i := start; i < len(m.entries) && m.entries[i].n <= end; i++ {
		e := m.entries[i]
		if e.gone {
			continue
		}
		if len(page) == limit {
			return page, page[len(page)-1].ID + cursorSep + strconv.FormatUint(end, 10), nil
		}
		page = append(page, e.dl)
	}
	return page, "", nil
}

// Remove deletes the dead letters with these IDs.
func (m *MemoryDeadLetters) Remove(_ context.Context, ids ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			continue
		}
		if i := m.search(n) - 1; i >= 0 && m.entries[i].n == n && !m.entries[i].gone {
			m.removeAt(i)
		}
	}
	m.tidy()
	return nil
}

// Len returns how many dead letters the store holds.
func (m *MemoryDeadLetters) Len(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(m.live), nil
}

// Dropped returns how many dead letters were dropped, oldest first, to
// keep the store within MaxLen.
func (m *MemoryDeadLetters) Dropped() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropped
}

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
