package webhookhttp_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/switchyard-go/switchyard/docs"
	"github.com/switchyard-go/switchyard/internal/openapitest"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// fullHandler is a handler with every route of its own mounted: an admin
// token and a registry.
func fullHandler(t *testing.T) *webhookhttp.Handler {
	t.Helper()
	h, err := webhookhttp.New(webhookhttp.Config{
		Bridge: newBridge(t), Publisher: &recorder{}, AdminToken: "admin", Gatherer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The routes the handler mounts are exactly the operations
// docs/openapi.yaml describes, but for those webhook-bridge adds beside
// it, with the same path parameters.
func TestRoutesMatchOpenAPI(t *testing.T) {
	ops, err := openapitest.Operations()
	if err != nil {
		t.Fatal(err)
	}
	problems, undescribed, unmounted := openapitest.Compare(ops, fullHandler(t).Patterns())
	for _, p := range problems {
		t.Error(p)
	}
	if len(undescribed) > 0 {
		t.Errorf("routes mounted but not in docs/openapi.yaml: %q", undescribed)
	}
	// Mounted by cmd/webhook-bridge, not by this package.
	beside := []string{"GET /ui", "GET /ui/", "POST /demo/receiver"}
	if !slices.Equal(unmounted, beside) {
		t.Errorf("operations in docs/openapi.yaml not mounted by webhookhttp: %q, want only %q", unmounted, beside)
	}
	// What a caller mounts is recorded too.
	h := fullHandler(t)
	h.Handle("GET /extra", http.NotFoundHandler())
	if _, undescribed, _ := openapitest.Compare(ops, h.Patterns()); !slices.Equal(undescribed, []string{"GET /extra"}) {
		t.Errorf("a route added with Handle: undescribed = %q, want [GET /extra]", undescribed)
	}
}

// A method a described path does not take is 405 with Allow naming
// exactly the methods the description gives it (and HEAD with GET).
func TestAllowMatchesOpenAPI(t *testing.T) {
	ops, err := openapitest.Operations()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(fullHandler(t))
	defer ts.Close()
	// A path's methods are those of every described path it matches:
	// POST /v1/subscriptions/check, and GET, PUT and DELETE of the
	// subscription whose id is "check".
	matches := func(template, path string) bool {
		t, p := strings.Split(template, "/"), strings.Split(path, "/")
		if len(t) != len(p) {
			return false
		}
		for i := range t {
			if t[i] != p[i] && !strings.HasPrefix(t[i], "{") {
				return false
			}
		}
		return true
	}
	paths := map[string]bool{}
	for _, o := range ops {
		paths[o.Path] = true
	}
	for path := range paths {
		if path == "/ui" || path == "/ui/" || path == "/demo/receiver" {
			continue
		}
		concrete := strings.ReplaceAll(path, "{id}", "some-id")
		var methods []string
		for _, o := range ops {
			if matches(o.Path, concrete) {
				methods = append(methods, o.Method)
				if o.Method == http.MethodGet {
					methods = append(methods, http.MethodHead)
				}
			}
		}
		req, _ := http.NewRequest("PATCH", ts.URL+concrete, nil)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("PATCH %s: %d %s, want 405", concrete, resp.StatusCode, body)
			continue
		}
		problem(t, 405, string(body), resp.Header.Get("Content-Type"))
		var allow []string
		for _, m := range strings.Split(resp.Header.Get("Allow"), ",") {
			allow = append(allow, strings.TrimSpace(m))
		}
		slices.Sort(allow)
		slices.Sort(methods)
		if !slices.Equal(allow, methods) {
			t.Errorf("PATCH %s: Allow %q, want the described %q", concrete, allow, methods)
		}
	}
}

// The description is served as it is in docs/, without a token even
// when the admin API has one, as YAML and as the same document in JSON.
func TestServesOpenAPI(t *testing.T) {
	ts := httptest.NewServer(fullHandler(t))
	defer ts.Close()
	status, body, ct := call(t, ts, "GET", "/openapi.yaml", "", "")
	if status != 200 || ct != "application/yaml" || body != string(docs.OpenAPI()) {
		t.Errorf("GET /openapi.yaml: %d %s, %d bytes; want 200 application/yaml with docs/openapi.yaml", status, ct, len(body))
	}
	if !strings.HasPrefix(body, "openapi: 3.1.0\n") {
		t.Errorf("GET /openapi.yaml starts %q, want openapi: 3.1.0", body[:min(40, len(body))])
	}
	status, body, ct = call(t, ts, "GET", "/openapi.json", "", "")
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(bytes.NewReader([]byte(body))).Decode(&doc); status != 200 || ct != "application/json" || err != nil {
		t.Fatalf("GET /openapi.json: %d %s %v", status, ct, err)
	}
	ops, _ := openapitest.Operations()
	paths := map[string]bool{}
	for _, o := range ops {
		paths[o.Path] = true
	}
	if doc.OpenAPI != "3.1.0" || len(doc.Paths) != len(paths) {
		t.Errorf("GET /openapi.json: openapi %q with %d paths, want 3.1.0 with %d", doc.OpenAPI, len(doc.Paths), len(paths))
	}
}

// A subscription created is where Location says.
func TestCreateSubscriptionLocation(t *testing.T) {
	ts := httptest.NewServer(fullHandler(t))
	defer ts.Close()
	req, _ := http.NewRequest("POST", ts.URL+"/v1/subscriptions", strings.NewReader(`{"id": "a.b-c", "topic": "*", "url": "http://127.0.0.1:1/x"}`))
	req.Header.Set("Authorization", "Bearer admin")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 201 || loc != "/v1/subscriptions/a.b-c" {
		t.Fatalf("create: %d, Location %q; want 201 at /v1/subscriptions/a.b-c", resp.StatusCode, loc)
	}
	if status, body, _ := call(t, ts, "GET", loc, "admin", ""); status != 200 || !strings.Contains(body, `"id":"a.b-c"`) {
		t.Errorf("GET %s: %d %s", loc, status, body)
	}
}

// The description's enums are the values the code knows: a value added
// to one must be added to the other.
func TestOpenAPIEnums(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Enum       []string `yaml:"enum"`
				Properties map[string]struct {
					Enum []string `yaml:"enum"`
					Not  struct {
						Enum []string `yaml:"enum"`
					} `yaml:"not"`
				} `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(docs.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc.Components.Schemas
	var outcomes, states []string
	for _, o := range webhook.Outcomes {
		outcomes = append(outcomes, string(o))
	}
	for _, s := range []webhook.HealthState{webhook.StateDisabled, webhook.StateCircuitOpen, webhook.StateFailing, webhook.StateRateLimited, webhook.StateHealthy} {
		states = append(states, string(s))
	}
	kinds := []string{string(webhook.KindExhausted), string(webhook.KindGone), string(webhook.KindUndeliverable), string(webhook.KindOrphaned), string(webhook.KindUnhandled)}
	for _, c := range []struct {
		name      string
		described []string
		known     []string
	}{
		{"Outcome", schemas["Outcome"].Enum, outcomes},
		{"DeadLetterKind", schemas["DeadLetterKind"].Enum, kinds},
		{"Health.state", schemas["Health"].Properties["state"].Enum, states},
		{"Subscription.signing", schemas["SubscriptionInput"].Properties["signing"].Enum, []string{webhookhttp.SigningEd25519}},
		{"IncomingEvent.name's reserved", schemas["IncomingEvent"].Properties["name"].Not.Enum, []string{string(webhook.RetryEventName), string(webhook.RecoverEventName)}},
	} {
		d, k := slices.Sorted(slices.Values(c.described)), slices.Sorted(slices.Values(c.known))
		if !slices.Equal(d, k) {
			t.Errorf("%s: docs/openapi.yaml has %q, the code %q", c.name, d, k)
		}
	}
	// Each kind is refused or taken by GET /v1/dlq as the description says.
	ts := httptest.NewServer(fullHandler(t))
	defer ts.Close()
	for _, k := range kinds {
		if status, body, _ := call(t, ts, "GET", "/v1/dlq?kind="+k, "admin", ""); status != 200 {
			t.Errorf("GET /v1/dlq?kind=%s: %d %s, want 200", k, status, body)
		}
	}
	if status, body, _ := call(t, ts, "GET", "/v1/dlq?kind=lost", "admin", ""); status != 400 {
		t.Errorf("GET /v1/dlq?kind=lost: %d %s, want 400", status, body)
	}
}

// An id posted while another request is emitting it is 409 with
// Retry-After, as described: the client knows to post again.
func TestIngestBusyRetryAfter(t *testing.T) {
	pub := &blockingPublisher{next: &recorder{}, entered: make(chan struct{}), release: make(chan struct{})}
	ts, _ := api(t, webhookhttp.Config{Publisher: pub})
	first := make(chan int, 1)
	go func() {
		resp, err := ts.Client().Post(ts.URL+"/v1/events", "application/json", strings.NewReader(`{"name": "a", "payload": 1, "id": "busy-1"}`))
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	select {
	case <-pub.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request never reached Emit")
	}
	resp, err := ts.Client().Post(ts.URL+"/v1/events", "application/json", strings.NewReader(`{"name": "a", "payload": 1, "id": "busy-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	close(pub.release)
	if resp.StatusCode != http.StatusConflict || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("the same id while it is emitted: %d, Retry-After %q; want 409 with Retry-After 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	problem(t, http.StatusConflict, string(body), resp.Header.Get("Content-Type"))
	if status := <-first; status != http.StatusAccepted {
		t.Errorf("the first request: %d, want 202", status)
	}
}

// The admin API creates no subscription "check": its path is the check
// endpoint's, where OpenAPI tooling would never look for a subscription.
func TestCreateSubscriptionCheckIDReserved(t *testing.T) {
	ts := httptest.NewServer(fullHandler(t))
	defer ts.Close()
	status, body, ct := call(t, ts, "POST", "/v1/subscriptions", "admin", `{"id": "check", "topic": "*", "url": "http://127.0.0.1:1/x"}`)
	if p := problem(t, status, body, ct); status != 400 || !strings.Contains(p.Error, "reserved") {
		t.Errorf("create id check: %d %s, want 400 saying it is reserved", status, body)
	}
	if status, body, _ := call(t, ts, "GET", "/v1/subscriptions/check", "admin", ""); status != 404 {
		t.Errorf("GET /v1/subscriptions/check after the refusal: %d %s, want 404", status, body)
	}
}
