package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// The outcomes the delivery log records besides those an [Observer] is
// told of. An attempt that fails and is retried is [Failed] (or
// [TimedOut]); the last one, after which the delivery is dead-lettered,
// is [DeadLettered], whatever its status or error.
const (
	// TimedOut: the endpoint did not answer within the subscription's
	// timeout; a retry follows.
	TimedOut Outcome = "timed_out"
	// DeadLettered: the attempt failed and the delivery was given up on
	// (its attempts spent, a 410, or undeliverable: Error says which).
	DeadLettered Outcome = "dead_lettered"
	// Skipped: the event matched a disabled subscription and was not
	// sent. (An event handed over again, after a crash or an error, is
	// logged as skipped again.)
	Skipped Outcome = "skipped"
)

// Outcomes lists every outcome the delivery log records, for checking
// input.
var Outcomes = []Outcome{Delivered, Failed, TimedOut, DeadLettered, Deferred, RateLimited, Skipped, DryRun}

// Defaults of the delivery log.
const (
	// DefaultAttemptLogMaxAge is how long an attempt is kept when a log's
	// MaxAge is 0.
	DefaultAttemptLogMaxAge = 72 * time.Hour
	// DefaultAttemptPage is the page size of [AttemptLog.Query] when the
	// query's Limit is below 1.
	DefaultAttemptPage = 100
	// MaxAttemptPage is the largest page [AttemptLog.Query] returns.
	MaxAttemptPage = 1000
	// DefaultResponseBodyBytes is how much of a response body an attempt
	// keeps when [Config.ResponseBodyBytes] is 0.
	DefaultResponseBodyBytes = 4 << 10
	// MaxResponseBodyBytes bounds [Config.ResponseBodyBytes]: the bridge
	// reads no more of a response body (so a delivery-log queue of 8,192
	// attempts holds at most 512 MiB of bodies, and that only with this
	// limit set).
	MaxResponseBodyBytes = 64 << 10
)

// ErrNotFound is returned, wrapped, by [AttemptLog.Event] for an event the
// log does not hold (never recorded, or past its retention).
var ErrNotFound = errors.New("webhook: not found")

// ErrInvalidAttemptCursor is returned, wrapped, by [AttemptLog.Query] for
// a cursor not of the form "<ms>-<seq>" its cursors take.
var ErrInvalidAttemptCursor = errors.New("webhook: invalid delivery-log cursor")

// Attempt is one delivery attempt as the delivery log records it: what was
// sent, what came back, and what it came to. Deferrals (circuit open, rate
// limited), dry runs and skips are recorded too, with Attempt 0: they
// spend no attempt and send nothing.
type Attempt struct {
	// ID is the attempt's place in its log, set by the log; IDs of one log
	// sort as the attempts were recorded (see [AttemptLog]).
	ID string `json:"id"`
	// EventID and EventName are the event's.
	EventID   pubsub.ID   `json:"event_id"`
	EventName pubsub.Name `json:"event_name"`
	// SubscriptionID is the subscription the delivery was for.
	SubscriptionID string `json:"subscription_id"`
	// Attempt is the attempt's number, 1 on the first; 0 when nothing was
	// sent.
	Attempt int `json:"attempt"`
	// At is when the attempt started.
	At time.Time `json:"at"`
	// Duration is how long it took, from building the request to the end
	// of the response body read.
	Duration time.Duration `json:"duration_ns"`
	// Outcome is what it came to.
	Outcome Outcome `json:"outcome"`
	// URL is where it was sent, its user information redacted.
	URL string `json:"url,omitempty"`
	// RequestHeaders are the headers sent, signatures included; values of
	// headers the subscription sets are redacted, as they may hold
	// credentials.
	RequestHeaders http.Header `json:"request_headers,omitempty"`
	// Status is the response status, 0 without a response.
	Status int `json:"status,omitempty"`
	// ResponseHeaders are the response's headers.
	ResponseHeaders http.Header `json:"response_headers,omitempty"`
	// ResponseBody is the start of the response body, up to
	// [Config.ResponseBodyBytes]: untrusted text, never to be rendered as
	// markup.
	ResponseBody string `json:"response_body,omitempty"`
	// ResponseBodyTruncated: the body was longer than ResponseBody.
	ResponseBodyTruncated bool `json:"response_body_truncated,omitempty"`
	// Error says what went wrong, when something did.
	Error string `json:"error,omitempty"`
}

// AttemptQuery selects attempts from a log; its zero value selects all of
// them. The fields combine with "and".
type AttemptQuery struct {
	// SubscriptionID keeps the attempts for that subscription.
	SubscriptionID string
	// EventID keeps the attempts for that event.
	EventID pubsub.ID
	// Outcome keeps the attempts with that outcome.
	Outcome Outcome
	// Status keeps the attempts answered with that HTTP status.
	Status int
	// Since and Until keep the attempts recorded in [Since, Until): zero
	// means no bound. The time is the log's, when it recorded the attempt
	// (a fraction of a second after it ended).
	Since, Until time.Time
	// Limit is the most attempts a page holds: [DefaultAttemptPage] when
	// below 1, at most [MaxAttemptPage].
	Limit int
	// Cursor is the Next of the previous page, "" for the first.
	Cursor string
}

// Validate reports what in q is out of range.
func (q AttemptQuery) Validate() error {
	switch {
	case q.Outcome != "" && !knownOutcome(q.Outcome):
		return fmt.Errorf("webhook: outcome %q: want one of %s", q.Outcome, outcomeList())
	case q.Status != 0 && (q.Status < 100 || q.Status > 599):
		return fmt.Errorf("webhook: status %d: want 100 to 599", q.Status)
	case !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since):
		return fmt.Errorf("webhook: until %s is not after since %s", q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	return nil
}

func (q AttemptQuery) limit() int {
	switch {
	case q.Limit < 1:
		return DefaultAttemptPage
	case q.Limit > MaxAttemptPage:
		return MaxAttemptPage
	}
	return q.Limit
}

// matches reports whether a passes q's filters other than the time range.
func (q AttemptQuery) matches(a *Attempt) bool {
	return (q.SubscriptionID == "" || a.SubscriptionID == q.SubscriptionID) &&
		(q.EventID == "" || a.EventID == q.EventID) &&
		(q.Outcome == "" || a.Outcome == q.Outcome) &&
		(q.Status == 0 || a.Status == q.Status)
}

func knownOutcome(o Outcome) bool {
	for _, k := range Outcomes {
		if k == o {
			return true
		}
	}
	return false
}

func outcomeList() string {
	s := make([]string, len(Outcomes))
	for i, o := range Outcomes {
		s[i] = string(o)
	}
	return strings.Join(s, ", ")
}

// AttemptPage is one page of a query: the attempts, newest first, and the
// cursor of the next page.
type AttemptPage struct {
	Attempts []Attempt `json:"attempts"`
	// Next is the cursor of the following page, "" when none follows. A
	// page may hold fewer attempts than the limit, even none, while Next
	// is not "": a log reads a bounded number of records per call.
	Next string `json:"next_cursor,omitempty"`
}

// AttemptBatch is what the bridge hands a log at once: attempts, and the
// events they are of (each once, payload included), so that an event can
// be shown and recovered while its attempts are kept.
type AttemptBatch struct {
	Events   []pubsub.Event
	Attempts []Attempt
}

// AttemptLog records delivery attempts and the events they were of, for
// as long as its retention says, and answers queries on them.
//
// Retention: an implementation keeps attempts for a bounded age and up to
// a bounded count, dropping the oldest first, and an event for as long as
// its newest recorded attempt (at least); it never grows without bound.
//
// Query walks newest first. A walk starts with an empty Cursor and goes on
// with each page's Next until it is "". The first page fixes the walk's
// start: attempts recorded after it are left for the next walk, so a walk
// ends; one that retention drops during the walk is not returned, and no
// other is skipped or repeated.
//
// Implementations are safe for concurrent use (a shared one such as
// [RedisAttemptLog] by several processes); a method that waits on I/O
// gives up when ctx is done.
type AttemptLog interface {
	// Record stores a batch; the log sets each attempt's ID. Events
	// recorded again replace the earlier record of the same ID.
	Record(ctx context.Context, b AttemptBatch) error
	// Query returns one page of the attempts q selects, newest first. A
	// q that fails [AttemptQuery.Validate] is an error, and so is a Cursor
	// that is not of the form the log's cursors take (wrapping
	// [ErrInvalidAttemptCursor]); a well-formed cursor is a position among
	// the log's IDs, so one from another log starts from that position.
	Query(ctx context.Context, q AttemptQuery) (AttemptPage, error)
	// Event returns the event recorded with that ID, or an error wrapping
	// [ErrNotFound].
	Event(ctx context.Context, id pubsub.ID) (pubsub.Event, error)
	// Len returns how many attempts the log holds now.
	Len(ctx context.Context) (int64, error)
}

// logID is an attempt ID of the form "<unix ms>-<sequence>", as Redis
// stream IDs are; it sorts by (ms, seq).
type logID struct{ ms, seq uint64 }

func (id logID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}

func (id logID) less(o logID) bool {
	return id.ms < o.ms || (id.ms == o.ms && id.seq < o.seq)
}

func parseLogID(s string) (logID, bool) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return logID{}, false
	}
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	return logID{a, b}, err1 == nil && err2 == nil
}
