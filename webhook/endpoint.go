package webhook

import (
	"net/url"
	"sync"
	"time"
)

// CircuitConfig says when an endpoint's circuit opens. The zero value is
// the default.
type CircuitConfig struct {
	// Failures is how many failed deliveries in a row open the circuit.
	// default: 5
	Failures int
	// Cooldown is how long an open circuit holds deliveries back before
	// one is let through to probe the endpoint.
	// default: 30s
	Cooldown time.Duration
}

func (c *CircuitConfig) setDefaults() {
	if c.Failures == 0 {
		c.Failures = 5
	}
	if c.Cooldown == 0 {
		c.Cooldown = 30 * time.Second
	}
}

// endpoint is one receiving origin (scheme, host and port): its share of
// the bridge's concurrency and its circuit.
type endpoint struct {
	slots chan struct{} // a delivery in flight holds one

	mu        sync.Mutex
	failures  int
	openUntil time.Time // zero: closed
	probing   bool      // half-open: one delivery is testing the endpoint
}

// endpoints hands out the endpoint of each URL.
type endpoints struct {
	perEndpoint int
	circuit     CircuitConfig

	mu sync.Mutex
	m  map[string]*endpoint
}

func endpointKey(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}

func (es *endpoints) get(k string) *endpoint {
	es.mu.Lock()
	defer es.mu.Unlock()
	e, ok := es.m[k]
	if !ok {
		e = &endpoint{slots: make(chan struct{}, es.perEndpoint)}
		es.m[k] = e
	}
	return e
}

// admit reports whether a delivery may go now. When the circuit is open
// it returns false and when to try again; a half-open circuit admits one
// probe at a time.
func (e *endpoint) admit(now time.Time) (bool, time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.openUntil.IsZero() {
		return true, time.Time{}
	}
	if now.Before(e.openUntil) || e.probing {
		return false, maxTime(e.openUntil, now.Add(time.Second))
	}
	e.probing = true
	return true, time.Time{}
}

// record counts a delivery's outcome and opens or closes the circuit.
func (e *endpoint) record(ok bool, now time.Time, c CircuitConfig) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.probing = false
	if ok {
		e.failures, e.openUntil = 0, time.Time{}
		return
	}
	e.failures++
	if e.failures >= c.Failures {
		e.openUntil = now.Add(c.Cooldown)
	}
}

// release gives up a probe that admit allowed but that was not sent.
func (e *endpoint) release() {
	e.mu.Lock()
	e.probing = false
	e.mu.Unlock()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
