package webhookhttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// adv6Logs are an empty memory log and an empty Redis log.
func adv6Logs(t *testing.T) map[string]webhook.AttemptLog {
	t.Helper()
	m, err := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = c.Close() })
	r, err := webhook.NewRedisAttemptLog(webhook.RedisAttemptLogConfig{Client: c, Prefix: "{" + t.Name() + "}:log"})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]webhook.AttemptLog{"memory": m, "redis": r}
}

// TestAdv6HostileAttemptsComeBackAsValidJSON: IDs with ':' '{' '}' '%',
// unicode and NUL, response bodies of invalid UTF-8 and binary, header
// values with control characters are all answered as valid JSON by
// GET /v1/attempts and GET /v1/events/{id}, found by the IDs they were
// recorded with.
func TestAdv6HostileAttemptsComeBackAsValidJSON(t *testing.T) {
	ids := []string{"a:b", "{x}", "100%", "%7B", "ünï\u2028", "nul\x00here", "sp ace", "e:e:1", "a/b", "?q#f"}
	for name, log := range adv6Logs(t) {
		t.Run(name, func(t *testing.T) {
			var b webhook.AttemptBatch
			for i, id := range ids {
				b.Events = append(b.Events, pubsub.Event{ID: pubsub.ID(id), Name: "t", Payload: []byte{0xff, 0x00, 0xfe}})
				b.Attempts = append(b.Attempts, webhook.Attempt{EventID: pubsub.ID(id), EventName: "t", SubscriptionID: id, Attempt: 1,
					At: time.Now(), Outcome: webhook.Failed, Status: 500 + i,
					ResponseBody:    string([]byte{0xe2, 0x82}) + "\x00\x01\x7f\xff" + strings.Repeat("é", 3)[:5],
					ResponseHeaders: http.Header{"X-Ctl": {"a\r\nb\x00c\x1b[31m"}}, Error: "bad \xff"})
			}
			if err := log.Record(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			bridge, _ := bridgeOn(t, webhook.Config{AttemptLog: log})
			ts, _ := api(t, webhookhttp.Config{Bridge: bridge, AdminToken: "tok"})
			for _, id := range ids {
				for _, path := range []string{
					"/v1/attempts?event_id=" + url.QueryEscape(id),
					"/v1/attempts?subscription_id=" + url.QueryEscape(id),
					"/v1/events/" + url.PathEscape(id),
				} {
					status, body, ct := call(t, ts, http.MethodGet, path, "tok", "")
					if status != http.StatusOK || ct != "application/json" || !json.Valid([]byte(body)) || !utf8.ValidString(body) {
						t.Errorf("GET %s: %d %s %q", path, status, ct, body)
						continue
					}
					var got struct {
						Event    *webhookhttp.EventView    `json:"event"`
						Attempts []webhookhttp.AttemptView `json:"attempts"`
					}
					if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Attempts) != 1 ||
						got.Attempts[0].EventID != id || got.Attempts[0].SubscriptionID != id {
						t.Errorf("GET %s: %s (%v)", path, body, err)
					}
					if strings.HasPrefix(path, "/v1/events/") && (got.Event == nil || got.Event.ID != id) {
						t.Errorf("GET %s: the event: %+v", path, got.Event)
					}
				}
			}
		})
	}
}

// TestAdv6AnEventWithMoreAttemptsThanAPage: GET /v1/events/{id} shows
// 1,000 attempts and says there are more past 1,000, and not at exactly
// 1,000.
func TestAdv6AnEventWithMoreAttemptsThanAPage(t *testing.T) {
	for name, log := range adv6Logs(t) {
		t.Run(name, func(t *testing.T) {
			rec := func(id string, n int) {
				b := webhook.AttemptBatch{Events: []pubsub.Event{{ID: pubsub.ID(id), Name: "t", Payload: []byte(`{}`)}}}
				for i := 0; i < n; i++ {
					b.Attempts = append(b.Attempts, webhook.Attempt{EventID: pubsub.ID(id), SubscriptionID: fmt.Sprint("s", i%3), Attempt: 1, Outcome: webhook.Deferred})
				}
				if err := log.Record(context.Background(), b); err != nil {
					t.Fatal(err)
				}
			}
			rec("many", 1001)
			rec("exact", 1000)
			bridge, _ := bridgeOn(t, webhook.Config{AttemptLog: log})
			ts, _ := api(t, webhookhttp.Config{Bridge: bridge, AdminToken: "tok"})
			for id, more := range map[string]bool{"many": true, "exact": false} {
				status, body, _ := call(t, ts, http.MethodGet, "/v1/events/"+id, "tok", "")
				var got webhookhttp.EventAttempts
				if err := json.Unmarshal([]byte(body), &got); status != 200 || err != nil {
					t.Fatalf("%d %v", status, err)
				}
				seen := map[string]bool{}
				for _, a := range got.Attempts {
					seen[a.ID] = true
				}
				if len(got.Attempts) != 1000 || len(seen) != 1000 || got.More != more {
					t.Errorf("event %s: %d attempts (%d distinct), more %v; want 1000, more %v", id, len(got.Attempts), len(seen), got.More, more)
				}
			}
		})
	}
}
