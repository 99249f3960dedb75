package webhookhttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// recorder is a Publisher that keeps what it is given; fail makes the
// next Emit fail.
type recorder struct {
	mu     sync.Mutex
	events []pubsub.Event
	fail   int
}

func (r *recorder) Emit(_ context.Context, evs ...pubsub.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("publisher down")
	}
	if err := pubsub.ValidateAll(evs); err != nil {
		return err
	}
	r.events = append(r.events, evs...)
	return nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) emitted() []pubsub.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]pubsub.Event(nil), r.events...)
}

// newBridge returns a bridge on a memory broker, not running.
func newBridge(t testing.TB, subs ...webhook.Subscription) *webhook.Bridge {
	b, _ := bridgeOn(t, webhook.Config{Subscriptions: subs})
	return b
}

// bridgeOn returns a bridge of cfg on a memory broker, and the broker.
func bridgeOn(t testing.TB, cfg webhook.Config) (*webhook.Bridge, *memory.Broker) {
	t.Helper()
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	cfg.Subscriber, cfg.Publisher = sub, broker
	b, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b, broker
}

// api serves a handler over cfg (Bridge and Publisher filled in when
// nil) and returns its server and its publisher.
func api(t testing.TB, cfg webhookhttp.Config) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	if cfg.Bridge == nil {
		cfg.Bridge = newBridge(t)
	}
	if cfg.Publisher == nil {
		cfg.Publisher = rec
	}
	h, err := webhookhttp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, rec
}

// call makes one request and returns the status, the body, and the
// content type.
func call(t testing.TB, ts *httptest.Server, method, path, token, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Content-Type")
}

// problem decodes an error answer, failing unless it is the one shape.
func problem(t testing.TB, status int, body, contentType string) webhookhttp.Problem {
	t.Helper()
	var p webhookhttp.Problem
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || contentType != "application/json" || p.Status != status || p.Error == "" || strings.Contains(p.Error, "\n") {
		t.Errorf("error answer %d %q (%s) is not {error, status} JSON with a one-line reason", status, body, contentType)
	}
	return p
}
