package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchyard-go/switchyard/pubsub"
)

// The headers of a delivery besides Standard Webhooks' and CloudEvents'.
const (
	// HeaderAttempt is the delivery attempt, 1 on the first.
	HeaderAttempt = "Webhook-Attempt"
	// HeaderCorrelationID is the event's correlation ID, percent-encoded
	// as the ce-* headers are (see the package doc).
	HeaderCorrelationID = "X-Correlation-Id"
	// HeaderSubscription is the subscription's ID.
	HeaderSubscription = "Webhook-Subscription"
)

// result is what one delivery attempt came to.
type result struct {
	status     int
	err        error
	retryAfter time.Duration
	took       time.Duration
	// unsent: the request could not be made (err says why); no byte of
	// it reached the endpoint, and no retry would do better.
	unsent bool
	// timedOut: no answer within the timeout.
	timedOut bool
	// at is when the request was sent; zero when nothing was.
	at time.Time
	// For the delivery log, when there is one: the request's headers, the
	// response's, and the start of its body.
	reqHeader, respHeader http.Header
	body                  string
	truncated             bool
}

func (r result) ok() bool { return r.err == nil && r.status >= 200 && r.status < 300 }

func (r result) describe() string {
	switch {
	case r.err != nil:
		return r.err.Error()
	case r.status != 0:
		return fmt.Sprintf("HTTP %d %s", r.status, http.StatusText(r.status))
	}
	return ""
}

// eventHeaders are the header values every delivery of one event
// carries, whatever its subscription: worked out once per event.
type eventHeaders struct {
	contentType, msgID, ceID, ceType, ceTime, correlation string
	err                                                   error // a value HTTP would refuse
}

// headersOf works out ev's eventHeaders.
func (b *Bridge) headersOf(ev pubsub.Event) *eventHeaders {
	h := &eventHeaders{
		contentType: contentType(ev.Payload), msgID: MessageID(ev.ID),
		ceID: percentEncode(string(ev.ID)), ceType: percentEncode(string(ev.Name)),
	}
	if !ev.Meta.CreatedAtUTC.IsZero() {
		h.ceTime = percentEncode(ev.Meta.CreatedAtUTC.UTC().Format(time.RFC3339Nano))
	}
	if ev.Meta.CorrelationID != "" {
		h.correlation = percentEncode(ev.Meta.CorrelationID)
	}
	for _, v := range []struct{ name, value string }{
		{"Webhook-Id", h.msgID}, {"Ce-Id", h.ceID}, {"Ce-Type", h.ceType}, {"Ce-Time", h.ceTime}, {HeaderCorrelationID, h.correlation},
	} {
		if err := checkHeaderValue(v.value, false); err != nil {
			h.err = fmt.Errorf("header %s: %v", v.name, err)
			break
		}
	}
	return h
}

// send POSTs ev's payload to the subscription's URL, signed, and reads
// the status; eh holds ev's eventHeaders.
func (b *Bridge) send(ctx context.Context, s *route, ev pubsub.Event, eh *eventHeaders, attempt int) result {
	start := time.Now()
	if eh.err != nil {
		return result{err: eh.err, unsent: true}
	}
	timeout := b.cfg.Timeout
	if s.sub.Timeout > 0 {
		timeout = time.Duration(s.sub.Timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.sub.URL, bytes.NewReader(ev.Payload))
	if err != nil {
		return result{err: fmt.Errorf("building the request: %w", withoutURL(err)), unsent: true}
	}
	// Header values share one allocation; the names are canonical already.
	req.Header = make(http.Header, 13+len(s.sub.Headers))
	vals := make([]string, 0, 13)
	set := func(k, v string) {
		vals = append(vals, v)
		req.Header[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	for k, v := range s.sub.Headers {
		req.Header.Set(k, v)
	}
	if len(s.sub.Headers) > 0 {
		// Checked by Subscription.Validate, and here again, as the event's
		// values are by headersOf: a delivery net/http would refuse is
		// known before any byte of it leaves.
		if err := checkRequestHeaders(req.Header); err != nil {
			return result{err: err, unsent: true}
		}
	}
	ts := start.Unix()
	set("Content-Type", eh.contentType)
	set("User-Agent", "switchyard-webhook-bridge")
	set("Webhook-Id", eh.msgID)
	set("Webhook-Timestamp", strconv.FormatInt(ts, 10))
	if len(s.signers) > 0 {
		set("Webhook-Signature", s.sign(eh.msgID, ts, ev.Payload))
	}
	set("Ce-Specversion", "1.0")
	set("Ce-Id", eh.ceID)
	set("Ce-Type", eh.ceType)
	set("Ce-Source", b.source)
	if eh.ceTime != "" {
		set("Ce-Time", eh.ceTime)
	}
	if eh.correlation != "" {
		set(HeaderCorrelationID, eh.correlation)
	}
	set(HeaderAttempt, strconv.Itoa(attempt))
	set(HeaderSubscription, s.sub.ID)

	r := result{at: start}
	if b.cfg.AttemptLog != nil {
		r.reqHeader = loggedHeaders(req.Header, s.sub.Headers)
	}
	resp, err := b.roundTripper(ctx, req).RoundTrip(req)
	if err != nil {
		r.err, r.timedOut, r.took = cleanError(ctx, err), ctx.Err() != nil, time.Since(start)
		return r
	}
	if b.cfg.AttemptLog != nil {
		r.respHeader = resp.Header
		r.body, r.truncated = readStart(resp.Body, b.cfg.ResponseBodyBytes)
	}
	if resp.Body != http.NoBody {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	}
	_ = resp.Body.Close()
	r.status, r.took = resp.StatusCode, time.Since(start)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return r
}

// readStart reads up to n bytes of body, and whether more followed.
func readStart(body io.Reader, n int) (string, bool) {
	if n <= 0 {
		return "", false
	}
	buf, _ := io.ReadAll(io.LimitReader(body, int64(n)+1))
	if len(buf) > n {
		return string(buf[:n]), true
	}
	return string(buf), false
}

// contentType is JSON for JSON payloads, bytes otherwise. Most payloads
// are told apart by their first byte, before a full scan.
func contentType(payload []byte) string {
	trimmed := bytes.TrimLeft(payload, " \t\r\n")
	if len(trimmed) == 0 || !strings.ContainsRune(`{["-0123456789tfn`, rune(trimmed[0])) {
		return "application/octet-stream"
	}
	if json.Valid(trimmed) && utf8.Valid(trimmed) { // JSON is UTF-8 (RFC 8259)
		return "application/json"
	}
	return "application/octet-stream"
}

// cleanError keeps a transport error's cause and drops the URL, which
// may carry credentials.
func cleanError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errors.New("timed out")
	}
	return withoutURL(err)
}

// withoutURL drops the URL from a *url.Error.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
