package webhookui_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/webhook"
)

func TestPagesRenderEmpty(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.login()
	for path, want := range map[string]string{
		"/ui/":              "No subscription is failing.",
		"/ui/subscriptions": "No subscriptions.",
		"/ui/log":           "No attempts on this page.",
		"/ui/dlq":           "No dead letters.",
		"/ui/recover":       `<datalist id="subscription-ids"></datalist>`,
	} {
		a := b.get(path)
		if a.status != http.StatusOK {
			t.Errorf("GET %s: %d", path, a.status)
		}
		mustContain(t, path, a.body, want, `<a class="skip" href="#main">`, `<main id="main"`, `aria-current="page"`)
	}
	for path, status := range map[string]int{"/ui/events/nope": 404, "/ui/subscriptions/nope/edit": 404, "/ui/nope": 404} {
		if a := b.get(path); a.status != status || !strings.Contains(a.body, `class="error"`) {
			t.Errorf("GET %s: %d, want %d with the error page", path, a.status, status)
		}
	}
}

func TestPagesRenderWithData(t *testing.T) {
	e := newEnv(t, envOpt{readOnly: []webhook.Subscription{{ID: "from-config", Topic: "x", URL: "http://127.0.0.1:9/c"}}})
	e.subscribe(t, "s1", `data["n"] > 0`)
	e.record(t, "s1", 6, "db down")
	e.bury(t, "s1", 3)
	b := e.browser(t)
	b.login()
	for path, wants := range map[string][]string{
		"/ui/":                      {"Events in", "Consumer lag", "this replica only", "<svg", "<polyline"},
		"/ui/subscriptions":         {`href="/ui/subscriptions/s1/edit"`, "from-config", `<span class="tag">config</span>`, "Disable", "order.created"},
		"/ui/subscriptions/s1/edit": {`data[&#34;n&#34;] &gt; 0`, `aria-live="polite"`, "Secrets: 1, kept", `data-check="/ui/subscriptions/s1/check"`},
		"/ui/log":                   {`href="/ui/events/s1-ev5"`, "failed", "delivered", "HTTP 500 Internal Server Error"},
		"/ui/log?subscription_id=s1&outcome=failed": {`<option selected>failed</option>`, `value="s1"`, "s1-ev5", "s1-ev3"},
		"/ui/events/s1-ev3":                         {"db down", "Webhook-Id: s1-ev3", "Content-Type: text/html", "&#34;n&#34;: 3"},
		"/ui/dlq":                                   {"s1-dead0", "s1-dead2", "HTTP 502", `name="pick"`, `name="one"`, "Replay selected"},
		"/ui/recover":                               {`<option value="s1">`, `<option value="from-config">`},
	} {
		a := b.get(path)
		if a.status != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, a.status, a.body)
		}
		mustContain(t, path, a.body, wants...)
	}
	if a := b.get("/ui/log?subscription_id=s1&outcome=failed"); strings.Contains(a.body, "s1-ev4") {
		t.Error("the log's filters are not applied")
	}
	// A filter the API refuses: the form again, with its reason.
	if a := b.get("/ui/log?since=yesterday"); a.status != http.StatusBadRequest || !strings.Contains(a.body, "since") || !strings.Contains(a.body, `<form method="get" action="/ui/log"`) {
		t.Errorf("a bad since: %d", a.status)
	}
	// A config subscription is read-only.
	if a := b.get("/ui/subscriptions/from-config/edit"); !strings.Contains(a.body, "read-only") || !strings.Contains(a.body, "<button type=\"submit\" disabled>") {
		t.Error("a config subscription's edit page does not say it is read-only")
	}
}

var nextLink = regexp.MustCompile(`<a href="([^"]+)" rel="next">`)

// walk follows the "next page" links from path and returns the pages.
func walk(t *testing.T, b *browser, path string, row *regexp.Regexp) (pages int, rows []string) {
	t.Helper()
	for path != "" && pages < 50 {
		a := b.get(path)
		if a.status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, a.status)
		}
		pages++
		for _, m := range row.FindAllStringSubmatch(a.body, -1) {
			rows = append(rows, m[1])
		}
		path = ""
		if m := nextLink.FindStringSubmatch(a.body); m != nil {
			path = html.UnescapeString(m[1])
			if !strings.Contains(path, "cursor=") && !strings.Contains(path, "after=") {
				t.Fatalf("next link %q carries no cursor", path)
			}
		}
	}
	return pages, rows
}

func TestPagingCarriesTheCursor(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"a", "b"} {
		e.subscribe(t, id, "")
	}
	e.record(t, "a", 120, "x")
	e.record(t, "b", 10, "x")
	e.bury(t, "a", 60)
	b := e.browser(t)
	b.login()

	pages, rows := walk(t, b, "/ui/log", regexp.MustCompile(`<a href="/ui/events/([^"]+)">`))
	if pages != 3 || len(rows) != 130 {
		t.Errorf("log: %d pages, %d attempts; want 3 and 130", pages, len(rows))
	}
	// The filters stay on every page.
	pages, rows = walk(t, b, "/ui/log?subscription_id=b", regexp.MustCompile(`<a href="/ui/events/([^"]+)">`))
	if pages != 1 || len(rows) != 10 {
		t.Errorf("log of b: %d pages, %d attempts", pages, len(rows))
	}
	pages, rows = walk(t, b, "/ui/log?outcome=failed", regexp.MustCompile(`<a href="/ui/events/([^"]+)">`))
	if pages != 2 || len(rows) != 65 {
		t.Errorf("failed attempts: %d pages, %d attempts; want 2 and 65", pages, len(rows))
	}
	a := b.get("/ui/log?outcome=failed")
	if m := nextLink.FindStringSubmatch(a.body); m == nil || !strings.Contains(m[1], "outcome=failed") {
		t.Errorf("the next link drops the filter: %v", m)
	}

	pages, rows = walk(t, b, "/ui/dlq", regexp.MustCompile(`name="one" value="([^"]+)"`))
	if pages != 2 || len(rows) != 60 {
		t.Errorf("dead letters: %d pages, %d rows; want 2 and 60", pages, len(rows))
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r] {
			t.Errorf("dead letter %s on two pages", r)
		}
		seen[r] = true
	}
}

func TestSubscriptionsPaged(t *testing.T) {
	e := newEnv(t)
	for i := range 55 {
		e.subscribe(t, "sub"+string(rune('A'+i/26))+string(rune('a'+i%26)), "")
	}
	b := e.browser(t)
	b.login()
	pages, rows := walk(t, b, "/ui/subscriptions", regexp.MustCompile(`<a href="/ui/subscriptions/([^"/]+)/edit">`))
	if pages != 2 || len(rows) != 55 {
		t.Errorf("%d pages, %d subscriptions; want 2 and 55", pages, len(rows))
	}
}

func TestFilterIsCheckedAsTypedAndOnSave(t *testing.T) {
	e := newEnv(t)
	e.subscribe(t, "s1", "")
	b := e.browser(t)
	b.login()
	b.get("/ui/subscriptions/s1/edit")
	form := func(filter string) url.Values {
		return url.Values{"topic": {"order.created"}, "url": {"http://127.0.0.1:9/s1"}, "filter": {filter}, "timeout": {"5s"}}
	}
	var out struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	a := b.post("/ui/subscriptions/s1/check", form(`data["total"] >`))
	if err := jsonDecode(a.body, &out); err != nil || out.OK || !strings.Contains(out.Error, "filter") || a.header.Get("Content-Type") != "application/json" {
		t.Errorf("a bad filter: %d %s", a.status, a.body)
	}
	a = b.post("/ui/subscriptions/s1/check", form(`data["total"] > 10`))
	if err := jsonDecode(a.body, &out); err != nil || !out.OK {
		t.Errorf("a good filter: %d %s", a.status, a.body)
	}
	// The script sends the token in a header.
	a = b.post("/ui/subscriptions/s1/check", url.Values{"csrf": {""}, "topic": {"t"}, "url": {"http://x/"}})
	if a.status != http.StatusForbidden {
		t.Errorf("check without the CSRF token: %d", a.status)
	}

	// Without the script: the server says it on submit.
	a = b.post("/ui/subscriptions/s1/edit", form(`data["total"] >`))
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, `role="alert"`) || !strings.Contains(a.body, "filter") {
		t.Errorf("saving a bad filter: %d", a.status)
	}
	mustContain(t, "the form after a refusal", a.body, `data[&#34;total&#34;] &gt;`)
	a = b.post("/ui/subscriptions/s1/edit", form(`data["total"] > 10`))
	if a.status != http.StatusSeeOther {
		t.Fatalf("saving a good filter: %d %s", a.status, a.body)
	}
	a = b.get("/ui/subscriptions/s1/edit")
	mustContain(t, "edit page after saving", a.body, `data[&#34;total&#34;] &gt; 10`, `value="5s"`, "Secrets: 1, kept")
}

func TestEnableDisableReplayRecover(t *testing.T) {
	e := newEnv(t)
	e.subscribe(t, "s1", "")
	e.record(t, "s1", 4, "x")
	e.bury(t, "s1", 4)
	b := e.browser(t)
	b.login()
	if a := b.post("/ui/subscriptions/s1/disable", nil); a.status != http.StatusSeeOther || !e.disabled(t, "s1") {
		t.Fatalf("disable: %d %s", a.status, a.body)
	}
	if a := b.get("/ui/subscriptions?done=disabled"); !strings.Contains(a.body, "Subscription disabled.") || !strings.Contains(a.body, ">Enable<") {
		t.Error("the list does not show the subscription disabled")
	}
	if a := b.post("/ui/recover", url.Values{"subscription": {"s1"}, "since": {"1h"}}); a.status != http.StatusConflict || !strings.Contains(a.body, "disabled") {
		t.Errorf("recovering a disabled subscription: %d", a.status)
	}
	if a := b.post("/ui/subscriptions/s1/enable", nil); a.status != http.StatusSeeOther || e.disabled(t, "s1") {
		t.Fatalf("enable: %d %s", a.status, a.body)
	}

	a := b.get("/ui/dlq")
	picks := regexp.MustCompile(`name="one" value="([^"]+)"`).FindAllStringSubmatch(a.body, -1)
	if len(picks) != 4 {
		t.Fatalf("%d dead letters shown, want 4", len(picks))
	}
	one := html.UnescapeString(picks[0][1])
	if a := b.post("/ui/dlq/replay", url.Values{"one": {one}}); a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/dlq?replayed=1" {
		t.Fatalf("replay one: %d %s", a.status, a.header.Get("Location"))
	}
	if a := b.get("/ui/dlq?replayed=1"); !strings.Contains(a.body, "1 dead letters replayed.") {
		t.Error("no notice of the replay")
	}
	sel := url.Values{"pick": {html.UnescapeString(picks[1][1]), html.UnescapeString(picks[2][1])}, "action": {"selected"}}
	if a := b.post("/ui/dlq/replay", sel); a.header.Get("Location") != "/ui/dlq?replayed=2" {
		t.Fatalf("replay selected: %d %s", a.status, a.header.Get("Location"))
	}
	if a := b.post("/ui/dlq/replay", url.Values{"action": {"subscription"}, "subscription": {"s1"}}); a.header.Get("Location") != "/ui/dlq?replayed=1" {
		t.Fatalf("replay the subscription's: %d %s", a.status, a.header.Get("Location"))
	}
	if a := b.post("/ui/dlq/replay", url.Values{"action": {"subscription"}, "subscription": {"nope"}}); a.status != http.StatusNotFound {
		t.Errorf("replaying an unknown subscription's: %d", a.status)
	}
	if a := b.post("/ui/dlq/replay", url.Values{"action": {"selected"}}); a.status != http.StatusBadRequest {
		t.Errorf("replaying nothing selected: %d", a.status)
	}
	if a := b.post("/ui/dlq/replay", url.Values{"one": {"garbage%%"}}); a.status != http.StatusBadRequest {
		t.Errorf("replaying a forged pick: %d", a.status)
	}

	a = b.post("/ui/recover", url.Values{"subscription": {"s1"}, "since": {"1h"}})
	if a.status != http.StatusOK {
		t.Fatalf("recover: %d %s", a.status, a.body)
	}
	mustContain(t, "recover report", a.body, "Recovery scheduled.", "<dt>Scheduled</dt><dd>0</dd>", "<dt>Still retrying</dt><dd>2</dd>")
	if a := b.post("/ui/recover", url.Values{"subscription": {"s1"}, "since": {"soon"}}); a.status != http.StatusBadRequest || !strings.Contains(a.body, "since") {
		t.Errorf("recover with a bad since: %d", a.status)
	}
}
