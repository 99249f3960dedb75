package webhook_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

func TestTargetPolicyRefusesNonGlobalAddresses(t *testing.T) {
	s := newSink(t, nil)
	port := s.URL[strings.LastIndex(s.URL, ":")+1:]
	h := newHarness(t, webhook.Config{
		Targets: webhook.TargetPolicy{DenyPrivate: true},
		Subscriptions: []webhook.Subscription{
			{ID: "loopback", Topic: "t", URL: s.URL, MaxAttempts: 1},
			{ID: "by-name", Topic: "t", URL: "http://localhost:" + port, MaxAttempts: 1},
			{ID: "v4-mapped", Topic: "t", URL: "http://[::ffff:127.0.0.1]:" + port, MaxAttempts: 1},
		},
	})
	h.emit(t, pubsub.NewEvent(context.Background(), "t", []byte(`{}`)))
	dls := h.deadLetters(t, 3)
	for _, dl := range dls {
		if !strings.Contains(dl.LastError, "not a permitted destination") && !strings.Contains(dl.LastError, "prohibited") {
			t.Errorf("%s: dead letter says %q, want the target refused", dl.SubscriptionID, dl.LastError)
		}
	}
	if n := len(s.snapshot()); n != 0 {
		t.Errorf("the sink got %d requests through the guard", n)
	}
}

func TestTargetPolicyAllowList(t *testing.T) {
	s := newSink(t, nil)
	h := newHarness(t, webhook.Config{
		Targets:       webhook.TargetPolicy{DenyPrivate: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		Subscriptions: []webhook.Subscription{{ID: "allowed", Topic: "t", URL: s.URL}},
	})
	h.emit(t, pubsub.NewEvent(context.Background(), "t", nil))
	s.waitFor(t, 1)
}

// Addresses off this machine are checked without dialing, so that no
// test ever sends a packet beyond loopback.
func TestTargetPolicyPermits(t *testing.T) {
	deny := webhook.TargetPolicy{DenyPrivate: true, Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}
	for addr, allowed := range map[string]bool{
		"127.0.0.1": false, "10.0.0.1": false, "172.16.5.4": false, "192.168.1.1": false,
		"169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "224.0.0.1": false,
		"::1": false, "fe80::1": false, "fc00::1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false,
		"64:ff9b::a9fe:a9fe": false, // NAT64 form of 169.254.169.254
		"10.1.2.3":           true,  // allow-listed
		"93.184.216.34":      true, "2606:4700::1111": true,
	} {
		err := deny.Permits(netip.MustParseAddr(addr))
		if (err == nil) != allowed {
			t.Errorf("Permits(%s) = %v, want allowed=%v", addr, err, allowed)
		}
	}
	if err := (webhook.TargetPolicy{}).Permits(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("the zero policy refused loopback: %v", err)
	}
}
