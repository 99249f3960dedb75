package webhookhttp_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// What could never become a valid delivery is refused at the door, with
// a reason naming the field, and nothing of the request is emitted.
func TestIngestRefusesWhatCannotBeDelivered(t *testing.T) {
	ts, rec := api(t, webhookhttp.Config{})
	long := strings.Repeat("a", 129)
	for _, c := range []struct{ body, field string }{
		{`{"name": "a", "payload": {}, "correlation_id": "a\nb"}`, "correlation_id"},
		{`{"name": "x\r\nX-Injected: yes", "payload": {}}`, "name"},
		{`{"name": "a", "payload": {}, "id": "a\nb"}`, "id"},
		{`{"name": "a", "payload": {}, "id": "forge.1795385012"}`, "id"},
		{`{"name": "a", "payload": {}, "id": "sw-ünï-id-2"}`, "id"},
		{`{"name": "a", "payload": {}, "id": "with space"}`, "id"},
		{`{"name": "a", "payload": {}, "id": "` + long + `"}`, "id"},
		{`{"name": "` + strings.Repeat("n", 257) + `", "payload": {}}`, "name"},
		{`{"name": "a", "payload": {}, "correlation_id": "` + strings.Repeat("c", 257) + `"}`, "correlation_id"},
		{`{"name": "tab\there", "payload": {}}`, "name"},
		{`{"name": "del\u007f", "payload": {}}`, "name"},
		{`{"name": "c1\u0085", "payload": {}}`, "name"},
		{`{"name": "a"}`, "payload"},
		{`{"payload": {}}`, "name"},
		{`{"name": "switchyard.webhook.retry", "payload": {}}`, "name"},
		{`[{"name": "ok", "payload": 1}, {"name": "a", "payload": 1, "id": "a.b"}]`, "events[1].id"},
		{``, "body"},
		{`   `, "body"},
		{`[]`, "body"},
		{`{"name": "a", "payload": {}, "extra": 1}`, "body"},
	} {
		status, body, ct := call(t, ts, http.MethodPost, "/v1/events", "", c.body)
		if status != http.StatusBadRequest {
			t.Errorf("%.60q: %d %s, want 400", c.body, status, body)
			continue
		}
		if p := problem(t, status, body, ct); !strings.HasPrefix(p.Error, c.field) {
			t.Errorf("%.60q: reason %q does not start with the field %s", c.body, p.Error, c.field)
		}
	}
	if n := len(rec.emitted()); n != 0 {
		t.Errorf("%d events emitted from refused requests", n)
	}

	// What is accepted: every id of the alphabet, non-ASCII names and
	// correlation ids (percent-encoded on delivery), null payloads.
	status, body, _ := call(t, ts, http.MethodPost, "/v1/events", "",
		`[{"name": "commande.créée", "payload": null, "id": "Az09-_", "correlation_id": "réf 100%"}, {"name": "a", "payload": "text"}]`)
	if status != http.StatusAccepted {
		t.Fatalf("valid events: %d %s", status, body)
	}
	evs := rec.emitted()
	if len(evs) != 2 || evs[0].ID != "Az09-_" || string(evs[0].Payload) != "null" || evs[0].Meta.CorrelationID != "réf 100%" || string(evs[1].Payload) != `"text"` {
		t.Errorf("emitted %+v", evs)
	}
	for _, ev := range evs {
		if err := webhook.CheckDeliverable(ev); err != nil {
			t.Errorf("accepted an undeliverable event: %v", err)
		}
	}
}

// Every error answer is {"error", "status"} JSON, whatever produced it.
func TestErrorAnswersShareOneShape(t *testing.T) {
	ts, _ := api(t, webhookhttp.Config{AdminToken: "admin-token-0123456789", JWTSecret: "jwt-secret"})
	big := `{"id": "s", "topic": "t", "url": "http://127.0.0.1:1/", "filter": "` + strings.Repeat("x", 300<<10) + `"}`
	for _, c := range []struct {
		method, path, token, body string
		status                    int
		says                      string
	}{
		{http.MethodGet, "/nope", "", "", 404, "no such endpoint"},
		{http.MethodGet, "/v1/events", "", "", 405, "method GET not allowed"},
		{http.MethodDelete, "/v1/dlq", "admin-token-0123456789", "", 405, "allowed: GET"},
		{http.MethodPost, "/v1/events", "", `{}`, 401, "missing bearer token"},
		{http.MethodGet, "/v1/subscriptions", "", "", 401, "admin token required"},
		{http.MethodPost, "/v1/subscriptions", "admin-token-0123456789", big, 413, "body larger than"},
		{http.MethodPost, "/v1/subscriptions", "admin-token-0123456789", "", 400, "body is empty"},
		{http.MethodPost, "/v1/subscriptions", "admin-token-0123456789", `{"id": "x"`, 400, "body: unexpected EOF"},
		{http.MethodGet, "/v1/subscriptions/missing", "admin-token-0123456789", "", 404, `no subscription "missing"`},
	} {
		status, body, ct := call(t, ts, c.method, c.path, c.token, c.body)
		if status != c.status {
			t.Errorf("%s %s = %d %.200s, want %d", c.method, c.path, status, body, c.status)
			continue
		}
		if p := problem(t, status, body, ct); !strings.Contains(p.Error, c.says) {
			t.Errorf("%s %s: reason %q does not say %q", c.method, c.path, p.Error, c.says)
		}
	}
	ts, _ = api(t, webhookhttp.Config{})
	status, body, ct := call(t, ts, http.MethodGet, "/v1/subscriptions", "", "")
	if p := problem(t, status, body, ct); status != http.StatusForbidden || !strings.Contains(p.Error, "admin API disabled") {
		t.Errorf("admin API without a token = %d %s", status, body)
	}
}

// JWTs without exp never expire: refused unless allowed.
func TestTokensWithoutExpiry(t *testing.T) {
	const secret = "jwt-secret-for-the-test"
	sign := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	noExp := sign(jwt.MapClaims{"sub": "svc"})
	withExp := sign(jwt.MapClaims{"sub": "svc", "exp": time.Now().Add(time.Minute).Unix()})
	expired := sign(jwt.MapClaims{"sub": "svc", "exp": time.Now().Add(-time.Minute).Unix()})
	const ev = `{"name": "a", "payload": 1}`
	for _, c := range []struct {
		allow        bool
		token        string
		status       int
		reasonSubstr string
	}{
		{false, noExp, 401, "exp"}, {false, withExp, 202, ""}, {false, expired, 401, "expired"},
		{true, noExp, 202, ""}, {true, withExp, 202, ""}, {true, expired, 401, "expired"},
	} {
		ts, _ := api(t, webhookhttp.Config{JWTSecret: secret, AllowTokensWithoutExpiry: c.allow})
		status, body, ct := call(t, ts, http.MethodPost, "/v1/events", c.token, ev)
		if status != c.status {
			t.Errorf("allow=%v: %d %s, want %d", c.allow, status, body, c.status)
			continue
		}
		if status == 401 {
			if p := problem(t, status, body, ct); !strings.Contains(p.Error, c.reasonSubstr) {
				t.Errorf("allow=%v: reason %q does not say %q", c.allow, p.Error, c.reasonSubstr)
			}
		}
	}
}

// FuzzPostEvents feeds arbitrary bodies to POST /v1/events: no panic; a
// refusal is 400 or 413 in the one error shape; an acceptance emits only
// events that can be delivered.
func FuzzPostEvents(f *testing.F) {
	for _, seed := range []string{
		`{"name": "a", "payload": {"x": 1}}`,
		`[{"name": "a", "payload": 1}, {"name": "b", "payload": "s", "id": "i", "correlation_id": "c", "dry_run": true}]`,
		`[]`, `{}`, `null`, `[null]`, `{"name": ""}`, `{"name": "a", "payload": }`, `{"name": "a"} trailing`,
		`[{"name": "switchyard.webhook.retry"}]`, "\xff\xfe", `{"name": 7}`, `{"name": "a\u0000", "payload": 1}`,
		`{"name": "a", "payload": 1, "id": "x.y"}`, `{"name": "a", "payload": 1, "id": "dup"}`,
	} {
		f.Add([]byte(seed))
	}
	ts, rec := api(f, webhookhttp.Config{MaxBatch: 5})
	f.Fuzz(func(t *testing.T, body []byte) {
		before := len(rec.emitted())
		status, answer, ct := call(t, ts, http.MethodPost, "/v1/events", "", string(body))
		switch status {
		case http.StatusAccepted, http.StatusOK:
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			problem(t, status, answer, ct)
			if n := len(rec.emitted()); n != before {
				t.Fatalf("refused, yet %d events emitted", n-before)
			}
			return
		default:
			t.Fatalf("status %d: %s", status, answer)
		}
		evs := rec.emitted()[before:]
		if len(evs) > 5 {
			t.Fatalf("accepted %d events, more than max_batch", len(evs))
		}
		for _, ev := range evs {
			if err := webhook.CheckDeliverable(ev); err != nil {
				t.Fatalf("accepted an undeliverable event: %v", err)
			}
			if fmt.Sprint(ev.ID) != webhook.MessageID(ev.ID) {
				t.Fatalf("accepted id %q, which is not its own webhook-id", ev.ID)
			}
		}
	})
}
