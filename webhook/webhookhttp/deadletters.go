package webhookhttp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
)

// DeadLetterLister lists dead things a page at a time, as
// [webhook.DeadLetterStore.List] does.
type DeadLetterLister interface {
	List(ctx context.Context, after string, limit int) (page []webhook.DeadLetter, next string, err error)
	Len(ctx context.Context) (int64, error)
}

// RedisUnhandled lists the entries the redis backend dead-lettered from
// Stream ([redis.DeadKey]) as dead letters of kind unhandled: entries that
// were not events, or whose handling crashed, hung or failed every time.
// Its cursors and IDs are entry IDs of the dead-letter stream.
type RedisUnhandled struct {
	Client goredis.UniversalClient
	Stream string
}

// List implements [DeadLetterLister]. As [webhook.RedisDeadLetters] does,
// the first page of a walk fixes its end (the newest entry then), so that
// entries dead-lettered during the walk wait for the next one; cursors are
// "<after>..<end>", and an entry ID starts a new walk after it.
func (u RedisUnhandled) List(ctx context.Context, after string, limit int) ([]webhook.DeadLetter, string, error) {
	if limit < 1 {
		limit = webhook.DefaultDeadLetterPage
	}
	from, until, walk := strings.Cut(after, "..")
	if (from != "" && !streamID(from)) || (walk && !streamID(until)) {
		return nil, "", fmt.Errorf("%w: %q", webhook.ErrInvalidCursor, after)
	}
	if lastID(from) {
		return nil, "", nil // nothing can follow it
	}
	if until == "" {
		last, err := u.Client.XRevRangeN(ctx, redis.DeadKey(u.Stream), "+", "-", 1).Result()
		if err != nil || len(last) == 0 {
			return nil, "", err
		}
		until = last[0].ID
	}
	entries, err := redis.ListDead(ctx, u.Client, u.Stream, from, until, int64(limit))
	if err != nil {
		return nil, "", err
	}
	out := make([]webhook.DeadLetter, len(entries))
	for i, e := range entries {
		reason := e.Reason
		if e.Malformed != nil && !strings.Contains(reason, e.Malformed.Error()) {
			reason += " (" + e.Malformed.Error() + ")"
		}
		out[i] = webhook.DeadLetter{
			ID: e.ID, Kind: webhook.KindUnhandled, Attempts: e.Deliveries, LastError: reason, At: e.At, Event: e.Event,
		}
		// A retry the backend gave up on shows as the delivery it was.
		if sub, ev, attempts, ok := webhook.UnwrapRetry(e.Event); ok {
			out[i].SubscriptionID, out[i].Event, out[i].Attempts = sub, ev, attempts
			out[i].LastError = reason + " (a retry of subscription " + strconv.Quote(sub) + ")"
		}
	}
	next := ""
	if len(entries) == limit && entries[len(entries)-1].ID != until {
		next = entries[len(entries)-1].ID + ".." + until
	}
	return out, next, nil
}

// streamID reports whether s is a whole stream entry ID, "<ms>-<seq>".
func streamID(s string) bool {
	ms, seq, ok := strings.Cut(s, "-")
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return ok && err1 == nil && err2 == nil
}

// lastID reports whether s is the largest stream entry ID.
func lastID(s string) bool {
	return s == strconv.FormatUint(math.MaxUint64, 10)+"-"+strconv.FormatUint(math.MaxUint64, 10)
}

// End returns the newest entry's ID, "" when there is none: where a walk
// beginning now ends.
func (u RedisUnhandled) End(ctx context.Context) (string, error) {
	last, err := u.Client.XRevRangeN(ctx, redis.DeadKey(u.Stream), "+", "-", 1).Result()
	if err != nil || len(last) == 0 {
		return "", err
	}
	return last[0].ID, nil
}

// Len implements [DeadLetterLister].
func (u RedisUnhandled) Len(ctx context.Context) (int64, error) {
	return u.Client.XLen(ctx, redis.DeadKey(u.Stream)).Result()
}

// DeadLetters lists every dead thing of a bridge in one walk: the
// bridge's dead letters (Store), then what its backend dead-lettered
// (Unhandled, kind "unhandled"). The first page of a walk fixes its end in
// every source, so a walk covers what was stored when it began, each once,
// and always ends. Cursors are opaque; a dead letter's ID is a cursor too
// (a new walk starting after it). IDs of the n-th Unhandled lister's dead
// letters are "unhandled:<n>:" and the lister's own.
type DeadLetters struct {
	Store     webhook.DeadLetterStore
	Unhandled []DeadLetterLister
}

// walkEnder is a DeadLetterLister whose walks can be given an end: End
// returns its newest ID ("" when it is empty), and List takes the cursor
// "<after>..<end>".
type walkEnder interface {
	End(ctx context.Context) (string, error)
}

const (
	unhandledPrefix = "unhandled:"
	endsSep         = "|" // between a position and the ends of the walk
	emptySource     = "-" // a source empty when the walk began
	unboundedSource = "*" // a source that cannot fix an end
)

// ends reads where the walk beginning now ends in each Unhandled lister.
func (d DeadLetters) ends(ctx context.Context) ([]string, error) {
	out := make([]string, len(d.Unhandled))
	for i, u := range d.Unhandled {
		e, ok := u.(walkEnder)
		if !ok {
			out[i] = unboundedSource
			continue
		}
		end, err := e.End(ctx)
		if err != nil {
			return nil, err
		}
		if end == "" {
			end = emptySource
		}
		out[i] = end
	}
	return out, nil
}

// List returns one page of the walk; kind, when not "", keeps only dead
// letters of that kind (a page may then hold fewer than limit).
func (d DeadLetters) List(ctx context.Context, after string, limit int, kind webhook.DeadLetterKind) ([]webhook.DeadLetter, string, error) {
	invalid := fmt.Errorf("%w: %q", webhook.ErrInvalidCursor, after)
	pos, endsText, hasEnds := strings.Cut(after, endsSep)
	var ends []string
	if hasEnds {
		ends = strings.Split(endsText, ",")
		if len(ends) != len(d.Unhandled) {
			return nil, "", invalid
		}
	} else {
		var err error
		if ends, err = d.ends(ctx); err != nil {
			return nil, "", err
		}
	}
	suffix := ""
	if len(ends) > 0 {
		suffix = endsSep + strings.Join(ends, ",")
	}
	src, inner := 0, pos
	if rest, ok := strings.CutPrefix(pos, unhandledPrefix); ok {
		n, c, found := strings.Cut(rest, ":")
		i, err := strconv.Atoi(n)
		if !found || err != nil || i < 1 || i > len(d.Unhandled) {
			return nil, "", invalid
		}
		src, inner = i, c
	}
	if kind == webhook.KindUnhandled && src == 0 {
		src, inner = 1, ""
	}
	if src == 0 {
		page, next, err := d.Store.List(ctx, inner, limit)
		if err != nil {
			return nil, "", err
		}
		if kind != "" {
			page = keepKind(page, kind)
		}
		switch {
		case next != "":
			next += suffix
		case len(d.Unhandled) > 0 && kind == "":
			next = unhandledPrefix + "1:" + suffix
		}
		return page, next, nil
	}
	if kind != "" && kind != webhook.KindUnhandled {
		return nil, "", nil
	}
	// Sources empty when the walk began are passed over, once the cursor
	// given for one is known to be one of its own.
	if inner != "" && src <= len(d.Unhandled) && ends[src-1] == emptySource {
		if _, _, err := d.Unhandled[src-1].List(ctx, inner, 1); err != nil {
			return nil, "", err
		}
	}
	for src <= len(d.Unhandled) && ends[src-1] == emptySource {
		src, inner = src+1, ""
	}
	if src > len(d.Unhandled) {
		return nil, "", nil
	}
	cursor := inner
	if end := ends[src-1]; end != unboundedSource && !strings.Contains(inner, "..") {
		cursor = inner + ".." + end
	}
	page, next, err := d.Unhandled[src-1].List(ctx, cursor, limit)
	if err != nil {
		return nil, "", err
	}
	prefix := unhandledPrefix + strconv.Itoa(src) + ":"
	for i := range page {
		page[i].ID = prefix + page[i].ID
	}
	switch {
	case next != "":
		next = prefix + next + suffix
	case src < len(d.Unhandled):
		next = unhandledPrefix + strconv.Itoa(src+1) + ":" + suffix
	}
	return page, next, nil
}

func keepKind(page []webhook.DeadLetter, kind webhook.DeadLetterKind) []webhook.DeadLetter {
	out := page[:0]
	for _, dl := range page {
		if dl.Kind == kind {
			out = append(out, dl)
		}
	}
	return out
}

// DeadLetterView is a dead letter as the API and `dlq list` show it.
type DeadLetterView struct {
	ID             string                 `json:"id"`
	Kind           webhook.DeadLetterKind `json:"kind"`
	SubscriptionID string                 `json:"subscription_id,omitempty"`
	Attempts       int                    `json:"attempts"`
	LastStatus     int                    `json:"last_status,omitempty"`
	LastError      string                 `json:"last_error"`
	At             time.Time              `json:"at"`
	Event          EventView              `json:"event"`
}

// EventView is an event as the API shows it: the payload as JSON when it
// is JSON, as a string when it is other UTF-8 text, and base64 otherwise,
// with PayloadEncoding saying which ("json", "text" or "base64").
type EventView struct {
	ID              string          `json:"id"`
	Name            string          `json:"name"`
	CreatedAt       time.Time       `json:"created_at"`
	CorrelationID   string          `json:"correlation_id,omitempty"`
	Attempts        int             `json:"attempts"`
	DryRun          bool            `json:"dry_run,omitempty"`
	Payload         json.RawMessage `json:"payload"`
	PayloadEncoding string          `json:"payload_encoding"`
}

// ViewOf returns the view of dl.
func ViewOf(dl webhook.DeadLetter) DeadLetterView {
	return DeadLetterView{
		ID: dl.ID, Kind: dl.Kind, SubscriptionID: dl.SubscriptionID, Attempts: dl.Attempts, LastStatus: dl.LastStatus,
		LastError: dl.LastError, At: dl.At, Event: EventViewOf(dl.Event),
	}
}

// EventViewOf returns the view of ev.
func EventViewOf(ev pubsub.Event) EventView {
	v := EventView{
		ID: string(ev.ID), Name: string(ev.Name), CreatedAt: ev.Meta.CreatedAtUTC, CorrelationID: ev.Meta.CorrelationID,
		Attempts: ev.Meta.Attempts, DryRun: ev.Meta.IsDryRun,
	}
	switch {
	case len(ev.Payload) > 0 && json.Valid(ev.Payload) && utf8.Valid(ev.Payload):
		v.Payload, v.PayloadEncoding = json.RawMessage(ev.Payload), "json"
	case utf8.Valid(ev.Payload):
		v.Payload, _ = json.Marshal(string(ev.Payload))
		v.PayloadEncoding = "text"
	default:
		v.Payload, _ = json.Marshal(base64.StdEncoding.EncodeToString(ev.Payload))
		v.PayloadEncoding = "base64"
	}
	return v
}

// Pages of GET /v1/dlq.
const (
	dlqDefaultLimit = 100
	// DeadLetterMaxLimit is the largest page GET /v1/dlq answers.
	DeadLetterMaxLimit = 1000
)

// DeadLetterPage is the answer of GET /v1/dlq.
type DeadLetterPage struct {
	DeadLetters []DeadLetterView `json:"dead_letters"`
	// Next is the after of the following page, "" after the last.
	Next string `json:"next"`
}

var deadKinds = []webhook.DeadLetterKind{webhook.KindExhausted, webhook.KindGone, webhook.KindUndeliverable, webhook.KindOrphaned, webhook.KindUnhandled}

// listDeadLetters answers one page of every dead thing, the bridge's dead
// letters first, oldest first, and the cursor of the next.
func (h *Handler) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := dlqDefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > DeadLetterMaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want an integer from 1 to %d", shown(v), DeadLetterMaxLimit))
			return
		}
		limit = n
	}
	kind := webhook.DeadLetterKind(q.Get("kind"))
	if kind != "" && !knownKind(kind) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("kind %q: want one of %v", shown(string(kind)), deadKinds))
		return
	}
	after := q.Get("after")
	page, next, err := h.deadLetters().List(r.Context(), after, limit, kind)
	if errors.Is(err, webhook.ErrInvalidCursor) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("after %q: not a cursor of these dead letters: pass the next of an earlier page, or a dead letter's id", shown(after)))
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	out := DeadLetterPage{DeadLetters: make([]DeadLetterView, len(page)), Next: next}
	for i, dl := range page {
		out.DeadLetters[i] = ViewOf(dl)
	}
	writeJSON(w, http.StatusOK, out)
}

func knownKind(k webhook.DeadLetterKind) bool {
	for _, known := range deadKinds {
		if k == known {
			return true
		}
	}
	return false
}

func (h *Handler) deadLetters() DeadLetters {
	return DeadLetters{Store: h.cfg.Bridge.DeadLetters(), Unhandled: h.cfg.Unhandled}
}

func (h *Handler) replayDeadLetters(w http.ResponseWriter, r *http.Request) {
	subID, evID := r.URL.Query().Get("subscription"), r.URL.Query().Get("event")
	if subID != "" && !h.subscriptionExists(subID) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no subscription %q: its dead letters would only be dead-lettered again", shown(subID)))
		return
	}
	n, err := h.cfg.Bridge.Replay(r.Context(), ReplayMatch(subID, evID))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

func (h *Handler) subscriptionExists(id string) bool {
	for _, s := range h.cfg.Bridge.Subscriptions() {
		if s.ID == id {
			return true
		}
	}
	return false
}

// ReplayMatch keeps the dead letters of subscription subID and event evID
// ("" for any).
func ReplayMatch(subID, evID string) func(webhook.DeadLetter) bool {
	return func(dl webhook.DeadLetter) bool {
		return (subID == "" || dl.SubscriptionID == subID) && (evID == "" || string(dl.Event.ID) == evID)
	}
}
