package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

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
