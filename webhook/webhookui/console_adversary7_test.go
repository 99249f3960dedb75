package webhookui_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// recordOne logs one failed attempt of an event with id, as a backend
// other than ingest may carry (any bytes).
func (e *env) recordOne(t testing.TB, sub, id string) {
	t.Helper()
	ev := pubsub.Event{ID: pubsub.ID(id), Name: "order.created", Payload: []byte(`{"id":` + fmt.Sprintf("%q", id) + `}`)}
	a := webhook.Attempt{EventID: ev.ID, EventName: ev.Name, SubscriptionID: sub, Attempt: 1, At: time.Now(),
		Outcome: webhook.Failed, Status: 500, URL: "http://127.0.0.1:9/" + sub, Error: "HTTP 500"}
	if err := e.log.Record(context.Background(), webhook.AttemptBatch{Events: []pubsub.Event{ev}, Attempts: []webhook.Attempt{a}}); err != nil {
		t.Fatal(err)
	}
	if err := e.dead.Add(context.Background(), webhook.DeadLetter{SubscriptionID: sub, Kind: webhook.KindExhausted, Attempts: 1,
		LastStatus: 500, LastError: "x", At: time.Now(), Event: ev}); err != nil {
		t.Fatal(err)
	}
}

var eventLink = regexp.MustCompile(`href="(/ui/events/[^"]*)"`)

// Event ids from a backend other than ingest may hold '/', '?', '#', '%'
// or spaces: the links of the log and the dead letters must still reach
// the event they name.
func TestAdv7EventLinksReachTheirEvent(t *testing.T) {
	ids := []string{"a/b", "c?d=1", "e#f", "g%2Fh", "i j", "k/../l", "m%zz"}
	for _, id := range ids {
		e := newEnv(t)
		e.subscribe(t, "s1", "")
		e.recordOne(t, "s1", id)
		b := e.browser(t)
		b.login()
		for _, page := range []string{"/ui/log", "/ui/dlq"} {
			a := b.get(page)
			m := eventLink.FindStringSubmatch(a.body)
			if m == nil {
				t.Fatalf("id %q: %s has no event link", id, page)
			}
			href := html.UnescapeString(m[1])
			ev := b.get(href)
			if ev.status != http.StatusOK || !strings.Contains(ev.body, "Event "+html.EscapeString(id)+" ·") {
				t.Errorf("id %q: %s links %q, which answers %d and not the event", id, page, href, ev.status)
			}
		}
	}
}

// next after login goes to a console page: not to another path of the
// host (the admin API, /metrics) by "..", nor anywhere by a control
// character that makes http.Redirect send the URL uncleaned.
func TestAdv7LoginNextStaysInTheConsole(t *testing.T) {
	e := newEnv(t)
	for _, next := range []string{
		"/ui/../\t/evil.example", "/ui/..\t/\t/evil.example", "/ui/../%09/evil.example", "/ui/../\x0b/evil.example",
		"/ui/../ /evil.example", "/ui/..//evil.example", "/ui/../\\evil.example", "//evil.example", "https://evil.example/ui/",
		"/ui/\x00/../../\t/evil.example",
	} {
		// served directly: Go's client refuses such a Location, browsers do not
		req := httptest.NewRequest(http.MethodPost, "/ui/login", strings.NewReader(url.Values{"token": {token}, "next": {next}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		e.api.ServeHTTP(rec, req)
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("next %q: login %d", next, rec.Code)
		}
		loc := rec.Header().Get("Location")
		// What a browser makes of it: tabs and newlines dropped, then
		// resolved against the console's URL.
		stripped := strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, loc)
		stripped = strings.TrimLeft(stripped, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
		base, _ := url.Parse(e.ts.URL + "/ui/login")
		u, err := base.Parse(stripped)
		if err != nil || u.Host != base.Host || !strings.HasPrefix(u.Path, "/ui/") {
			t.Errorf("next %q: redirected to %q, which a browser reads as %v", next, loc, u)
		}
	}
}

// Failed logins are limited to the burst even when they arrive at once.
func TestAdv7LoginLimitHoldsUnderConcurrency(t *testing.T) {
	e := newEnv(t)
	const n = 60
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/ui/login", strings.NewReader("token=wrong"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	checked := 0
	for s := range statuses {
		if s == http.StatusUnauthorized {
			checked++
		}
	}
	// the burst, and at most a token or two refilled while they ran
	if checked > 12 {
		t.Errorf("%d of %d concurrent wrong tokens were checked, want at most the burst of 10", checked, n)
	}
	http.DefaultClient.CloseIdleConnections()
}

// A cookie is worthless after logout, in another console, and a CSRF
// token works only with its own session.
func TestAdv7SessionsDoNotCross(t *testing.T) {
	e := newEnv(t)
	e.subscribe(t, "s1", "")
	a, b := e.browser(t), e.browser(t)
	a.login()
	b.login()
	if a.csrf == b.csrf || a.cookie().Value == b.cookie().Value {
		t.Fatal("two logins share a CSRF token or a cookie")
	}
	// b's token with a's session
	if r := a.post("/ui/subscriptions/s1/disable", url.Values{"csrf": {b.csrf}}); r.status != http.StatusForbidden {
		t.Errorf("a CSRF token of another session: %d", r.status)
	}
	// a's token in the header but a wrong one in the form: the header wins, and it is a's
	if r := a.post("/ui/subscriptions/s1/disable", url.Values{"csrf": {b.csrf}}, "X-CSRF-Token", "nope"); r.status != http.StatusForbidden {
		t.Errorf("a wrong X-CSRF-Token: %d", r.status)
	}
	// method override does not turn a GET into a change
	for _, h := range []string{"X-HTTP-Method-Override", "X-Method-Override"} {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/ui/subscriptions/s1/disable?_method=POST&csrf="+url.QueryEscape(a.csrf), nil)
		req.Header.Set(h, "POST")
		if r := a.do(req); r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
			t.Errorf("GET with %s: %d", h, r.status)
		}
	}
	req, _ := http.NewRequest(http.MethodHead, e.ts.URL+"/ui/subscriptions/s1/disable", nil)
	_ = a.do(req)
	if sub := a.get("/ui/subscriptions"); strings.Contains(sub.body, "state-disabled") {
		t.Fatal("s1 was disabled by a refused request")
	}

	saved := a.cookie()
	a.post("/ui/logout", nil)
	replay := e.browser(t)
	u, _ := url.Parse(e.ts.URL + "/ui/")
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: saved.Name, Value: saved.Value, Path: "/ui/"}})
	if r := replay.get("/ui/subscriptions"); r.status != http.StatusSeeOther {
		t.Errorf("a cookie replayed after logout: %d", r.status)
	}

	other := newEnv(t)
	foreign := other.browser(t)
	ou, _ := url.Parse(other.ts.URL + "/ui/")
	foreign.c.Jar.SetCookies(ou, []*http.Cookie{{Name: b.cookie().Name, Value: b.cookie().Value, Path: "/ui/"}})
	if r := foreign.get("/ui/subscriptions"); r.status != http.StatusSeeOther {
		t.Errorf("a cookie of another console (same admin token): %d", r.status)
	}
}
