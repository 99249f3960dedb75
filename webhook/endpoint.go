package webhook

import (
	"net"
	"net/netip"
	"net/url"
	"strings"
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
	// Its queue, guarded by the dispatcher's mu.
	queue    []*job    // in order, withdrawn ones included until popped
	queuedN  int       // jobs in queue not withdrawn
	active   int       // deliveries in flight
	ready    bool      // in the dispatcher's turn
	pace     pace      // its deliveries finished lately
	progress time.Time // when a delivery to it last finished, or the first of those in flight started
	busyAt   int       // its place in the dispatcher's busy, while it has deliveries in flight

	mu        sync.Mutex
	failures  int
	openUntil time.Time // zero: closed
	probing   bool      // half-open: one delivery is testing the endpoint
	throttle  throttle  // its 429s' effect on its rate limits
}

// endpoints hands out the endpoint of each URL.
type endpoints struct {
	mu sync.Mutex
	m  map[string]*endpoint
}

// endpointKey names the endpoint of a URL as scheme://host:port (the
// default port when the URL has none), never with userinfo, path or
// query, so that it may be logged.
func endpointKey(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "invalid-url"
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".") // "example.com." is example.com
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().WithZone("").String() // one spelling per address: ::ffff:127.0.0.1 is 127.0.0.1
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// EndpointKey names the endpoint of a URL as the bridge does, for its
// slots, circuits and [Config.EndpointLimits]: scheme://host:port, the
// scheme's default port when the URL has none, lowercase, a host name's
// final dot dropped, an IP address in one spelling (IPv4-mapped IPv6 as
// IPv4, no zone), without userinfo, path or query; "invalid-url" for a URL
// without a host.
func EndpointKey(rawURL string) string { return endpointKey(rawURL) }

func (es *endpoints) get(k string) *endpoint {
	es.mu.Lock()
	defer es.mu.Unlock()
	e, ok := es.m[k]
	if !ok {
		e = &endpoint{}
		es.m[k] = e
	}
	return e
}

// admit reports whether a delivery may go now, and whether it is the
// probe of a half-open circuit. When the circuit is open it returns false
// and when to try again; a half-open circuit admits one probe at a time.
func (e *endpoint) admit(now time.Time) (ok, probe bool, retryAt time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.openUntil.IsZero() {
		return true, false, time.Time{}
	}
	if now.Before(e.openUntil) || e.probing {
		return false, false, maxTime(e.openUntil, now.Add(time.Second))
	}
	e.probing = true
	return true, true, time.Time{}
}

// circuitChange is what one outcome did to a circuit.
type circuitChange struct {
	opened   bool      // closed (or probing) to open
	closed   bool      // open to closed
	failures int       // failures in a row, this one included
	until    time.Time // when the open circuit lets a probe through; zero when closed
}

// record counts a delivery's outcome and opens or closes the circuit. A
// failure opens a closed circuit once failures in a row reach c.Failures,
// and a failed probe opens it again; a success closes it.
func (e *endpoint) record(ok, probe bool, now time.Time, c CircuitConfig) circuitChange {
	e.mu.Lock()
	defer e.mu.Unlock()
	if probe {
		e.probing = false
	}
	wasOpen := !e.openUntil.IsZero()
	if ok {
		e.failures = 0
		if wasOpen {
			e.openUntil = time.Time{}
			return circuitChange{closed: true}
		}
		return circuitChange{}
	}
	e.failures++
	ch := circuitChange{failures: e.failures}
	if wasOpen && probe || !wasOpen && e.failures >= c.Failures {
		e.openUntil = now.Add(c.Cooldown)
		ch.opened = true
	}
	ch.until = e.openUntil
	return ch
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
