package webhookhttp_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

const (
	adminToken = "admin-token-for-the-tests"
	secretA    = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3" // 24 bytes
	secretB    = "whsec_c2Vjb25kLXNlY3JldC0wMTIzNDU2Nzg5YWJj"
)

// A subscription read with GET and sent back unchanged with PUT replaces
// it with itself, secrets kept; listings never show a secret.
func TestSubscriptionRoundTrips(t *testing.T) {
	bridge := newBridge(t)
	ts, _ := api(t, webhookhttp.Config{Bridge: bridge, AdminToken: adminToken,
		ReadOnly: []webhook.Subscription{{ID: "from-config", Topic: "t", URL: "http://127.0.0.1:1/c"}}})
	create := `{"id": "s1", "topic": "order.created", "filter": "data.total > 100", "url": "http://127.0.0.1:1/hook",
		"secret": ["` + secretA + `", "` + secretB + `"], "headers": {"X-Tenant": "acme"}, "timeout": "3s", "max_attempts": 4}`
	status, body, _ := call(t, ts, http.MethodPost, "/v1/subscriptions", adminToken, create)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	status, got, _ := call(t, ts, http.MethodGet, "/v1/subscriptions/s1", adminToken, "")
	if status != http.StatusOK || strings.Contains(got, "whsec_") || strings.Contains(got, "MDEy") {
		t.Fatalf("get: %d %s", status, got)
	}
	var v webhookhttp.SubscriptionView
	if err := json.Unmarshal([]byte(got), &v); err != nil || v.SecretCount != 2 || v.Source != "api" || time.Duration(v.Timeout) != 3*time.Second {
		t.Fatalf("view %s: %v", got, err)
	}
	status, body, _ = call(t, ts, http.MethodPut, "/v1/subscriptions/s1", adminToken, got)
	if status != http.StatusOK || body != got {
		t.Errorf("PUT of the GET: %d %s, want 200 and the same view %s", status, body, got)
	}
	for _, s := range bridge.Subscriptions() {
		if s.ID == "s1" && len(s.Secrets) != 2 {
			t.Errorf("secrets after the round trip: %d", len(s.Secrets))
		}
	}
	// Every listed subscription round-trips the same way.
	_, list, _ := call(t, ts, http.MethodGet, "/v1/subscriptions", adminToken, "")
	var all struct {
		Subscriptions []json.RawMessage `json:"subscriptions"`
	}
	if err := json.Unmarshal([]byte(list), &all); err != nil || len(all.Subscriptions) != 2 {
		t.Fatalf("list %s: %v", list, err)
	}
	status, body, ct := call(t, ts, http.MethodPut, "/v1/subscriptions/from-config", adminToken, string(all.Subscriptions[0]))
	if p := problem(t, status, body, ct); status != http.StatusConflict || !strings.Contains(p.Error, "config file") {
		t.Errorf("PUT of a config subscription: %d %s", status, body)
	}
	// Removing the secrets is explicit.
	status, body, _ = call(t, ts, http.MethodPut, "/v1/subscriptions/s1", adminToken, strings.Replace(got, `"secret_count":2`, `"secret":[]`, 1))
	if status != http.StatusOK || !strings.Contains(body, `"secret_count":0`) {
		t.Errorf(`PUT with "secret": []: %d %s`, status, body)
	}
}

// The admin API refuses what config load refuses: short secrets, header
// names the bridge owns or that are not tokens, bad header values.
func TestAdminRefusesSubscriptionsTheBridgeCannotHonour(t *testing.T) {
	ts, _ := api(t, webhookhttp.Config{AdminToken: adminToken})
	for _, c := range []struct{ extra, says string }{
		{`"secret": "whsec_c2hvcnQ="`, "secret"},
		{`"headers": {"ce-Bad_Ext": "v"}`, "header"},
		{`"headers": {"Webhook-Id": "v"}`, "header"},
		{`"headers": {"Content-Type": "text/plain"}`, "header"},
		{`"headers": {"Bad Name": "v"}`, "header"},
		{`"headers": {"X-Ok": "a\r\nb"}`, "header"},
	} {
		status, body, ct := call(t, ts, http.MethodPost, "/v1/subscriptions", adminToken,
			`{"id": "s", "topic": "t", "url": "http://127.0.0.1:1/", `+c.extra+`}`)
		if p := problem(t, status, body, ct); status != http.StatusBadRequest || !strings.Contains(p.Error, c.says) {
			t.Errorf("%s: %d %s, want 400 naming the %s", c.extra, status, body, c.says)
		}
	}
}

// GET /v1/subscriptions pages by id with a cursor; a walk returns every
// subscription once, in order.
func TestSubscriptionListingPages(t *testing.T) {
	var readOnly []webhook.Subscription
	for i := range 250 {
		readOnly = append(readOnly, webhook.Subscription{ID: fmt.Sprintf("sub-%03d", i), Topic: "t", URL: "http://127.0.0.1:1/"})
	}
	ts, _ := api(t, webhookhttp.Config{AdminToken: adminToken, ReadOnly: readOnly})
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		status, body, _ := call(t, ts, http.MethodGet, "/v1/subscriptions?limit=60&cursor="+cursor, adminToken, "")
		var page webhookhttp.SubscriptionPage
		if err := json.Unmarshal([]byte(body), &page); status != 200 || err != nil || pages > 10 {
			t.Fatalf("page %d: %d %s", pages, status, body)
		}
		for _, v := range page.Subscriptions {
			got = append(got, v.ID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if len(got) != 250 || got[0] != "sub-000" || got[249] != "sub-249" || !slices.IsSorted(got) {
		t.Errorf("walk returned %d subscriptions: %v", len(got), got)
	}
	if status, body, _ := call(t, ts, http.MethodGet, "/v1/subscriptions", adminToken, ""); status != 200 || strings.Count(body, `"id"`) != 100 || !strings.Contains(body, `"next":"sub-099"`) {
		t.Errorf("default page: %d %.200s", status, body)
	}
	for _, bad := range []string{"0", "1001", "x"} {
		if status, _, _ := call(t, ts, http.MethodGet, "/v1/subscriptions?limit="+bad, adminToken, ""); status != http.StatusBadRequest {
			t.Errorf("limit=%s: %d, want 400", bad, status)
		}
	}
}

// A subscription's rate_limit is taken, shown and sent back through the
// admin API; a bad one is refused with 400 naming the subscription.
func TestSubscriptionRateLimitThroughTheAPI(t *testing.T) {
	bridge := newBridge(t)
	ts, _ := api(t, webhookhttp.Config{Bridge: bridge, AdminToken: adminToken})
	status, body, _ := call(t, ts, http.MethodPost, "/v1/subscriptions", adminToken,
		`{"id": "s1", "topic": "t", "url": "http://127.0.0.1:1/hook", "rate_limit": {"per_second": 20, "burst": 5}}`)
	if status != http.StatusCreated || !strings.Contains(body, `"rate_limit":{"per_second":20,"burst":5}`) {
		t.Fatalf("create: %d %s", status, body)
	}
	if s := bridge.Subscriptions(); len(s) != 1 || s[0].RateLimit == nil || *s[0].RateLimit != (webhook.RateLimit{PerSecond: 20, Burst: 5}) {
		t.Fatalf("in the bridge: %+v", s)
	}
	for _, bad := range []string{`{"per_second": 0}`, `{"per_second": 5, "burst": -1}`, `{"per_second": 5, "per_minute": 1}`} {
		status, body, _ = call(t, ts, http.MethodPost, "/v1/subscriptions", adminToken,
			`{"id": "s2", "topic": "t", "url": "http://127.0.0.1:1/hook", "rate_limit": `+bad+`}`)
		if status != http.StatusBadRequest || !strings.Contains(body, "rate_limit") && !strings.Contains(body, "per_minute") {
			t.Errorf("rate_limit %s: %d %s, want 400 naming it", bad, status, body)
		}
	}
}
