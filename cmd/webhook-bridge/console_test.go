package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// screenshotsEnv names a directory where TestConsoleInABrowser saves a PNG
// of each page; unset (the normal run), it saves none.
const screenshotsEnv = "SWITCHYARD_CONSOLE_SCREENSHOTS"

// browser starts a headless Chromium for t, bounded by timeout, and
// returns a tab's context.
func browser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (%v): scripts/test installs it (the Debian package chromium); this test is not skipped", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to start its sandbox as root (CI containers
		// run as root); the pages are our own, served on loopback.
		opts = append(opts, chromedp.NoSandbox)
	}
	// The bound is on the allocator's parent: at the timeout the whole
	// browser stops, and whatever the test waits for fails.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return bctx
}

// tab runs steps in the browser, failing t with what was being done.
func tab(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("%s: %v\n(at %s)\n%s", what, err, loc, body)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// screenshot saves the viewport as name.png when screenshotsEnv is set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// atEnd puts the caret at the end of the text field sel.
func atEnd(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.focus(); e.setSelectionRange(e.value.length, e.value.length); })()`, sel))
}

// untilShown reloads url until sel's text holds want.
func untilShown(t *testing.T, ctx context.Context, url, sel, want string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		tab(t, ctx, "opening "+url, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("main")))
		got := eval[string](t, ctx, fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(e => e.innerText).join("\n")`, sel))
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s never showed %q; it shows:\n%s", url, sel, want, got)
		}
		time.Sleep(100 * time.Millisecond) // another process writes the log
	}
}

func TestConsoleInABrowser(t *testing.T) {
	const evil = "<script>alert(1)</script> db down"
	var healed atomic.Bool
	var orders atomic.Int32
	recv := httpsink.New(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		switch {
		case r.URL.Path == "/orders" && orders.Add(1) == 1: // the first delivery fails
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(evil))
		case r.URL.Path == "/payments" && !healed.Load():
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("payments down"))
		}
	})
	p := startBridge(t, backendConfig("redis")+`
listen: LISTEN
auth:
  admin_token: admin-secret
retry:
  schedule: [50ms]
subscriptions:
  - id: orders
    topic: order.created
    url: `+recv.URL+`/orders
  - id: payments
    topic: payment.failed
    url: `+recv.URL+`/payments
    max_attempts: 1
`)
	// One made through the API, to edit.
	if status, body := p.post(t, "/v1/subscriptions", "admin-secret",
		`{"id": "refunds", "topic": "refund.*", "url": "`+recv.URL+`/refunds", "filter": "data[\"total\"] > 100"}`); status != http.StatusCreated {
		t.Fatalf("POST /v1/subscriptions: %d %s", status, body)
	}
	order := p.emit(t, "", `{"name": "order.created", "payload": {"order": 1042, "note": "<img src=x onerror=alert(2)>"}}`)[0]
	payment := p.emit(t, "", `{"name": "payment.failed", "payload": {"payment": 7}}`)[0]
	eventAttempts(t, p, order, 2)
	eventAttempts(t, p, payment, 1)

	ctx := browser(t, 3*time.Minute)
	base := "http://" + p.addr

	// Log in, with the keyboard; the console sends us back where we were.
	tab(t, ctx, "logging in",
		chromedp.Navigate(base+"/ui/log"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "admin-secret"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/ui/log"]`)),
	)
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(loc, "/ui/log") {
		t.Errorf("after logging in at %s, want /ui/log", loc)
	}
	// The first Tab reaches the skip link.
	tab(t, ctx, "tabbing", chromedp.KeyEvent(kb.Tab))
	if cls := eval[string](t, ctx, `document.activeElement.className`); cls != "skip" {
		t.Errorf("the first Tab focuses %q, want the skip link", cls)
	}
	if cookies := eval[string](t, ctx, `document.cookie`); cookies != "" {
		t.Errorf("the session cookie is readable by scripts: %q", cookies)
	}

	// The delivery log, filtered to failures: the failed attempt, then its
	// event, where the receiver's answer is text.
	tab(t, ctx, "filtering the log",
		chromedp.SetValue(chromedp.CSS("#f-sub"), "orders"),
		chromedp.SetValue(chromedp.CSS("#f-outcome"), "failed"),
		chromedp.Click(chromedp.CSS(`form[action="/ui/log"] button`)),
		// The page before the click lists the order's event too: wait
		// for the answer to the filter, which the server fills in.
		chromedp.WaitVisible(chromedp.CSS(`#f-sub[value="orders"]`)),
		chromedp.WaitReady(chromedp.CSS(`#f-outcome option[selected]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/events/`+order+`"]`)),
	)
	if rows := eval[int](t, ctx, `document.querySelectorAll("main tbody tr").length`); rows != 1 {
		t.Errorf("%d failed attempts of orders listed, want 1", rows)
	}
	screenshot(t, ctx, "log")
	tab(t, ctx, "opening the event",
		chromedp.Click(chromedp.CSS(`a[href="/ui/events/`+order+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("article.attempt")),
	)
	bodies := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("article.attempt pre.body")).map(e => e.textContent)`)
	if len(bodies) != 2 || bodies[1] != evil {
		t.Errorf("response bodies shown %q, want the failed one to read %q", bodies, evil)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("script").length`); n != 1 {
		t.Errorf("%d script elements on the event page, want only the console's", n)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("main script, main img").length`); n != 0 {
		t.Errorf("the receiver's answer or the payload became %d elements", n)
	}
	if payload := text(t, ctx, "section pre.body"); !strings.Contains(payload, `"note": "<img src=x onerror=alert(2)>"`) {
		t.Errorf("payload shown as %q", payload)
	}
	screenshot(t, ctx, "event")

	// A dead letter, replayed from the dead-letters page once the
	// receiver is back, then delivered.
	healed.Store(true)
	tab(t, ctx, "opening the dead letters",
		chromedp.Navigate(base+"/ui/dlq"),
		chromedp.WaitVisible(chromedp.CSS(`button[name="one"]`)),
	)
	if row := text(t, ctx, "main tbody tr"); !strings.Contains(row, payment) || !strings.Contains(row, "payments") {
		t.Errorf("dead letter row %q", row)
	}
	screenshot(t, ctx, "dead-letters")
	tab(t, ctx, "replaying",
		chromedp.Click(chromedp.CSS(`button[name="one"]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice`)),
	)
	if n := text(t, ctx, "p.notice"); n != "1 dead letters replayed." {
		t.Errorf("after the replay: %q", n)
	}
	untilShown(t, ctx, base+"/ui/log?"+url.Values{"event_id": {payment}, "outcome": {"delivered"}}.Encode(), "main tbody", "payments")

	// Disable and enable a subscription.
	tab(t, ctx, "disabling",
		chromedp.Navigate(base+"/ui/subscriptions"),
		chromedp.Click(chromedp.CSS(`form[action="/ui/subscriptions/orders/disable"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/ui/subscriptions/orders/enable"]`)),
	)
	if n := text(t, ctx, "p.notice"); n != "Subscription disabled." {
		t.Errorf("after disabling: %q", n)
	}
	var v webhookhttp.SubscriptionView
	_, body := p.do(t, http.MethodGet, "/v1/subscriptions/orders", "admin-secret", "")
	if err := json.Unmarshal([]byte(body), &v); err != nil || !v.Disabled || v.DisabledBy != "operator" {
		t.Errorf("the API shows orders as %s", body)
	}
	tab(t, ctx, "enabling",
		chromedp.Click(chromedp.CSS(`form[action="/ui/subscriptions/orders/enable"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/ui/subscriptions/orders/disable"]`)),
	)
	screenshot(t, ctx, "subscriptions")

	// Edit: the filter is checked as it is typed.
	tab(t, ctx, "editing",
		chromedp.Navigate(base+"/ui/subscriptions/refunds/edit"),
		chromedp.WaitVisible(chromedp.CSS("#filter")),
		atEnd("#filter"),
		chromedp.SendKeys(chromedp.CSS("#filter"), " and"),
		chromedp.Poll[chromedp.Void](`document.getElementById("check-result").textContent.includes("filter")`),
	)
	if msg := text(t, ctx, "#check-result"); !strings.Contains(msg, "refunds") {
		t.Errorf("the check says %q", msg)
	}
	screenshot(t, ctx, "edit")
	tab(t, ctx, "fixing the filter",
		atEnd("#filter"),
		chromedp.SendKeys(chromedp.CSS("#filter"), ` data["currency"] == "EUR"`),
		chromedp.Poll[chromedp.Void](`document.getElementById("check-result").textContent == "Valid."`),
		chromedp.Click(chromedp.CSS(`form[data-check] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice")),
	)
	_, body = p.do(t, http.MethodGet, "/v1/subscriptions/refunds", "admin-secret", "")
	if !strings.Contains(body, `data[\"total\"] \u003e 100 and data[\"currency\"] == \"EUR\"`) {
		t.Errorf("after saving, the API shows %s", body)
	}

	// Recover a window.
	tab(t, ctx, "recovering",
		chromedp.Navigate(base+"/ui/recover"),
		chromedp.SetValue(chromedp.CSS("#subscription"), "orders"),
		chromedp.SetValue(chromedp.CSS("#since"), "1h"),
		chromedp.Click(chromedp.CSS(`form[action="/ui/recover"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`div.notice`)),
	)
	if rep := text(t, ctx, "div.notice"); !strings.Contains(rep, "Recovery scheduled.") || !strings.Contains(rep, "Scheduled") {
		t.Errorf("recover report %q", rep)
	}
	screenshot(t, ctx, "recover")

	tab(t, ctx, "the overview", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("svg")))
	if s := text(t, ctx, "main"); !strings.Contains(s, "this replica only") || !strings.Contains(s, "Consumer lag") {
		t.Errorf("overview: %q", s)
	}
	screenshot(t, ctx, "overview")

	// Logging out ends the session.
	tab(t, ctx, "logging out",
		chromedp.Click(chromedp.CSS(`form.logout button`)),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.Navigate(base+"/ui/dlq"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
	)
}

// The console is a client of the admin API: off without it.
func TestConsoleOnlyWithTheAdminAPI(t *testing.T) {
	off := startBridge(t, "listen: LISTEN\n")
	for _, path := range []string{"/ui/", "/ui/login", "/ui/static/console.css"} {
		if status, _ := off.do(t, http.MethodGet, path, "", ""); status != http.StatusNotFound {
			t.Errorf("without auth.admin_token, GET %s = %d, want 404", path, status)
		}
	}
	on := startBridge(t, "listen: LISTEN\nauth:\n  admin_token: admin-secret\n")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]string{"/ui": "/ui/", "/ui/": "/ui/login?next=%2Fui%2F"} {
		resp, err := client.Get("http://" + on.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != want {
			t.Errorf("GET %s: %d to %q, want %q", path, resp.StatusCode, loc, want)
		}
	}
}
