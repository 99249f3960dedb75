package webhookui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// apiTimeout bounds one internal call of the API.
const apiTimeout = 30 * time.Second

// apiError is an error answer of the API: its status and one-line reason.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Msg) }

// buffer is the ResponseWriter of an internal API call: a few fields,
// written by one goroutine, read after ServeHTTP returns. It is written
// here rather than taken from net/http/httptest, which is meant for tests
// (its recorder panics on some invalid statuses and keeps a snapshot of
// the header that is of no use here).
type buffer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *buffer) Header() http.Header { return b.header }

func (b *buffer) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *buffer) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// call makes an internal request of the API with the admin token: in
// (when not nil) is sent as JSON, and a 2xx answer's JSON is decoded into
// out (when not nil). An error answer is an *apiError.
func (c *Console) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	target := path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return err
	}
	req.RemoteAddr = "console"
	req.Header.Set("Authorization", "Bearer "+c.cfg.AdminToken)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rw := &buffer{header: http.Header{}}
	c.cfg.API.ServeHTTP(rw, req)
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	if rw.status < 200 || rw.status > 299 {
		var p webhookhttp.Problem
		if json.Unmarshal(rw.body.Bytes(), &p) != nil || p.Error == "" {
			p.Error = http.StatusText(rw.status)
		}
		return &apiError{Status: rw.status, Msg: p.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rw.body.Bytes(), out); err != nil {
		return fmt.Errorf("decoding the answer of %s %s: %w", method, path, err)
	}
	return nil
}

// raw makes an internal GET of path and returns the body of a 200.
func (c *Console) raw(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, http.NoBody)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.AdminToken)
	rw := &buffer{header: http.Header{}}
	c.cfg.API.ServeHTTP(rw, req)
	if rw.status != 0 && rw.status != http.StatusOK {
		return nil, &apiError{Status: rw.status, Msg: http.StatusText(rw.status)}
	}
	return rw.body.Bytes(), nil
}
