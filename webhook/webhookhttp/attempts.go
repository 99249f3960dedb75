package webhookhttp

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// AttemptView is a delivery attempt as the API shows it.
type AttemptView struct {
	ID                    string          `json:"id"`
	EventID               string          `json:"event_id"`
	EventName             string          `json:"event_name"`
	SubscriptionID        string          `json:"subscription_id"`
	Attempt               int             `json:"attempt"`
	At                    time.Time       `json:"at"`
	DurationMS            float64         `json:"duration_ms"`
	Outcome               webhook.Outcome `json:"outcome"`
	URL                   string          `json:"url,omitempty"`
	RequestHeaders        http.Header     `json:"request_headers,omitempty"`
	Status                int             `json:"status,omitempty"`
	ResponseHeaders       http.Header     `json:"response_headers,omitempty"`
	ResponseBody          string          `json:"response_body,omitempty"`
	ResponseBodyTruncated bool            `json:"response_body_truncated,omitempty"`
	Error                 string          `json:"error,omitempty"`
}

// AttemptViewOf returns the view of a.
func AttemptViewOf(a webhook.Attempt) AttemptView {
	return AttemptView{
		ID: a.ID, EventID: string(a.EventID), EventName: string(a.EventName), SubscriptionID: a.SubscriptionID,
		Attempt: a.Attempt, At: a.At.UTC(), DurationMS: float64(a.Duration.Microseconds()) / 1000, Outcome: a.Outcome,
		URL: a.URL, RequestHeaders: a.RequestHeaders, Status: a.Status, ResponseHeaders: a.ResponseHeaders,
		ResponseBody: a.ResponseBody, ResponseBodyTruncated: a.ResponseBodyTruncated, Error: a.Error,
	}
}

// Record returns the attempt v shows.
func (v AttemptView) Record() webhook.Attempt {
	return webhook.Attempt{
		ID: v.ID, EventID: pubsub.ID(v.EventID), EventName: pubsub.Name(v.EventName), SubscriptionID: v.SubscriptionID,
		Attempt: v.Attempt, At: v.At, Duration: time.Duration(v.DurationMS * float64(time.Millisecond)), Outcome: v.Outcome,
		URL: v.URL, RequestHeaders: v.RequestHeaders, Status: v.Status, ResponseHeaders: v.ResponseHeaders,
		ResponseBody: v.ResponseBody, ResponseBodyTruncated: v.ResponseBodyTruncated, Error: v.Error,
	}
}

// AttemptPage is the answer of GET /v1/attempts.
type AttemptPage struct {
	Attempts []AttemptView `json:"attempts"`
	// Next is the cursor of the following page; absent on the last. A
	// page may hold fewer attempts than asked, even none, while Next is
	// present.
	Next string `json:"next_cursor,omitempty"`
}

// EventAttempts is the answer of GET /v1/events/{id}.
type EventAttempts struct {
	// Event is absent when the log holds the event's attempts but no
	// longer the event.
	Event *EventView `json:"event,omitempty"`
	// Attempts are every attempt of the event the log holds, for every
	// subscription, newest first, up to MaxEventAttempts.
	Attempts []AttemptView `json:"attempts"`
	// More: the event has more attempts than shown; page through them
	// with GET /v1/attempts?event_id=….
	More bool `json:"more,omitempty"`
}

// MaxEventAttempts is how many attempts GET /v1/events/{id} shows at most.
const MaxEventAttempts = webhook.MaxAttemptPage

// ParseAttemptQuery reads the query parameters of GET /v1/attempts: any
// of subscription_id, event_id, outcome, status, since and until (RFC 3339
// times, or durations such as 1h meaning that long before now), limit,
// cursor. Its error names the parameter at fault.
func ParseAttemptQuery(v url.Values, now time.Time) (webhook.AttemptQuery, error) {
	for k := range v {
		switch k {
		case "subscription_id", "event_id", "outcome", "status", "since", "until", "limit", "cursor":
		default:
			return webhook.AttemptQuery{}, fmt.Errorf("unknown parameter %q (want subscription_id, event_id, outcome, status, since, until, limit or cursor)", shown(k))
		}
	}
	q := webhook.AttemptQuery{
		SubscriptionID: v.Get("subscription_id"), EventID: pubsub.ID(v.Get("event_id")),
		Outcome: webhook.Outcome(v.Get("outcome")), Cursor: v.Get("cursor"),
	}
	if s := v.Get("status"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 || n > 599 {
			return q, fmt.Errorf("status %q: want an HTTP status from 100 to 599", shown(s))
		}
		q.Status = n
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > webhook.MaxAttemptPage {
			return q, fmt.Errorf("limit %q: want an integer from 1 to %d", shown(s), webhook.MaxAttemptPage)
		}
		q.Limit = n
	}
	var err error
	if q.Since, err = pointInTime(v.Get("since"), now); err != nil {
		return q, fmt.Errorf("since: %w", err)
	}
	if q.Until, err = pointInTime(v.Get("until"), now); err != nil {
		return q, fmt.Errorf("until: %w", err)
	}
	if err := q.Validate(); err != nil {
		return q, errors.New(strings.TrimPrefix(err.Error(), "webhook: "))
	}
	return q, nil
}

// pointInTime reads an RFC 3339 time, or a duration meaning that long
// before now; "" is the zero time.
func pointInTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a duration ago (90m, 24h)", shown(s))
	}
	return now.Add(-d), nil
}

// attemptLog returns the bridge's delivery log, or answers 404 when it
// has none.
func (h *Handler) attemptLog(w http.ResponseWriter) webhook.AttemptLog {
	l := h.cfg.Bridge.AttemptLog()
	if l == nil {
		writeError(w, http.StatusNotFound, "the delivery log is off: the bridge records no attempts")
	}
	return l
}

func (h *Handler) listAttempts(w http.ResponseWriter, r *http.Request) {
	l := h.attemptLog(w)
	if l == nil {
		return
	}
	q, err := ParseAttemptQuery(r.URL.Query(), time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := l.Query(r.Context(), q)
	if errors.Is(err, webhook.ErrInvalidAttemptCursor) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("cursor %q: not a cursor of this log: pass the next_cursor of an earlier page", shown(q.Cursor)))
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "reading the delivery log: "+err.Error())
		return
	}
	out := AttemptPage{Attempts: make([]AttemptView, len(page.Attempts)), Next: page.Next}
	for i, a := range page.Attempts {
		out.Attempts[i] = AttemptViewOf(a)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getEvent(w http.ResponseWriter, r *http.Request) {
	l := h.attemptLog(w)
	if l == nil {
		return
	}
	id := pubsub.ID(r.PathValue("id"))
	out := EventAttempts{Attempts: []AttemptView{}}
	ev, err := l.Event(r.Context(), id)
	switch {
	case err == nil:
		v := EventViewOf(ev)
		out.Event = &v
	case !errors.Is(err, webhook.ErrNotFound):
		writeError(w, http.StatusServiceUnavailable, "reading the delivery log: "+err.Error())
		return
	}
	q := webhook.AttemptQuery{EventID: id, Limit: MaxEventAttempts}
	for !out.More {
		page, err := l.Query(r.Context(), q)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "reading the delivery log: "+err.Error())
			return
		}
		for _, a := range page.Attempts {
			if len(out.Attempts) == MaxEventAttempts {
				out.More = true
				break
			}
			out.Attempts = append(out.Attempts, AttemptViewOf(a))
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	if out.Event == nil && len(out.Attempts) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("event %q: the delivery log holds neither it nor an attempt of it (never matched, or past retention)", shown(string(id))))
		return
	}
	writeJSON(w, http.StatusOK, out)
}
