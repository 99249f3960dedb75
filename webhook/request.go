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
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// The headers of a delivery besides Standard Webhooks' and CloudEvents'.
const (
	// HeaderAttempt is the delivery attempt, 1 on the first.
	HeaderAttempt = "Webhook-Attempt"
	// HeaderCorrelationID is the event's correlation ID.
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
		return result{err: fmt.Errorf("building the request: %w", err)}
	}
	h := req.Header
	for k, v := range s.sub.Headers {
		h.Set(k, v)
	}
	ts := start.Unix()
	h.Set("Content-Type", contentType(ev.Payload))
	h.Set("User-Agent", "switchyard-webhook-bridge")
	h.Set("Webhook-Id", string(ev.ID))
	h.Set("Webhook-Timestamp", strconv.FormatInt(ts, 10))
	if len(s.keys) > 0 {
		h.Set("Webhook-Signature", signKeys(s.keys, string(ev.ID), ts, ev.Payload))
	}
	h.Set("Ce-Specversion", "1.0")
	h.Set("Ce-Id", string(ev.ID))
	h.Set("Ce-Type", string(ev.Name))
	h.Set("Ce-Source", b.cfg.Source)
	if !ev.Meta.CreatedAtUTC.IsZero() {
		h.Set("Ce-Time", ev.Meta.CreatedAtUTC.UTC().Format(time.RFC3339Nano))
	}
	if ev.Meta.CorrelationID != "" {
		h.Set(HeaderCorrelationID, ev.Meta.CorrelationID)
	}
	h.Set(HeaderAttempt, strconv.Itoa(attempt))
	h.Set(HeaderSubscription, s.sub.ID)

	resp, err := b.client.Do(req)
	if err != nil {
		return result{err: cleanURLError(err), took: time.Since(start)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	_ = resp.Body.Close()
	r := result{status: resp.StatusCode, took: time.Since(start)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return r
}

// contentType is JSON for JSON payloads, bytes otherwise.
func contentType(payload []byte) string {
	if len(payload) > 0 && json.Valid(payload) {
		return "application/json"
	}
	return "application/octet-stream"
}

// cleanURLError keeps a transport error's cause and drops the URL, which
// may carry credentials.
func cleanURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if errors.Is(ue.Err, context.DeadlineExceeded) {
			return errors.New("timed out")
		}
		return ue.Err
	}
	return err
}

// newHTTPClient returns the client deliveries use: redirects are not
// followed (a 3xx is a failed delivery), and connections are kept per
// endpoint.
func newHTTPClient(perEndpoint int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = perEndpoint
	t.MaxIdleConns = 0
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
