package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"

	"github.com/switchyard-go/switchyard/docs"
	"github.com/switchyard-go/switchyard/internal/openapitest"
	"github.com/switchyard-go/switchyard/webhook"
)

const (
	adminToken = "openapi-admin-token"
	jwtSecret  = "openapi-jwt-secret-of-32-bytes!!"
	demoSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// newValidator returns a validator of docs/openapi.yaml that also checks
// formats (date-time, uri), after checking the description itself.
func newValidator(t *testing.T) validator.Validator {
	t.Helper()
	doc, err := libopenapi.NewDocument(docs.OpenAPI())
	if err != nil {
		t.Fatalf("docs/openapi.yaml does not load: %v", err)
	}
	// The radix tree it matches paths with by default takes /ui for /ui/;
	// its other matcher does not.
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions(), config.DisablePathTree())
	if len(errs) > 0 {
		t.Fatalf("docs/openapi.yaml: no validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("docs/openapi.yaml is not a valid OpenAPI 3.1 document: %s", describe(e))
		}
		t.FailNow()
	}
	return v
}

func describe(e interface{ Error() string }) string { return e.Error() }

// exchange is one request and its response, as the client saw them.
type exchange struct {
	method, target string // target: path and query
	reqHeader      http.Header
	reqBody        []byte
	status         int
	respHeader     http.Header
	respBody       []byte
}

func (x *exchange) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", x.method, x.target)
	for k, v := range x.reqHeader {
		fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(v, ", "))
	}
	fmt.Fprintf(&b, "\n%s\n--- answered %d\n", cut(x.reqBody), x.status)
	for k, v := range x.respHeader {
		fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(v, ", "))
	}
	fmt.Fprintf(&b, "\n%s", cut(x.respBody))
	return b.String()
}

func cut(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

// decode reads the answer's JSON into v.
func (x *exchange) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(x.respBody, v); err != nil {
		t.Fatalf("%s %s: answer not JSON: %v\n%s", x.method, x.target, err, x)
	}
}

// session drives the bridge through a client that records every exchange
// and validates it against the description at once.
type session struct {
	t       *testing.T
	base    string
	client  *http.Client
	v       validator.Validator
	ops     []openapitest.Operation
	covered map[string]bool // operationId -> driven
	log     []*exchange
}

// Kinds of requests whose validation differs.
const (
	valid       = iota // request and response must match the description
	invalid            // a request the description refuses too (no token, a bad field): it must, and the response must match
	unchecked          // a request the description cannot judge (a wrong token, a URL scheme): only the response is held to it
	undescribed        // a path or method the description has not: the answer must be the error shape
)

func (s *session) call(kind int, method, target, token string, body any, header ...string) *exchange {
	s.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			s.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, s.base+target, bytes.NewReader(raw))
	if err != nil {
		s.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, target, err)
	}
	respBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	x := &exchange{method: method, target: target, reqHeader: req.Header.Clone(), reqBody: raw,
		status: resp.StatusCode, respHeader: resp.Header.Clone(), respBody: respBody}
	s.log = append(s.log, x)
	s.check(kind, x)
	return x
}

// request and response rebuild the exchange for the validator, which
// reads the bodies.
func (s *session) request(x *exchange) *http.Request {
	req, _ := http.NewRequest(x.method, s.base+x.target, bytes.NewReader(x.reqBody))
	req.Header = x.reqHeader.Clone()
	return req
}

func (s *session) response(x *exchange) *http.Response {
	return &http.Response{StatusCode: x.status, Header: x.respHeader.Clone(), Body: io.NopCloser(bytes.NewReader(x.respBody)), Request: s.request(x)}
}

func (s *session) check(kind int, x *exchange) {
	s.t.Helper()
	if kind == undescribed {
		s.checkUndescribed(x)
		return
	}
	if op, ok := s.operation(x.method, x.target); ok {
		s.covered[op.ID] = true
	} else {
		s.t.Errorf("%s %s: no operation of the description takes it\n%s", x.method, x.target, x)
		return
	}
	if x.method == http.MethodGet && x.target == "/ui" {
		// The validator takes /ui for /ui/ (it drops trailing slashes when
		// matching paths), so this one is checked here: the description
		// gives GET /ui one answer, 301 to /ui/.
		if x.status != http.StatusMovedPermanently || x.respHeader.Get("Location") != "/ui/" {
			s.t.Errorf("GET /ui: want 301 to /ui/ as described\n%s", x)
		}
		return
	}
	switch ok, errs := s.v.ValidateHttpRequest(s.request(x)); {
	case kind == valid && !ok:
		for _, e := range errs {
			s.t.Errorf("request does not match docs/openapi.yaml: %s\n%s", e.Error(), x)
		}
	case kind == invalid && ok:
		s.t.Errorf("docs/openapi.yaml allows a request the bridge refuses\n%s", x)
	}
	if ok, errs := s.v.ValidateHttpResponse(s.request(x), s.response(x)); !ok {
		for _, e := range errs {
			s.t.Errorf("response does not match docs/openapi.yaml: %s\n%s", e.Error(), x)
		}
	}
}

// checkUndescribed holds the answer to a method or path the description
// does not have to the error shape: 405 with Allow naming the methods
// it describes for the path, or 404.
func (s *session) checkUndescribed(x *exchange) {
	s.t.Helper()
	var p struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	dec := json.NewDecoder(bytes.NewReader(x.respBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || p.Status != x.status || p.Error == "" || x.respHeader.Get("Content-Type") != "application/json" {
		s.t.Errorf("answer to an undescribed request is not the error shape (%v)\n%s", err, x)
	}
	path, _, _ := strings.Cut(x.target, "?")
	var methods []string
	for _, o := range s.ops {
		if matchPath(o.Path, path) {
			methods = append(methods, o.Method)
			if o.Method == http.MethodGet {
				methods = append(methods, http.MethodHead)
			}
		}
	}
	if len(methods) == 0 {
		if x.status != http.StatusNotFound {
			s.t.Errorf("a path the description does not have: %d, want 404\n%s", x.status, x)
		}
		return
	}
	allow := strings.Split(x.respHeader.Get("Allow"), ", ")
	sort.Strings(allow)
	sort.Strings(methods)
	if x.status != http.StatusMethodNotAllowed || !slices.Equal(allow, methods) {
		s.t.Errorf("a method the description does not give the path: %d Allow %q, want 405 Allow %q\n%s", x.status, allow, methods, x)
	}
}

// matchPath reports whether the path template matches path.
func matchPath(template, path string) bool {
	t, p := strings.Split(template, "/"), strings.Split(path, "/")
	if len(t) != len(p) {
		return false
	}
	for i := range t {
		if t[i] != p[i] && !(strings.HasPrefix(t[i], "{") && p[i] != "") {
			return false
		}
	}
	return true
}

// operation finds the operation a request is for, a literal path before
// a template, as OpenAPI matches.
func (s *session) operation(method, target string) (openapitest.Operation, bool) {
	path, _, _ := strings.Cut(target, "?")
	var best openapitest.Operation
	found := false
	for _, o := range s.ops {
		if o.Method != method || !matchPath(o.Path, path) {
			continue
		}
		if !found || strings.Count(o.Path, "{") < strings.Count(best.Path, "{") {
			best, found = o, true
		}
	}
	return best, found
}

func (s *session) want(x *exchange, status int) {
	s.t.Helper()
	if x.status != status {
		s.t.Fatalf("%s %s: %d, want %d\n%s", x.method, x.target, x.status, status, x)
	}
}

// TestTrafficMatchesOpenAPI drives a realistic session against the bridge
// on Redis, with an admin token, JWT ingest, the console and the demo on,
// and holds every request and response to docs/openapi.yaml. Every
// operation of the description is driven at least once.
func TestTrafficMatchesOpenAPI(t *testing.T) {
	rcv := startReceiver(t)
	stream := fmt.Sprintf("openapi-%d", time.Now().UnixNano())
	b := startBridge(t, `
listen: LISTEN
redis:
  url: redis://REDIS/0
stream: `+stream+`
max_body_bytes: 65536
auth:
  jwt_secret: `+jwtSecret+`
  admin_token: `+adminToken+`
retry:
  schedule: [200ms]
demo:
  enabled: true
  interval: 1h
  secret: `+demoSecret+`
subscriptions:
  - id: demo-receiver
    topic: demo.ping
    url: http://LISTEN/demo/receiver
    secret: `+demoSecret+`
`)
	ops, err := openapitest.Operations()
	if err != nil {
		t.Fatal(err)
	}
	s := &session{t: t, base: "http://" + b.Addr, v: newValidator(t), ops: ops, covered: map[string]bool{},
		client: &http.Client{Timeout: wait, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	jwt := jwtHS256(jwtSecret, map[string]any{"sub": "openapi-test", "exp": time.Now().Add(time.Hour).Unix()})
	expired := jwtHS256(jwtSecret, map[string]any{"sub": "openapi-test", "exp": time.Now().Add(-time.Hour).Unix()})

	// Operations, open to all.
	s.want(s.call(valid, "GET", "/healthz", "", nil), 200)
	s.want(s.call(valid, "GET", "/readyz", "", nil), 200)
	s.want(s.call(valid, "GET", "/openapi.yaml", "", nil), 200)
	s.want(s.call(valid, "GET", "/openapi.json", "", nil), 200)
	s.want(s.call(valid, "GET", "/ui", "", nil), 301)
	s.want(s.call(valid, "GET", "/ui/", "", nil), 303)

	// The demo receiver: a delivery signed with the demo's secret, and
	// one whose signature does not verify.
	demoBody := []byte(`{"body":{"kind":"demo"}}`)
	ts := time.Now().Unix()
	sig, err := webhook.Sign([]string{demoSecret}, "msg_openapi", ts, demoBody)
	if err != nil {
		t.Fatal(err)
	}
	s.want(s.call(valid, "POST", "/demo/receiver", "", demoBody,
		"webhook-id", "msg_openapi", "webhook-timestamp", fmt.Sprint(ts), "webhook-signature", sig), 204)
	s.want(s.call(valid, "POST", "/demo/receiver", "", demoBody,
		"webhook-id", "msg_openapi", "webhook-timestamp", fmt.Sprint(ts), "webhook-signature", "v1,AAAA"), 401)

	// The admin API wants its token.
	s.want(s.call(invalid, "GET", "/v1/subscriptions", "", nil), 401)
	s.want(s.call(unchecked, "GET", "/v1/subscriptions", "wrong-token", nil), 401)

	// Subscriptions: a check, good and bad; creations, one of them with
	// an ed25519 key made by the bridge; conflicts.
	ok := map[string]any{"id": "orders-ok", "topic": "order.*", "url": rcv.url + "/ok", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"headers": map[string]string{"X-Team": "billing"}, "timeout": "5s", "filter": `data.total > 10`}
	s.want(s.call(valid, "POST", "/v1/subscriptions/check", adminToken, ok), 200)
	bad := map[string]any{"id": "bad", "topic": "order.*", "url": rcv.url + "/ok", "filter": "data.total >"}
	s.want(s.call(valid, "POST", "/v1/subscriptions/check", adminToken, bad), 400)
	created := s.call(valid, "POST", "/v1/subscriptions", adminToken, ok)
	s.want(created, 201)
	if loc := created.respHeader.Get("Location"); loc != "/v1/subscriptions/orders-ok" {
		t.Errorf("Location %q, want /v1/subscriptions/orders-ok", loc)
	}
	failing := map[string]any{"id": "orders-failing", "topic": "order.created", "url": rcv.url + "/fail", "max_attempts": 2, "signing": "ed25519"}
	var view struct {
		PublicKeys []string `json:"public_keys"`
	}
	x := s.call(valid, "POST", "/v1/subscriptions", adminToken, failing)
	s.want(x, 201)
	if x.decode(t, &view); len(view.PublicKeys) != 1 {
		t.Errorf("signing ed25519: public_keys %q, want one", view.PublicKeys)
	}
	for i := 1; i <= 3; i++ {
		s.want(s.call(valid, "POST", "/v1/subscriptions", adminToken, map[string]any{
			"id": fmt.Sprintf("extra-%d", i), "topic": "nothing.matches", "url": rcv.url + "/ok",
			"rate_limit": map[string]any{"per_second": 0.5, "burst": 2}}), 201)
	}
	s.want(s.call(valid, "POST", "/v1/subscriptions", adminToken, ok), 409)
	s.want(s.call(invalid, "POST", "/v1/subscriptions", adminToken, `{"id": "x", "topic": "a", "url": "http://127.0.0.1/", "colour": "red"}`), 400)
	s.want(s.call(unchecked, "POST", "/v1/subscriptions", adminToken, `{"id": "x", "topic": "a", "url": "ftp://127.0.0.1/"}`), 400)
	s.want(s.call(invalid, "POST", "/v1/subscriptions", adminToken, map[string]any{"id": "check", "topic": "a", "url": rcv.url}), 400)

	// Paging through every subscription, two at a time.
	var ids []string
	for cursor, pages := "", 0; ; pages++ {
		var page struct {
			Subscriptions []struct{ ID string } `json:"subscriptions"`
			Next          string                `json:"next"`
		}
		x := s.call(valid, "GET", "/v1/subscriptions?limit=2&cursor="+url.QueryEscape(cursor), adminToken, nil)
		s.want(x, 200)
		x.decode(t, &page)
		for _, sub := range page.Subscriptions {
			ids = append(ids, sub.ID)
		}
		if page.Next == "" {
			break
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		cursor = page.Next
	}
	if want := []string{"demo-receiver", "extra-1", "extra-2", "extra-3", "orders-failing", "orders-ok"}; !slices.Equal(ids, want) {
		t.Errorf("paged subscriptions %q, want %q", ids, want)
	}
	s.want(s.call(invalid, "GET", "/v1/subscriptions?limit=0", adminToken, nil), 400)
	got := s.call(valid, "GET", "/v1/subscriptions/orders-ok", adminToken, nil)
	s.want(got, 200)
	s.want(s.call(valid, "GET", "/v1/subscriptions/no-such", adminToken, nil), 404)
	// What GET answers, sent back with PUT, replaces it with itself.
	s.want(s.call(valid, "PUT", "/v1/subscriptions/orders-ok", adminToken, got.respBody), 200)
	s.want(s.call(valid, "PUT", "/v1/subscriptions/no-such", adminToken, map[string]any{"topic": "a", "url": rcv.url}), 404)
	s.want(s.call(valid, "PUT", "/v1/subscriptions/demo-receiver", adminToken, map[string]any{"topic": "a", "url": rcv.url}), 409)
	s.want(s.call(valid, "DELETE", "/v1/subscriptions/extra-3", adminToken, nil), 204)
	s.want(s.call(valid, "DELETE", "/v1/subscriptions/extra-3", adminToken, nil), 404)
	s.want(s.call(valid, "DELETE", "/v1/subscriptions/demo-receiver", adminToken, nil), 409)

	// Ingest: no token, an expired one, one event, a batch, the same id
	// again, bad input, a body over max_body_bytes.
	one := map[string]any{"name": "order.created", "id": "order-1", "payload": map[string]any{"total": 42}}
	s.want(s.call(unchecked, "POST", "/v1/events", "", one), 401) // the description allows ingest without a token: it depends on auth.jwt_secret
	s.want(s.call(valid, "POST", "/v1/events", expired, one), 401)
	var accepted struct {
		IDs        []string `json:"ids"`
		Duplicates []string `json:"duplicates"`
	}
	x = s.call(valid, "POST", "/v1/events", jwt, one, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	s.want(x, 202)
	x = s.call(valid, "POST", "/v1/events", jwt, []any{
		map[string]any{"name": "order.created", "payload": map[string]any{"total": 7}, "correlation_id": "checkout-1"},
		map[string]any{"name": "order.paid", "payload": map[string]any{"total": 99}},
		map[string]any{"name": "order.created", "payload": map[string]any{"total": 500}, "dry_run": true},
	})
	s.want(x, 202)
	x.decode(t, &accepted)
	if len(accepted.IDs) != 3 || len(accepted.Duplicates) != 0 {
		t.Fatalf("batch: %+v, want 3 ids and no duplicates", accepted)
	}
	batch := accepted.IDs
	x = s.call(valid, "POST", "/v1/events", jwt, one)
	s.want(x, 200)
	if x.decode(t, &accepted); !slices.Equal(accepted.Duplicates, []string{"order-1"}) {
		t.Errorf("the same id again: duplicates %q, want [order-1]", accepted.Duplicates)
	}
	s.want(s.call(invalid, "POST", "/v1/events", jwt, `{"name": "order.created", "payload": 1, "Name": "x"}`), 400)
	s.want(s.call(invalid, "POST", "/v1/events", jwt, `{"name": "order.created", "id": "has.a.dot", "payload": 1}`), 400)
	s.want(s.call(invalid, "POST", "/v1/events", jwt, `[]`), 400)
	s.want(s.call(valid, "POST", "/v1/events", jwt, map[string]any{"name": "order.created", "payload": strings.Repeat("x", 70000)}), 413)

	// Deliveries: orders-ok gets the events with total > 10 (order-1 and
	// order.paid; the dry run is matched but not sent); orders-failing
	// fails twice per order.created and dead-letters it.
	eventually(t, "orders-ok received order-1 and the order.paid", func() bool {
		return slices.Contains(rcv.delivered("/ok"), "order-1") && slices.Contains(rcv.delivered("/ok"), batch[1])
	})
	var dead struct {
		DeadLetters []struct {
			ID             string              `json:"id"`
			SubscriptionID string              `json:"subscription_id"`
			Event          struct{ ID string } `json:"event"`
		} `json:"dead_letters"`
		Next string `json:"next"`
	}
	eventually(t, "orders-failing's two events are dead letters", func() bool {
		x := s.call(valid, "GET", "/v1/dlq?kind=exhausted", adminToken, nil)
		s.want(x, 200)
		x.decode(t, &dead)
		return len(dead.DeadLetters) == 2
	})
	x = s.call(valid, "GET", "/v1/dlq?limit=1", adminToken, nil)
	s.want(x, 200)
	if x.decode(t, &dead); dead.Next == "" {
		t.Fatalf("GET /v1/dlq?limit=1 of two: no next\n%s", x)
	}
	s.want(s.call(valid, "GET", "/v1/dlq?limit=1&after="+url.QueryEscape(dead.Next), adminToken, nil), 200)
	s.want(s.call(invalid, "GET", "/v1/dlq?kind=lost", adminToken, nil), 400)

	// The delivery log: filters, paging, an event with its attempts.
	var attempts struct {
		Attempts []struct {
			Outcome string `json:"outcome"`
			Status  int    `json:"status"`
		} `json:"attempts"`
		Next string `json:"next_cursor"`
	}
	x = s.call(valid, "GET", "/v1/attempts?subscription_id=orders-failing&outcome=failed&status=500&since=1h&limit=1", adminToken, nil)
	s.want(x, 200)
	if x.decode(t, &attempts); len(attempts.Attempts) != 1 || attempts.Attempts[0].Status != 500 || attempts.Next == "" {
		t.Fatalf("attempts of orders-failing, a page of one: %+v, want one 500 and a next_cursor", attempts)
	}
	s.want(s.call(valid, "GET", "/v1/attempts?subscription_id=orders-failing&limit=1&cursor="+url.QueryEscape(attempts.Next), adminToken, nil), 200)
	s.want(s.call(valid, "GET", "/v1/attempts?event_id=order-1&until="+url.QueryEscape(time.Now().Add(time.Minute).UTC().Format(time.RFC3339)), adminToken, nil), 200)
	s.want(s.call(invalid, "GET", "/v1/attempts?outcome=lost", adminToken, nil), 400)
	s.want(s.call(valid, "GET", "/v1/attempts?since=yesterday", adminToken, nil), 400)
	s.want(s.call(valid, "GET", "/v1/events/order-1", adminToken, nil), 200)
	s.want(s.call(valid, "GET", "/v1/events/"+batch[2], adminToken, nil), 200) // the dry run
	s.want(s.call(valid, "GET", "/v1/events/never-posted", adminToken, nil), 404)

	// Health.
	s.want(s.call(valid, "GET", "/v1/health?limit=3", adminToken, nil), 200)
	s.want(s.call(valid, "GET", "/v1/subscriptions/orders-failing/health", adminToken, nil), 200)
	s.want(s.call(valid, "GET", "/v1/subscriptions/no-such/health", adminToken, nil), 404)

	// Replay the dead letters, which fail and die again.
	var replayed struct {
		Replayed int `json:"replayed"`
	}
	x = s.call(valid, "POST", "/v1/dlq/replay?subscription=orders-failing", adminToken, nil)
	s.want(x, 200)
	if x.decode(t, &replayed); replayed.Replayed != 2 {
		t.Errorf("replayed %d, want 2", replayed.Replayed)
	}
	s.want(s.call(valid, "POST", "/v1/dlq/replay?subscription=no-such", adminToken, nil), 404)

	// Disable, recover (refused while disabled), enable, recover.
	x = s.call(valid, "POST", "/v1/subscriptions/orders-failing/disable", adminToken, map[string]string{"reason": "receiver in maintenance"})
	s.want(x, 200)
	s.want(s.call(valid, "POST", "/v1/subscriptions/extra-1/disable", adminToken, nil), 200) // no body
	s.want(s.call(valid, "POST", "/v1/subscriptions/orders-failing/recover", adminToken, map[string]string{"since": "1h"}), 409)
	s.want(s.call(valid, "POST", "/v1/subscriptions/orders-failing/enable", adminToken, nil), 200)
	s.want(s.call(valid, "POST", "/v1/subscriptions/no-such/enable", adminToken, nil), 404)
	s.want(s.call(valid, "POST", "/v1/subscriptions/orders-failing/recover", adminToken, map[string]string{"since": "1h", "until": time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}), 200)
	s.want(s.call(invalid, "POST", "/v1/subscriptions/orders-failing/recover", adminToken, map[string]string{}), 400)

	// /metrics, after all that.
	s.want(s.call(valid, "GET", "/metrics", "", nil), 200)

	// What the description does not have.
	s.want(s.call(undescribed, "PATCH", "/v1/subscriptions/orders-ok", adminToken, nil), 405)
	s.want(s.call(undescribed, "DELETE", "/v1/events", jwt, nil), 405)
	s.want(s.call(undescribed, "GET", "/v2/subscriptions", adminToken, nil), 404)

	var missing []string
	for _, o := range ops {
		if !s.covered[o.ID] {
			missing = append(missing, o.Key())
		}
	}
	if len(missing) > 0 {
		t.Errorf("operations of docs/openapi.yaml the session did not drive: %q", missing)
	}
	t.Logf("%d exchanges validated, %d operations driven", len(s.log), len(s.covered))
}
