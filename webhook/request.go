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

// send POSTs ev's payload to the subscription's URL, signed, and reads
// the status.
func (b *Bridge) send(ctx context.Context, s *route, ev pubsub.Event, attempt int) result {
	start := time.Now()
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
	vals := make([]string, 0, 12)
	set := func(k, v string) {
		vals = append(vals, v)
		req.Header[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	for k, v := range s.sub.Headers {
		req.Header.Set(k, v)
	}
	ts := start.Unix()
	msgID := MessageID(ev.ID)
	set("Content-Type", contentType(ev.Payload))
	set("User-Agent", "switchyard-webhook-bridge")
	set("Webhook-Id", msgID)
	set("Webhook-Timestamp", strconv.FormatInt(ts, 10))
	if len(s.keys) > 0 {
		set("Webhook-Signature", s.sign(msgID, ts, ev.Payload))
	}
	set("Ce-Specversion", "1.0")
	set("Ce-Id", percentEncode(string(ev.ID)))
	set("Ce-Type", percentEncode(string(ev.Name)))
	set("Ce-Source", b.source)
	if !ev.Meta.CreatedAtUTC.IsZero() {
		set("Ce-Time", percentEncode(ev.Meta.CreatedAtUTC.UTC().Format(time.RFC3339Nano)))
	}
	if ev.Meta.CorrelationID != "" {
		set(HeaderCorrelationID, percentEncode(ev.Meta.CorrelationID))
	}
	set(HeaderAttempt, strconv.Itoa(attempt))
	set(HeaderSubscription, s.sub.ID)
	if err := checkRequestHeaders(req.Header); err != nil {
		return result{err: err, unsent: true}
	}

	resp, err := b.transport.RoundTrip(req)
	if err != nil {
		return result{err: cleanError(ctx, err), took: time.Since(start)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	_ = resp.Body.Close()
	r := result{status: resp.StatusCode, took: time.Since(start)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return r
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
