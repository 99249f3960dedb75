// Package httpsink is an HTTP receiver for tests: it records every
// request and lets a test wait for them without sleeping.
package httpsink

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Hit is one request a sink received.
type Hit struct {
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
}

// Sink records requests and answers each with what Respond does (200 when
// Respond is nil or writes nothing).
type Sink struct {
	*httptest.Server
	mu      sync.Mutex
	hits    []Hit
	changed chan struct{}
	respond func(n int, r *http.Request, w http.ResponseWriter)
}

// New starts a sink on a loopback port, closed when the test ends.
// respond gets the request's number, counting from 1.
func New(t testing.TB, respond func(n int, r *http.Request, w http.ResponseWriter)) *Sink {
	t.Helper()
	s := &Sink{changed: make(chan struct{}), respond: respond}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.hits = append(s.hits, Hit{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()})
		n := len(s.hits)
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
		if s.respond != nil {
			s.respond(n, r, w)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// Status returns a respond function that always answers code.
func Status(code int) func(int, *http.Request, http.ResponseWriter) {
	return func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(code) }
}

// Hits returns a copy of the requests so far.
func (s *Sink) Hits() []Hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Hit(nil), s.hits...)
}

// WaitUntil blocks until cond holds for the requests so far and returns
// them; after timeout it fails t.
func (s *Sink) WaitUntil(t testing.TB, timeout time.Duration, what string, cond func([]Hit) bool) []Hit {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		if cond(s.hits) {
			h := append([]Hit(nil), s.hits...)
			s.mu.Unlock()
			return h
		}
		ch := s.changed
		n := len(s.hits)
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("sink %s: %s not seen within %s (%d requests)", s.URL, what, timeout, n)
			return nil
		}
	}
}

// WaitFor blocks until the sink has n requests and returns them all.
func (s *Sink) WaitFor(t testing.TB, n int, timeout time.Duration) []Hit {
	t.Helper()
	return s.WaitUntil(t, timeout, "request count", func(h []Hit) bool { return len(h) >= n })
}
