package webhookhttp_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

func TestCheckSubscription(t *testing.T) {
	ts, _ := api(t, webhookhttp.Config{AdminToken: "adm"})
	valid := `{"id": "s1", "topic": "order.created", "url": "https://example.com/hook", "filter": "data.total > 10"}`
	for _, tc := range []struct {
		name, token, body string
		status            int
		want              string
	}{
		{"valid", "adm", valid, http.StatusOK, `{"ok":true}`},
		{"a view sent back", "adm", `{"id": "s1", "topic": "t", "url": "https://example.com/", "source": "api", "secret_count": 1}`, http.StatusOK, `{"ok":true}`},
		{"bad filter", "adm", `{"id": "s1", "topic": "t", "url": "https://example.com/", "filter": "data.total >"}`, http.StatusBadRequest, "filter"},
		{"not bool", "adm", `{"id": "s1", "topic": "t", "url": "https://example.com/", "filter": "1 + 2"}`, http.StatusBadRequest, "filter"},
		{"no url", "adm", `{"id": "s1", "topic": "t"}`, http.StatusBadRequest, "url"},
		{"unknown field", "adm", `{"id": "s1", "topic": "t", "url": "https://example.com/", "fliter": "x"}`, http.StatusBadRequest, "fliter"},
		{"empty", "adm", ``, http.StatusBadRequest, "empty"},
		{"no token", "", valid, http.StatusUnauthorized, "admin token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, ct := call(t, ts, http.MethodPost, "/v1/subscriptions/check", tc.token, tc.body)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("= %d %s, want %d with %q", status, body, tc.status, tc.want)
			}
			if status != http.StatusOK {
				problem(t, status, body, ct)
			}
		})
	}
	// Nothing was stored.
	if status, body, _ := call(t, ts, http.MethodGet, "/v1/subscriptions", "adm", ""); !strings.Contains(body, `"subscriptions":[]`) {
		t.Errorf("GET /v1/subscriptions = %d %s", status, body)
	}
}
