package webhookhttp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// view decodes a subscription answer.
func view(t *testing.T, status int, body string) webhookhttp.SubscriptionView {
	t.Helper()
	var v webhookhttp.SubscriptionView
	if status != http.StatusOK && status != http.StatusCreated {
		t.Fatalf("answer %d %s", status, body)
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func healthOf(t *testing.T, b *webhook.Bridge, id string) webhook.HealthState {
	t.Helper()
	hs, err := b.Health(context.Background(), id)
	if err != nil || len(hs) != 1 {
		t.Fatalf("Health(%s) = %v, %v", id, hs, err)
	}
	return hs[0].State
}

func TestDisableAndEnableAtRunTime(t *testing.T) {
	for _, store := range []struct {
		name string
		mk   func(t *testing.T) webhookhttp.SubscriptionStore
	}{
		{"memory", func(*testing.T) webhookhttp.SubscriptionStore { return webhookhttp.NewMemoryStore() }},
		{"redis", func(t *testing.T) webhookhttp.SubscriptionStore {
			c := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
			t.Cleanup(func() { _ = c.Close() })
			return webhookhttp.RedisStore{Client: c, Key: "{t}:" + strings.ReplaceAll(t.Name(), "/", "-")}
		}},
	} {
		t.Run(store.name, func(t *testing.T) {
			st := store.mk(t)
			cfgSub := webhook.Subscription{ID: "from-config", Topic: "t", URL: "http://127.0.0.1:1/"}
			offInFile := webhook.Subscription{ID: "off-in-file", Topic: "t", URL: "http://127.0.0.1:1/", Disabled: true}
			b1, _ := bridgeOn(t, webhook.Config{})
			ts, _ := api(t, webhookhttp.Config{Bridge: b1, Store: st, AdminToken: "tok", ReadOnly: []webhook.Subscription{cfgSub, offInFile}})
			// A second replica over the same store.
			b2, _ := bridgeOn(t, webhook.Config{})
			h2, err := webhookhttp.New(webhookhttp.Config{Bridge: b2, Publisher: &recorder{}, Store: st, ReadOnly: []webhook.Subscription{cfgSub, offInFile}})
			if err != nil {
				t.Fatal(err)
			}
			if err := h2.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
			status, body, _ := call(t, ts, http.MethodPost, "/v1/subscriptions", "tok", `{"id": "api", "topic": "t", "url": "http://127.0.0.1:1/"}`)
			view(t, status, body)

			for _, id := range []string{"from-config", "api"} {
				status, body, _ = call(t, ts, http.MethodPost, "/v1/subscriptions/"+id+"/disable", "tok", `{"reason": "maintenance"}`)
				v := view(t, status, body)
				if !v.Disabled || v.DisabledBy != "operator" || v.DisabledReason != "maintenance" || v.DisabledAt == nil {
					t.Errorf("%s after disable: %+v", id, v)
				}
				if err := h2.Sync(context.Background()); err != nil {
					t.Fatal(err)
				}
				for i, b := range []*webhook.Bridge{b1, b2} {
					if s := healthOf(t, b, id); s != webhook.StateDisabled {
						t.Errorf("%s on replica %d: %s, want disabled", id, i+1, s)
					}
				}
			}
			// A view sent back leaves the definition alone.
			_, body, _ = call(t, ts, http.MethodGet, "/v1/subscriptions/api", "tok", "")
			if status, body, _ := call(t, ts, http.MethodPut, "/v1/subscriptions/api", "tok", body); status != http.StatusOK {
				t.Fatalf("PUT of the view: %d %s", status, body)
			}
			for _, id := range []string{"from-config", "api"} {
				status, body, _ = call(t, ts, http.MethodPost, "/v1/subscriptions/"+id+"/enable", "tok", "")
				if v := view(t, status, body); v.Disabled || v.DisabledBy != "" {
					t.Errorf("%s after enable: %+v", id, v)
				}
				if err := h2.Sync(context.Background()); err != nil {
					t.Fatal(err)
				}
				for i, b := range []*webhook.Bridge{b1, b2} {
					if s := healthOf(t, b, id); s != webhook.StateHealthy {
						t.Errorf("%s on replica %d after enable: %s", id, i+1, s)
					}
				}
			}
			status, body, ct := call(t, ts, http.MethodPost, "/v1/subscriptions/off-in-file/enable", "tok", "")
			if p := problem(t, status, body, ct); status != http.StatusConflict || !strings.Contains(p.Error, "config file") {
				t.Errorf("enabling one disabled in the file: %d %s", status, body)
			}
			status, body, ct = call(t, ts, http.MethodPost, "/v1/subscriptions/nope/disable", "tok", "")
			if problem(t, status, body, ct); status != http.StatusNotFound {
				t.Errorf("disabling an unknown one: %d", status)
			}
			status, body, ct = call(t, ts, http.MethodPost, "/v1/subscriptions/api/disable", "tok", `{"reason": 7}`)
			if problem(t, status, body, ct); status != http.StatusBadRequest {
				t.Errorf("a bad body: %d", status)
			}

			// The bridge's own disabling goes through the store too.
			if changed, err := h2.Disable(context.Background(), "api", "every delivery failed"); err != nil || !changed {
				t.Fatalf("Disable = %v, %v", changed, err)
			}
			if changed, _ := h2.Disable(context.Background(), "api", "again"); changed {
				t.Error("disabling twice changed something twice")
			}
			_, body, _ = call(t, ts, http.MethodGet, "/v1/subscriptions/api", "tok", "")
			if v := view(t, http.StatusOK, body); v.DisabledBy != "bridge" || v.DisabledReason != "every delivery failed" {
				t.Errorf("disabled by the bridge: %+v", v)
			}
			// Removed and made again, it starts enabled.
			call(t, ts, http.MethodDelete, "/v1/subscriptions/api", "tok", "")
			status, body, _ = call(t, ts, http.MethodPost, "/v1/subscriptions", "tok", `{"id": "api", "topic": "t", "url": "http://127.0.0.1:1/"}`)
			if v := view(t, status, body); v.Disabled {
				t.Errorf("made again: %+v", v)
			}
		})
	}
}

func TestHealthEndpoints(t *testing.T) {
	subs := []webhook.Subscription{
		{ID: "a", Topic: "t", URL: "http://127.0.0.1:1/"}, {ID: "b", Topic: "t", URL: "http://127.0.0.1:1/", Disabled: true},
	}
	b, _ := bridgeOn(t, webhook.Config{Health: &webhook.MemoryHealth{}, Subscriptions: subs})
	ts, _ := api(t, webhookhttp.Config{Bridge: b, AdminToken: "tok", ReadOnly: subs})
	status, body, _ := call(t, ts, http.MethodGet, "/v1/health?limit=1", "tok", "")
	var page webhookhttp.HealthPage
	if err := json.Unmarshal([]byte(body), &page); status != http.StatusOK || err != nil || len(page.Subscriptions) != 1 || page.Next != "a" {
		t.Fatalf("GET /v1/health?limit=1: %d %s", status, body)
	}
	if s := page.Subscriptions[0]; s.SubscriptionID != "a" || s.State != webhook.StateHealthy || s.SuccessRatio != -1 {
		t.Errorf("a: %+v", s)
	}
	status, body, _ = call(t, ts, http.MethodGet, "/v1/subscriptions/b/health", "tok", "")
	var one webhookhttp.HealthView
	if err := json.Unmarshal([]byte(body), &one); status != http.StatusOK || err != nil || one.State != webhook.StateDisabled {
		t.Errorf("GET /v1/subscriptions/b/health: %d %s", status, body)
	}
	if status, _, _ := call(t, ts, http.MethodGet, "/v1/subscriptions/zz/health", "tok", ""); status != http.StatusNotFound {
		t.Errorf("health of an unknown one: %d", status)
	}
}
