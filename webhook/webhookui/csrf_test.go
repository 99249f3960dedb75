package webhookui_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// disabled reports whether the API shows subscription id disabled.
func (e *env) disabled(t *testing.T, id string) bool {
	t.Helper()
	b := e.browser(t)
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/v1/subscriptions/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	var v webhookhttp.SubscriptionView
	a := b.do(req)
	if a.status != http.StatusOK {
		t.Fatalf("GET /v1/subscriptions/%s: %d %s", id, a.status, a.body)
	}
	if err := jsonDecode(a.body, &v); err != nil {
		t.Fatal(err)
	}
	return v.Disabled
}

func TestCSRFRefused(t *testing.T) {
	e := newEnv(t)
	e.subscribe(t, "s1", "")
	b := e.browser(t)
	b.login()
	other := e.browser(t)
	other.login() // another session: its token is not b's
	for _, c := range []struct {
		name    string
		form    url.Values
		headers []string
	}{
		{"no token", url.Values{"csrf": {""}}, nil},
		{"a wrong token", url.Values{"csrf": {"AAAA"}}, nil},
		{"another session's token", url.Values{"csrf": {other.csrf}}, nil},
		{"cross-site fetch", nil, []string{"Sec-Fetch-Site", "cross-site"}},
		{"another origin", nil, []string{"Origin", "https://evil.example"}},
		{"same-site, not same-origin", nil, []string{"Sec-Fetch-Site", "same-site"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := b.post("/ui/subscriptions/s1/disable", c.form, c.headers...)
			if a.status != http.StatusForbidden {
				t.Errorf("= %d, want 403", a.status)
			}
			if a.header.Get("Content-Security-Policy") == "" {
				t.Error("the refusal lacks the CSP")
			}
			if e.disabled(t, "s1") {
				t.Fatal("the subscription was disabled all the same")
			}
		})
	}
	// The same request, same-origin with the token, works.
	a := b.post("/ui/subscriptions/s1/disable", nil, "Sec-Fetch-Site", "same-origin", "Origin", e.ts.URL)
	if a.status != http.StatusSeeOther || !e.disabled(t, "s1") {
		t.Fatalf("with the token: %d %s", a.status, a.body)
	}
	// Logging in cross-site is refused too (login CSRF).
	if a := e.browser(t).post("/ui/login", url.Values{"token": {token}}, "Sec-Fetch-Site", "cross-site"); a.status != http.StatusForbidden {
		t.Errorf("cross-site login: %d", a.status)
	}
	_ = context.Background()
}
