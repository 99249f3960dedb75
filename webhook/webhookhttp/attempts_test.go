package webhookhttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// loggedAPI serves the admin API over a bridge whose delivery log holds
// 25 attempts: events e0..e4, subscriptions a and b, statuses 200 and 500.
func loggedAPI(t *testing.T) (*httptest.Server, webhook.AttemptLog) {
	t.Helper()
	log, err := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var batch webhook.AttemptBatch
	for i := range 5 {
		batch.Events = append(batch.Events, pubsub.Event{ID: pubsub.ID(fmt.Sprintf("e%d", i)), Name: "order.created", Payload: []byte(`{"n":` + fmt.Sprint(i) + `}`)})
	}
	for i := range 25 {
		a := webhook.Attempt{EventID: pubsub.ID(fmt.Sprintf("e%d", i%5)), EventName: "order.created", SubscriptionID: "a", Attempt: 1,
			At: time.Now(), Duration: 2 * time.Millisecond, Outcome: webhook.Delivered, Status: 200, ResponseBody: "<b>ok</b>"}
		if i%2 == 1 {
			a.SubscriptionID, a.Outcome, a.Status, a.Error = "b", webhook.Failed, 500, "HTTP 500"
		}
		batch.Attempts = append(batch.Attempts, a)
	}
	if err := log.Record(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	b, _ := bridgeOn(t, webhook.Config{AttemptLog: log})
	ts, _ := api(t, webhookhttp.Config{Bridge: b, AdminToken: "tok"})
	return ts, log
}

func TestAttemptsAreQueriedAndPaged(t *testing.T) {
	ts, _ := loggedAPI(t)
	for _, c := range []struct {
		query string
		want  int
	}{
		{"", 25}, {"subscription_id=a", 13}, {"subscription_id=b&outcome=failed", 12}, {"status=500", 12},
		{"event_id=e3", 5}, {"event_id=e3&subscription_id=a", 2}, {"outcome=delivered&status=500", 0},
		{"since=1h", 25}, {"until=1h", 0}, {"since=" + url.QueryEscape(time.Now().Add(time.Minute).Format(time.RFC3339)), 0},
	} {
		var all []webhookhttp.AttemptView
		cursor := ""
		for pages := 0; ; pages++ {
			path := "/v1/attempts?limit=4&" + c.query
			if cursor != "" {
				path += "&cursor=" + url.QueryEscape(cursor)
			}
			status, body, _ := call(t, ts, http.MethodGet, path, "tok", "")
			if status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, status, body)
			}
			var page webhookhttp.AttemptPage
			if err := json.Unmarshal([]byte(body), &page); err != nil || len(page.Attempts) > 4 || page.Attempts == nil {
				t.Fatalf("GET %s: %v, %s", path, err, body)
			}
			all = append(all, page.Attempts...)
			if cursor = page.Next; cursor == "" || pages > 30 {
				break
			}
		}
		if len(all) != c.want {
			t.Errorf("%q: %d attempts, want %d", c.query, len(all), c.want)
		}
		seen := map[string]bool{}
		for _, a := range all {
			if seen[a.ID] {
				t.Errorf("%q: attempt %s repeated", c.query, a.ID)
			}
			seen[a.ID] = true
		}
	}
}

func TestAttemptQueriesNameWhatIsWrong(t *testing.T) {
	ts, _ := loggedAPI(t)
	for q, want := range map[string]string{
		"outcome=lost":      "outcome",
		"status=99":         "status",
		"status=abc":        "status",
		"limit=0":           "limit",
		"limit=1001":        "limit",
		"since=tomorrow":    "since",
		"until=-5m":         "until",
		"cursor=zzz":        "cursor",
		"subscription=a":    "subscription",
		"since=1m&until=2h": "until",
	} {
		status, body, ct := call(t, ts, http.MethodGet, "/v1/attempts?"+q, "tok", "")
		if status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", q, status, body)
			continue
		}
		if p := problem(t, status, body, ct); !strings.Contains(p.Error, want) {
			t.Errorf("%s: %q does not name %s", q, p.Error, want)
		}
	}
	if status, _, _ := call(t, ts, http.MethodGet, "/v1/attempts", "", ""); status != http.StatusUnauthorized {
		t.Errorf("without the admin token: %d, want 401", status)
	}
	if status, _, _ := call(t, ts, http.MethodGet, "/v1/events/e1", "wrong", ""); status != http.StatusUnauthorized {
		t.Errorf("a wrong admin token: %d, want 401", status)
	}
}

func TestAnEventWithItsAttempts(t *testing.T) {
	ts, _ := loggedAPI(t)
	status, body, _ := call(t, ts, http.MethodGet, "/v1/events/e2", "tok", "")
	var got webhookhttp.EventAttempts
	if err := json.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/events/e2: %d %s", status, body)
	}
	if got.Event == nil || got.Event.ID != "e2" || string(got.Event.Payload) != `{"n":2}` || got.Event.PayloadEncoding != "json" {
		t.Errorf("event %+v", got.Event)
	}
	if len(got.Attempts) != 5 || got.More {
		t.Fatalf("%d attempts (more %v), want 5", len(got.Attempts), got.More)
	}
	for _, a := range got.Attempts {
		if a.EventID != "e2" || a.DurationMS != 2 {
			t.Errorf("attempt %+v", a)
		}
	}
	status, body, ct := call(t, ts, http.MethodGet, "/v1/events/nope", "tok", "")
	if p := problem(t, status, body, ct); status != http.StatusNotFound || !strings.Contains(p.Error, "nope") {
		t.Errorf("an unknown event: %d %s", status, body)
	}
	plain, _ := api(t, webhookhttp.Config{AdminToken: "tok"})
	status, body, ct = call(t, plain, http.MethodGet, "/v1/attempts", "tok", "")
	if p := problem(t, status, body, ct); status != http.StatusNotFound || !strings.Contains(p.Error, "delivery log is off") {
		t.Errorf("a bridge without a log: %d %s", status, body)
	}
}

func TestRecoverThroughTheAPI(t *testing.T) {
	log, _ := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	ev := pubsub.Event{ID: "e1", Name: "t", Payload: []byte(`{}`)}
	if err := log.Record(context.Background(), webhook.AttemptBatch{Events: []pubsub.Event{ev}, Attempts: []webhook.Attempt{
		{EventID: "e1", EventName: "t", SubscriptionID: "s", Attempt: 3, At: time.Now(), Outcome: webhook.DeadLettered, Status: 500},
	}}); err != nil {
		t.Fatal(err)
	}
	subs := []webhook.Subscription{{ID: "s", Topic: "t", URL: "http://127.0.0.1:1/"}, {ID: "off", Topic: "t", URL: "http://127.0.0.1:1/", Disabled: true}}
	b, _ := bridgeOn(t, webhook.Config{AttemptLog: log, Subscriptions: subs})
	ts, _ := api(t, webhookhttp.Config{Bridge: b, AdminToken: "tok", ReadOnly: subs})
	for body, want := range map[string]int{
		`{}`: 400, `{"since": "soon"}`: 400, `{"since": "1h", "until": "2h"}`: 400, `{"since": "1h", "x": 1}`: 400,
	} {
		status, resp, ct := call(t, ts, http.MethodPost, "/v1/subscriptions/s/recover", "tok", body)
		if problem(t, status, resp, ct); status != want {
			t.Errorf("%s: %d %s, want %d", body, status, resp, want)
		}
	}
	if status, _, _ := call(t, ts, http.MethodPost, "/v1/subscriptions/off/recover", "tok", `{"since": "1h"}`); status != http.StatusConflict {
		t.Errorf("a disabled subscription: %d, want 409", status)
	}
	if status, _, _ := call(t, ts, http.MethodPost, "/v1/subscriptions/nope/recover", "tok", `{"since": "1h"}`); status != http.StatusNotFound {
		t.Errorf("an unknown subscription: %d, want 404", status)
	}
	status, resp, _ := call(t, ts, http.MethodPost, "/v1/subscriptions/s/recover", "tok", `{"since": "1h"}`)
	var rep webhook.RecoverReport
	if err := json.Unmarshal([]byte(resp), &rep); status != http.StatusOK || err != nil || rep.Scheduled != 1 {
		t.Fatalf("recover: %d %s", status, resp)
	}
	// The bridge's own publisher carries it; the log shows it on its way.
	page, _ := log.Query(context.Background(), webhook.AttemptQuery{EventID: "e1"})
	if len(page.Attempts) != 2 || page.Attempts[0].Outcome != webhook.Deferred || !strings.Contains(page.Attempts[0].Error, "recovery") {
		t.Errorf("the log after recover: %+v", page.Attempts)
	}
}
