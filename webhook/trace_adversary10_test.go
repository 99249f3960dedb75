package webhook_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/switchyard-go/switchyard/webhook"
)

// spanText is everything a span exports as text: name, status,
// attributes, events' attributes, links.
func spanText(s sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s status=%q", s.Name(), s.Status().Description)
	for _, kv := range s.Attributes() {
		fmt.Fprintf(&b, " %s=%q", kv.Key, kv.Value.String())
	}
	for _, e := range s.Events() {
		fmt.Fprintf(&b, " event %s:", e.Name)
		for _, kv := range e.Attributes {
			fmt.Fprintf(&b, " %s=%q", kv.Key, kv.Value.String())
		}
	}
	return b.String()
}

// The password in a subscription URL's user info appears in no span the
// bridge makes (its attempt spans, the HTTP client spans), whether the
// attempt is delivered, answered 500, refused at connect, or redirected.
func TestAdv10SpansKeepTheURLCredentialsOut(t *testing.T) {
	w, tp := newSpanWaiter()
	ok := newSink(t, nil)
	failing := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		http.Error(w, "no", http.StatusInternalServerError)
	})
	redirecting := newSink(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		http.Redirect(w, r, ok.URL+"/moved", http.StatusTemporaryRedirect)
	})
	const pw, token = "s3cr3tPW0rd", "t0k3nInTheQuery"
	withPW := func(raw string) string {
		u, _ := url.Parse(raw)
		u.User = url.UserPassword("alice", pw)
		return u.String() + "/hook?x=1&token=" + token
	}
	h := newHarness(t, webhook.Config{TracerProvider: tp, Retry: webhook.RetryPolicy{Schedule: []time.Duration{10 * time.Millisecond}, MaxAttempts: 2},
		Subscriptions: []webhook.Subscription{
			{ID: "ok", Topic: "order.created", URL: withPW(ok.URL)},
			{ID: "failing", Topic: "order.created", URL: withPW(failing.URL)},
			{ID: "refused", Topic: "order.created", URL: withPW("http://127.0.0.1:1")},
			{ID: "redirect", Topic: "order.created", URL: withPW(redirecting.URL)},
		}})
	h.emit(t, event("pw-1", `{}`))
	spans := w.until(t, "both attempts of the failing subscriptions", func(s []sdktrace.ReadOnlySpan) bool {
		return len(deliverSpans(s)) >= 1+2+2+2
	})
	for _, s := range spans {
		if testing.Verbose() {
			t.Log(spanText(s))
		}
		if txt := spanText(s); strings.Contains(txt, pw) || strings.Contains(txt, token) {
			t.Errorf("span exports the URL's password or query token: %s", txt)
		}
	}
}
