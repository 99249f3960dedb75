package webhookui_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func jsonDecode(s string, v any) error { return json.Unmarshal([]byte(s), v) }

const wantCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func checkHeaders(t *testing.T, what string, a answer) {
	t.Helper()
	if got := a.header.Get("Content-Security-Policy"); got != wantCSP {
		t.Errorf("%s: Content-Security-Policy %q", what, got)
	}
	if a.header.Get("X-Content-Type-Options") != "nosniff" || a.header.Get("Referrer-Policy") != "same-origin" {
		t.Errorf("%s: nosniff %q, Referrer-Policy %q", what, a.header.Get("X-Content-Type-Options"), a.header.Get("Referrer-Policy"))
	}
}

var (
	inlineStyle  = regexp.MustCompile(`(?i)<[^>]*\sstyle\s*=`)
	scriptTag    = regexp.MustCompile(`(?i)<script[^>]*>`)
	inlineEvents = regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`)
)

// checkNoInline fails on an inline style, script block or event handler.
func checkNoInline(t *testing.T, what, body string) {
	t.Helper()
	if inlineStyle.MatchString(body) || inlineEvents.MatchString(body) || strings.Contains(body, "<style") {
		t.Errorf("%s has inline style or an event handler attribute", what)
	}
	for _, tag := range scriptTag.FindAllString(body, -1) {
		if tag != `<script src="/ui/static/console.js" defer>` {
			t.Errorf("%s has a script element other than the console's file: %s", what, tag)
		}
	}
}

func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	e := newEnv(t)
	e.subscribe(t, "s1", "")
	e.record(t, "s1", 4, "x")
	e.bury(t, "s1", 2)
	anon := e.browser(t)
	for _, p := range []string{"/ui/", "/ui/login", "/ui/log", "/ui/nothing", "/ui/static/console.css", "/ui/static/console.js", "/ui/static/"} {
		checkHeaders(t, "anonymous GET "+p, anon.get(p))
	}
	checkHeaders(t, "failed login", anon.post("/ui/login", url.Values{"token": {"no"}}))
	b := e.browser(t)
	b.login()
	for _, p := range []string{"/ui/", "/ui/subscriptions", "/ui/subscriptions/s1/edit", "/ui/log", "/ui/log?status=abc", "/ui/events/s1-ev1",
		"/ui/events/none", "/ui/dlq", "/ui/recover", "/ui/nothing", "/ui/subscriptions/none/edit"} {
		a := b.get(p)
		checkHeaders(t, "GET "+p, a)
		checkNoInline(t, "GET "+p, a.body)
		if strings.Contains(a.body, token) || strings.Contains(a.body, secret) {
			t.Errorf("GET %s shows a secret", p)
		}
	}
	checkHeaders(t, "POST recover", b.post("/ui/recover", url.Values{"subscription": {"s1"}, "since": {"1h"}}))
	checkHeaders(t, "POST check", b.post("/ui/subscriptions/s1/check", url.Values{"topic": {"t"}, "url": {"http://x/"}}))

	if a := anon.get("/ui/static/console.js"); !strings.HasPrefix(a.header.Get("Content-Type"), "text/javascript") {
		t.Errorf("console.js served as %q", a.header.Get("Content-Type"))
	}
	if a := anon.get("/ui/static/console.css"); !strings.HasPrefix(a.header.Get("Content-Type"), "text/css") {
		t.Errorf("console.css served as %q", a.header.Get("Content-Type"))
	}
	if a := anon.get("/ui/static/"); a.status != http.StatusNotFound {
		t.Errorf("/ui/static/ lists the directory: %d", a.status)
	}
}

func TestTemplatesHaveNoInlineScriptOrStyle(t *testing.T) {
	files, _ := filepath.Glob("templates/*.html")
	if len(files) == 0 {
		t.Fatal("no templates found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkNoInline(t, f, string(b))
	}
}

// A receiver's answer, headers and an event's payload are text: escaped,
// never markup.
func TestUntrustedTextIsRenderedAsText(t *testing.T) {
	e := newEnv(t)
	e.subscribe(t, "s1", "")
	e.record(t, "s1", 2, "<script>alert(1)</script>")
	b := e.browser(t)
	b.login()
	a := b.get("/ui/events/s1-ev1")
	if a.status != http.StatusOK {
		t.Fatalf("event page: %d %s", a.status, a.body)
	}
	mustContain(t, "event page", a.body, "&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(2)&gt;")
	if strings.Contains(a.body, "<script>alert") || strings.Contains(a.body, "<img") {
		t.Error("the event page renders the receiver's answer or the payload as markup")
	}
	checkNoInline(t, "event page", a.body)
	if n := strings.Count(strings.ToLower(a.body), "<script"); n != 1 {
		t.Errorf("%d script elements, want only the console's", n)
	}
}
