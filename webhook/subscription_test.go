package webhook_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/webhook"
)

func secretOf(n int) string {
	return "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n)))
}

// Subscription.Validate (and so Compile, SetSubscriptions, the admin API
// and config load) refuses secrets outside Standard Webhooks' 24 to 64
// bytes, header names that are not HTTP tokens or that the bridge or HTTP
// own, and header values that are not plain ASCII text, naming the
// subscription and the secret's position or the header.
func TestSubscriptionSecretsAndHeadersAreChecked(t *testing.T) {
	base := func() webhook.Subscription {
		return webhook.Subscription{ID: "sub-1", Topic: "t", URL: "https://example.com/hook"}
	}
	for _, n := range []int{24, 32, 64} {
		s := base()
		s.Secrets = webhook.Secrets{secretOf(n), strings.TrimPrefix(secretOf(n), "whsec_")}
		if err := webhook.Compile(s); err != nil {
			t.Errorf("a secret of %d bytes: %v", n, err)
		}
	}
	for _, n := range []int{0, 16, 23, 65, 100} {
		s := base()
		bad := secretOf(n)
		s.Secrets = webhook.Secrets{secretOf(32), bad}
		err := webhook.Compile(s)
		if err == nil || !strings.Contains(err.Error(), `subscription "sub-1": secret 2:`) {
			t.Errorf("a second secret of %d bytes: %v, want an error naming the subscription and secret 2", n, err)
			continue
		}
		if strings.Contains(err.Error(), strings.TrimPrefix(bad, "whsec_")) && n > 0 {
			t.Errorf("the error shows the secret: %v", err)
		}
	}

	reserved := []string{
		"Webhook-Id", "webhook-signature", "WEBHOOK-ANYTHING", "Ce-Id", "ce-type", "CE-Custom", "Content-Type", "content-length",
		"Content-Encoding", "Transfer-Encoding", "User-Agent", "host", "Connection", "TE", "Trailer", "Upgrade", "Keep-Alive",
		"Proxy-Authorization", "proxy-anything", "X-Correlation-ID", "x-correlation-id",
	}
	notTokens := []string{"", "X Bad", "X:Bad", "X-(a)", "X-Ünï", "X-Bad\n", "X\"q", "X/Y", "X@Y", "X{Y}"}
	badValues := []string{"a\nb", "a\rb", "nul\x00", "del\x7f", "café", "\x1b[31m"}
	for _, name := range append(reserved, notTokens...) {
		s := base()
		s.Headers = map[string]string{"Authorization": "Bearer x", name: "v"}
		err := webhook.Compile(s)
		if err == nil || !strings.Contains(err.Error(), `subscription "sub-1": header `) {
			t.Errorf("header name %q: %v, want an error naming the subscription and the header", name, err)
		}
	}
	for _, v := range badValues {
		s := base()
		s.Headers = map[string]string{"X-Api-Key": v}
		err := webhook.Compile(s)
		if err == nil || !strings.Contains(err.Error(), `subscription "sub-1": header "X-Api-Key"`) {
			t.Errorf("header value %q: %v, want an error naming the subscription and the header", v, err)
		}
	}
	s := base()
	s.Headers = map[string]string{"Authorization": "Bearer abc", "X-Api-Key": "", "x_custom!#$%&'*+-.^`|~": "a\tb ~!", "X-Webhook": "v", "Cookie": "a=b"}
	if err := webhook.Compile(s); err != nil {
		t.Errorf("valid headers refused: %v", err)
	}

	for _, id := range []string{"bad\nid", "tab\tid", "bad\xffid"} {
		s := base()
		s.ID = id
		if err := webhook.Compile(s); err == nil {
			t.Errorf("subscription id %q accepted: it travels in a header", id)
		}
	}
}
