package webhookui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestLoginSetsASessionCookieNotTheToken(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	a := b.get("/ui/subscriptions?cursor=x")
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/login?next=%2Fui%2Fsubscriptions%3Fcursor%3Dx" {
		t.Fatalf("without a session: %d, Location %q", a.status, a.header.Get("Location"))
	}
	a = b.get("/ui/login?next=%2Fui%2Fsubscriptions")
	mustContain(t, "login page", a.body, `type="password"`, `<label for="token">`, `value="/ui/subscriptions"`)

	a = b.post("/ui/login", url.Values{"token": {token}, "next": {"/ui/log"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/log" {
		t.Fatalf("login: %d, Location %q", a.status, a.header.Get("Location"))
	}
	set := a.header.Get("Set-Cookie")
	for _, want := range []string{"webhookui_session=", "Path=/ui/", "HttpOnly", "SameSite=Strict", "Max-Age="} {
		if !strings.Contains(set, want) {
			t.Errorf("Set-Cookie %q lacks %s", set, want)
		}
	}
	if strings.Contains(set, "Secure") {
		t.Errorf("Set-Cookie %q is Secure over plain HTTP", set)
	}
	if strings.Contains(set, token) {
		t.Errorf("the cookie holds the admin token: %q", set)
	}
	if a := b.get("/ui/log"); a.status != http.StatusOK || strings.Contains(a.body, token) {
		t.Fatalf("with the session: %d (or the page shows the token)", a.status)
	}
	old := b.cookie().Value

	// Logout clears the cookie and ends the session on the server too.
	a = b.post("/ui/logout", nil)
	if a.status != http.StatusSeeOther || !strings.Contains(a.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout: %d, Set-Cookie %q", a.status, a.header.Get("Set-Cookie"))
	}
	replay := e.browser(t)
	u, _ := url.Parse(e.ts.URL + "/ui/")
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: "webhookui_session", Value: old, Path: "/ui/"}})
	if a := replay.get("/ui/"); a.status != http.StatusSeeOther {
		t.Errorf("a logged-out session's cookie still works: %d", a.status)
	}
}

func TestLoginNextStaysInTheConsole(t *testing.T) {
	e := newEnv(t)
	for _, next := range []string{"https://evil.example/", "//evil.example/", "/ui//evil.example", "/v1/dlq", "/ui/\\evil", ""} {
		b := e.browser(t)
		a := b.post("/ui/login", url.Values{"token": {token}, "next": {next}})
		if a.header.Get("Location") != "/ui/" {
			t.Errorf("next %q: Location %q, want /ui/", next, a.header.Get("Location"))
		}
	}
}

func TestSecureCookieOverTLS(t *testing.T) {
	e := newEnv(t, envOpt{tls: true})
	b := e.browser(t)
	a := b.post("/ui/login", url.Values{"token": {token}})
	if set := a.header.Get("Set-Cookie"); !strings.Contains(set, "; Secure") {
		t.Errorf("over TLS, Set-Cookie %q is not Secure", set)
	}
}

func TestWrongTokenRefusedAndRateLimited(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	for _, wrong := range []string{"", "admin", token + "x", strings.ToUpper(token), " " + token} {
		a := b.post("/ui/login", url.Values{"token": {wrong}})
		if a.status != http.StatusUnauthorized || a.header.Get("Set-Cookie") != "" || !strings.Contains(a.body, "not the admin token") {
			t.Fatalf("token %q: %d, Set-Cookie %q", wrong, a.status, a.header.Get("Set-Cookie"))
		}
		if strings.Contains(a.body, token) {
			t.Fatalf("the login page shows the admin token")
		}
	}
	// The burst spent, even the right token waits.
	limited := false
	for range 20 {
		a := b.post("/ui/login", url.Values{"token": {"guess"}})
		if a.status == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("20 more failed logins were never refused with 429")
	}
	if a := b.post("/ui/login", url.Values{"token": {token}}); a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Errorf("after too many failures, the right token: %d, want 429 with Retry-After", a.status)
	}
}

func TestForgedCookiesRefused(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.login()
	good := b.cookie().Value
	parts := strings.Split(good, ".")
	other := newEnv(t) // another process: another secret
	ob := other.browser(t)
	ob.login()
	for name, value := range map[string]string{
		"the token itself":      token,
		"garbage":               "x",
		"empty mac":             parts[0] + "." + parts[1] + ".",
		"another id":            "AAAAAAAAAAAAAAAAAAAAAAAA." + parts[1] + "." + parts[2],
		"a later expiry":        parts[0] + ".99999999999." + parts[2],
		"a changed mac":         parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])),
		"another process's":     ob.cookie().Value,
		"four parts":            good + ".x",
		"an expired, re-MAC'd?": parts[0] + ".1." + parts[2],
	} {
		t.Run(name, func(t *testing.T) {
			f := e.browser(t)
			u, _ := url.Parse(e.ts.URL + "/ui/")
			f.c.Jar.SetCookies(u, []*http.Cookie{{Name: "webhookui_session", Value: value, Path: "/ui/"}})
			if a := f.get("/ui/dlq"); a.status != http.StatusSeeOther {
				t.Errorf("GET with cookie %q: %d, want 303 to the login", value, a.status)
			}
			if a := f.post("/ui/dlq/replay", url.Values{"csrf": {b.csrf}, "action": {"subscription"}, "subscription": {"x"}}); a.status != http.StatusUnauthorized {
				t.Errorf("POST with cookie %q: %d, want 401", value, a.status)
			}
		})
	}
}
