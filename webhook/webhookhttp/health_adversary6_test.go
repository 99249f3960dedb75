package webhookhttp_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// TestAdv6ASubscriptionMadeAgainStartsAfresh: a subscription removed
// while a delivery to it was failing leaves that failure counted after its
// health was forgotten; made again with the same id, long after, its first
// failure must not disable it for the failures of the one removed.
func TestAdv6ASubscriptionMadeAgainStartsAfresh(t *testing.T) {
	const disableAfter = 200 * time.Millisecond
	release := make(chan struct{})
	recv := httpsink.New(t, func(n int, r *http.Request, w http.ResponseWriter) {
		if n == 1 {
			<-release // the first delivery is in flight while its subscription is removed
		}
		w.WriteHeader(http.StatusInternalServerError)
	})
	health := &webhook.MemoryHealth{}
	log, _ := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	obs := &adv6Logged{written: make(chan int, 16)}
	b, broker := bridgeOn(t, webhook.Config{Health: health, AttemptLog: log, DisableAfter: disableAfter, Observer: obs,
		Retry: webhook.RetryPolicy{MaxAttempts: 1, Schedule: []time.Duration{time.Millisecond}}})
	done := make(chan struct{})
	go func() { defer close(done); b.Run(context.Background()) }()
	t.Cleanup(func() { _ = b.Close(); <-done })
	ts, _ := api(t, webhookhttp.Config{Bridge: b, Store: webhookhttp.NewMemoryStore(), AdminToken: "tok"})
	create := func() {
		t.Helper()
		if status, body, _ := call(t, ts, http.MethodPost, "/v1/subscriptions", "tok", `{"id": "acme", "topic": "t", "url": "`+recv.URL+`"}`); status != http.StatusCreated {
			t.Fatalf("create: %d %s", status, body)
		}
	}
	emit := func() {
		t.Helper()
		if err := broker.Emit(context.Background(), pubsub.NewEvent(context.Background(), "t", []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
	}
	logged := func(what string) {
		t.Helper()
		select {
		case <-obs.written:
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	create()
	emit()
	recv.WaitFor(t, 1, 10*time.Second)
	if status, body, _ := call(t, ts, http.MethodDelete, "/v1/subscriptions/acme", "tok", ""); status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, body)
	}
	close(release)
	logged("the failure in flight counted")
	// Time passes: disable_after stands for days here.
	<-time.After(2 * disableAfter)

	create()
	emit()
	// The recorder decides on disabling before it writes the log.
	logged("the new subscription's first attempt")
	hs, err := b.Health(context.Background(), "acme")
	if err != nil || len(hs) != 1 {
		t.Fatal(hs, err)
	}
	if hs[0].State == webhook.StateDisabled || hs[0].ConsecutiveFailures != 1 {
		t.Errorf("made again, after its first failure: %+v; want it failing once, not disabled for the failures of the one removed", hs[0])
	}
}

// adv6Logged tells of each batch the delivery log wrote.
type adv6Logged struct {
	webhook.NopObserver
	written chan int
}

func (o *adv6Logged) AttemptsLogged(n int, _ error) { o.written <- n }
