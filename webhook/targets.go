package webhook

import (
	"net"
	"net/http"
	"net/netip"
	"time"

	"code.dny.dev/ssrf"
)

// TargetPolicy says which addresses deliveries may connect to. The zero
// value allows every address.
type TargetPolicy struct {
	// DenyPrivate refuses connections, checked after DNS resolution on
	// every dial, to loopback, private (RFC 1918, ULA), link-local (cloud
	// metadata services included), shared (CGNAT), multicast, reserved and
	// every other non-global address, IPv4-mapped and NAT64 forms of them
	// included. Deliveries then also ignore HTTP_PROXY and friends, whose
	// proxy would dial on their behalf.
	// default: false
	DenyPrivate bool
	// Allow lists address ranges that stay reachable when DenyPrivate is
	// set, such as the internal network of the services a bridge serves.
	// default: none
	Allow []netip.Prefix
}

func (p TargetPolicy) guard() *ssrf.Guardian {
	var v4, v6 []netip.Prefix
	for _, a := range p.Allow {
		if a.Addr().Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	return ssrf.New(ssrf.WithAnyPort(), ssrf.WithAllowedV4Prefixes(v4...), ssrf.WithAllowedV6Prefixes(v6...))
}

// Permits reports whether a delivery may connect to ip: nil, or an error
// saying why not.
func (p TargetPolicy) Permits(ip netip.Addr) error {
	if !p.DenyPrivate {
		return nil
	}
	return p.guard().SafeAddr(ip)
}

// newTransport returns the transport deliveries use, keeping connections
// per endpoint and applying the target policy at dial time.
func newTransport(perEndpoint int, policy TargetPolicy) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = perEndpoint
	t.MaxIdleConns = 0
	// Answers are read only for their status and drained: asking for
	// them compressed would only add a header and a decoder.
	t.DisableCompression = true
	if policy.DenyPrivate {
		dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: policy.guard().Safe}
		t.DialContext = dialer.DialContext
		t.Proxy = nil
	}
	return t
}
