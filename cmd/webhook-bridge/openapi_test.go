package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-go/switchyard/internal/openapitest"
	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// sidecarAPI returns the API as serve mounts it, with what mountBeside
// adds for cfg.
func sidecarAPI(t *testing.T, cfg *Config) *webhookhttp.Handler {
	t.Helper()
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	bridge, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: broker})
	if err != nil {
		t.Fatal(err)
	}
	api, err := webhookhttp.New(webhookhttp.Config{
		Bridge: bridge, Publisher: broker, AdminToken: cfg.Auth.AdminToken, Gatherer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := mountBeside(api, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return api
}

// With the console and the demo on, the sidecar serves exactly what
// docs/openapi.yaml describes; with both off, all but them.
func TestSidecarRoutesMatchOpenAPI(t *testing.T) {
	ops, err := openapitest.Operations()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{}
	cfg.Auth.AdminToken = "admin"
	cfg.Demo.Enabled = true
	problems, undescribed, unmounted := openapitest.Compare(ops, sidecarAPI(t, cfg).Patterns())
	for _, p := range problems {
		t.Error(p)
	}
	if len(undescribed) > 0 || len(unmounted) > 0 {
		t.Errorf("console and demo on: mounted but not described %q; described but not mounted %q", undescribed, unmounted)
	}
	_, undescribed, unmounted = openapitest.Compare(ops, sidecarAPI(t, &Config{}).Patterns())
	if want := []string{"GET /ui", "GET /ui/", "POST /demo/receiver"}; len(undescribed) > 0 || !slices.Equal(unmounted, want) {
		t.Errorf("console and demo off: undescribed %q, unmounted %q, want none and %q", undescribed, unmounted, want)
	}
}

// The demo receiver's refusals are the API's JSON error shape.
func TestDemoReceiverErrorsAreJSON(t *testing.T) {
	ts := httptest.NewServer(demoReceiver("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", slog.New(slog.DiscardHandler)))
	defer ts.Close()
	for _, c := range []struct {
		name string
		body string
		want int
	}{
		{"bad signature", `{"x":1}`, http.StatusUnauthorized},
		{"too big", strings.Repeat("x", 1<<20+1), http.StatusRequestEntityTooLarge},
	} {
		req, _ := http.NewRequest("POST", ts.URL, strings.NewReader(c.body))
		req.Header.Set("webhook-id", "msg_1")
		req.Header.Set("webhook-timestamp", "1700000000")
		req.Header.Set("webhook-signature", "v1,AAAA")
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p webhookhttp.Problem
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil || resp.StatusCode != c.want || p.Status != c.want || p.Error == "" || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s %q (%v); want %d as {error, status} JSON", c.name, resp.StatusCode, resp.Header.Get("Content-Type"), b, err, c.want)
		}
	}
}
