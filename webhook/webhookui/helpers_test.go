package webhookui_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
	"github.com/switchyard-go/switchyard/webhook/webhookui"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "admin-token-for-tests"

var secret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// env is an admin API over a memory bridge (not running) with the console
// mounted at /ui/, as webhook-bridge mounts it.
type env struct {
	ts      *httptest.Server
	api     *webhookhttp.Handler
	console *webhookui.Console
	log     *webhook.MemoryAttemptLog
	dead    *webhook.MemoryDeadLetters
}

type envOpt struct {
	tls      bool
	readOnly []webhook.Subscription
}

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	var o envOpt
	if len(opts) > 0 {
		o = opts[0]
	}
	log, err := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	dead := &webhook.MemoryDeadLetters{}
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	bridge, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: broker, AttemptLog: log, DeadLetters: dead})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bridge.Close() })
	api, err := webhookhttp.New(webhookhttp.Config{Bridge: bridge, Publisher: broker, AdminToken: token, ReadOnly: o.readOnly})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	console, err := webhookui.New(webhookui.Config{API: api, AdminToken: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = console.Close() })
	api.Handle("/ui/", console)
	e := &env{api: api, console: console, log: log, dead: dead}
	if o.tls {
		e.ts = httptest.NewTLSServer(api)
	} else {
		e.ts = httptest.NewServer(api)
	}
	t.Cleanup(e.ts.Close)
	return e
}

// subscribe makes subscription id through the admin API, with a secret.
func (e *env) subscribe(t testing.TB, id, filter string) {
	t.Helper()
	body := fmt.Sprintf(`{"id": %q, "topic": "order.created", "url": "http://127.0.0.1:9/%s", "filter": %q, "secret": %q}`, id, id, filter, secret)
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/v1/subscriptions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/subscriptions: %d %s", resp.StatusCode, b)
	}
}

// record writes attempts of events ev0..ev(n-1) to the log, the odd ones
// failed with body.
func (e *env) record(t testing.TB, sub string, n int, body string) {
	t.Helper()
	var batch webhook.AttemptBatch
	for i := range n {
		id := pubsub.ID(fmt.Sprintf("%s-ev%d", sub, i))
		batch.Events = append(batch.Events, pubsub.Event{ID: id, Name: "order.created", Payload: []byte(`{"n":` + fmt.Sprint(i) + `,"html":"<img src=x onerror=alert(2)>"}`)})
		a := webhook.Attempt{EventID: id, EventName: "order.created", SubscriptionID: sub, Attempt: 1, At: time.Now(),
			Duration: 3 * time.Millisecond, Outcome: webhook.Delivered, Status: 200, URL: "http://127.0.0.1:9/" + sub,
			RequestHeaders: http.Header{"Webhook-Id": {string(id)}}, ResponseHeaders: http.Header{"Content-Type": {"text/html"}}, ResponseBody: "fine"}
		if i%2 == 1 {
			a.Outcome, a.Status, a.Error, a.ResponseBody = webhook.Failed, 500, "HTTP 500 Internal Server Error", body
		}
		batch.Attempts = append(batch.Attempts, a)
	}
	if err := e.log.Record(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

// bury adds n dead letters of subscription sub.
func (e *env) bury(t testing.TB, sub string, n int) {
	t.Helper()
	for i := range n {
		ev := pubsub.Event{ID: pubsub.ID(fmt.Sprintf("%s-dead%d", sub, i)), Name: "order.created", Payload: []byte(`{}`)}
		if err := e.dead.Add(context.Background(), webhook.DeadLetter{SubscriptionID: sub, Kind: webhook.KindExhausted, Attempts: 3,
			LastStatus: 502, LastError: "3 attempts failed", At: time.Now(), Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
}

// browser is a client that keeps cookies and does not follow redirects.
type browser struct {
	t    testing.TB
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // the test server's own certificate
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(c.CloseIdleConnections)
	return &browser{t: t, e: e, c: c}
}

type answer struct {
	status int
	body   string
	header http.Header
}

func (b *browser) do(req *http.Request) answer {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: string(body), header: resp.Header}
	if m := csrfField.FindStringSubmatch(a.body); m != nil {
		b.csrf = m[1]
	}
	return a
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) get(path string) answer {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.e.ts.URL+path, nil)
	return b.do(req)
}

// post sends form, with the page's CSRF token unless form has one, and
// the extra headers (name, value pairs).
func (b *browser) post(path string, form url.Values, headers ...string) answer {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok && b.csrf != "" {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.e.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

// login logs in and loads the overview (for a CSRF token).
func (b *browser) login() {
	b.t.Helper()
	if a := b.post("/ui/login", url.Values{"token": {token}, "next": {"/ui/"}}); a.status != http.StatusSeeOther {
		b.t.Fatalf("login: %d %s", a.status, a.body)
	}
	if a := b.get("/ui/"); a.status != http.StatusOK {
		b.t.Fatalf("GET /ui/ after login: %d %s", a.status, a.body)
	}
}

func (b *browser) cookie() *http.Cookie {
	u, _ := url.Parse(b.e.ts.URL + "/ui/")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == webhookui.CookieName {
			return c
		}
	}
	return nil
}

// mustContain fails unless body holds every part.
func mustContain(t testing.TB, what, body string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(body, p) {
			t.Errorf("%s lacks %q", what, p)
		}
	}
}
