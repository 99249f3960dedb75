package webhookhttp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// adv6Disables counts the subscriptions a bridge disabled.
type adv6Disables struct {
	webhook.NopObserver
	mu  sync.Mutex
	ids []string
}

func (o *adv6Disables) SubscriptionDisabled(id string) {
	o.mu.Lock()
	o.ids = append(o.ids, id)
	o.mu.Unlock()
}

func (o *adv6Disables) got() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.ids...)
}

// TestAdv6TwoReplicasDisableOnceAndNeverTheOneThatSometimesSucceeds: two
// replicas share the subscriptions, their health and the disabled set in
// one Redis. A subscription whose every delivery fails is disabled once,
// by one replica, with one webhook.subscription.disabled event; one that
// succeeds now and then is never disabled; enabling the first starts its
// health afresh, so that one more failure does not disable it again.
func TestAdv6TwoReplicasDisableOnceAndNeverTheOneThatSometimesSucceeds(t *testing.T) {
	const disableAfter = 300 * time.Millisecond
	failing := httpsink.New(t, httpsink.Status(http.StatusInternalServerError))
	var n atomic.Int64
	sometimes := httpsink.New(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		if n.Add(1)%3 != 0 {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	notify := httpsink.New(t, nil)
	subs := []webhook.Subscription{
		{ID: "fail", Topic: "t", URL: failing.URL},
		{ID: "sometimes", Topic: "t", URL: sometimes.URL},
		{ID: "notify", Topic: string(webhook.SubscriptionDisabledEvent), URL: notify.URL},
	}
	c := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = c.Close() })
	key := "{" + t.Name() + "}"
	health, err := webhook.NewRedisHealth(webhook.RedisHealthConfig{Client: c, Prefix: key + ":health"})
	if err != nil {
		t.Fatal(err)
	}
	store := webhookhttp.RedisStore{Client: c, Key: key + ":subs"}
	type replica struct {
		broker *memory.Broker
		bridge *webhook.Bridge
		h      *webhookhttp.Handler
		obs    *adv6Disables
		done   chan struct{}
	}
	var rs []*replica
	for i := 0; i < 2; i++ {
		r := &replica{broker: memory.NewBroker(memory.Options{}), obs: &adv6Disables{}, done: make(chan struct{})}
		t.Cleanup(func() { _ = r.broker.Close() })
		sub, err := r.broker.NewSubscriber(memory.SubscriberConfig{Group: "g", Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		r.bridge, err = webhook.New(webhook.Config{Subscriber: sub, Publisher: r.broker, Health: health, DisableAfter: disableAfter,
			Observer: r.obs, Retry: webhook.RetryPolicy{MaxAttempts: 1, Schedule: []time.Duration{time.Millisecond}},
			Circuit: webhook.CircuitConfig{Failures: 1 << 30, Cooldown: time.Millisecond},
			Disable: func(ctx context.Context, id, reason string) (bool, error) { return r.h.Disable(ctx, id, reason) }})
		if err != nil {
			t.Fatal(err)
		}
		r.h, err = webhookhttp.New(webhookhttp.Config{Bridge: r.bridge, Publisher: &recorder{}, Store: store, ReadOnly: subs, AdminToken: "tok"})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.h.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		go func() { defer close(r.done); r.bridge.Run(context.Background()) }()
		t.Cleanup(func() { _ = r.bridge.Close(); <-r.done })
		rs = append(rs, r)
	}
	state := func(r *replica, id string) webhook.HealthState {
		hs, err := r.bridge.Health(context.Background(), id)
		if err != nil || len(hs) != 1 {
			t.Fatalf("Health(%s) = %v, %v", id, hs, err)
		}
		return hs[0].State
	}
	// Events go to both replicas until both see "fail" disabled, and for
	// three times disable_after at least, so that "sometimes" has had
	// every chance to be disabled wrongly.
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, r := range rs {
			if err := r.h.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := r.broker.Emit(context.Background(), pubsub.NewEvent(context.Background(), "t", []byte(`{}`))); err != nil {
				t.Fatal(err)
			}
		}
		if state(rs[0], "fail") == webhook.StateDisabled && state(rs[1], "fail") == webhook.StateDisabled && time.Since(start) > 3*disableAfter {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: fail is %s and %s, want disabled on both", time.Since(start), state(rs[0], "fail"), state(rs[1], "fail"))
		}
		<-tick.C
	}
	for _, r := range rs {
		if s := state(r, "sometimes"); s == webhook.StateDisabled {
			t.Errorf("a subscription that succeeds every third delivery was disabled")
		}
	}
	hits := notify.WaitFor(t, 1, 10*time.Second)
	var notice webhook.DisabledNotice
	if err := json.Unmarshal(hits[0].Body, &notice); err != nil || notice.SubscriptionID != "fail" || notice.ConsecutiveFailures < 1 {
		t.Errorf("the notice: %s (%v)", hits[0].Body, err)
	}
	// Enabling it starts it afresh.
	ts, _ := api(t, webhookhttp.Config{Bridge: rs[0].bridge, Store: store, ReadOnly: subs, AdminToken: "tok"})
	if status, body, _ := call(t, ts, http.MethodPost, "/v1/subscriptions/fail/enable", "tok", ""); status != http.StatusOK {
		t.Fatalf("enable: %d %s", status, body)
	}
	for _, r := range rs {
		_ = r.bridge.Close()
		<-r.done
	}
	var all []string
	for _, r := range rs {
		all = append(all, r.obs.got()...)
	}
	if len(all) != 1 || all[0] != "fail" {
		t.Errorf("the replicas disabled %v, want fail once", all)
	}
	if got := len(notify.Hits()); got != 1 {
		t.Errorf("%d webhook.subscription.disabled events delivered, want 1", got)
	}
	st, err := health.Stats(context.Background(), time.Now(), "fail")
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := st["fail"]; ok && (s.ConsecutiveFailures != 0 || !s.FailingSince.IsZero()) {
		t.Errorf("after enable, the health of fail: %+v, want it afresh", s)
	}
}

// TestAdv6DisableWithoutABody: the reason is optional, and so is the body
// that carries it.
func TestAdv6DisableWithoutABody(t *testing.T) {
	sub := webhook.Subscription{ID: "s", Topic: "t", URL: "http://127.0.0.1:1/"}
	b, _ := bridgeOn(t, webhook.Config{})
	ts, _ := api(t, webhookhttp.Config{Bridge: b, Store: webhookhttp.NewMemoryStore(), AdminToken: "tok", ReadOnly: []webhook.Subscription{sub}})
	status, body, _ := call(t, ts, http.MethodPost, "/v1/subscriptions/s/disable", "tok", "")
	if v := view(t, status, body); !v.Disabled || v.DisabledReason != "disabled by an operator" {
		t.Errorf("disabled without a body: %+v", v)
	}
	status, body, _ = call(t, ts, http.MethodPost, "/v1/subscriptions/s/enable", "tok", "")
	if v := view(t, status, body); v.Disabled {
		t.Errorf("enabled without a body: %+v", v)
	}
}
