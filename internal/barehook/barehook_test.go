package barehook_test

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"

	"github.com/switchyard-go/switchyard/internal/barehook"
	"github.com/switchyard-go/switchyard/webhook"
)

// TestPostSendsTheBridgesRequest checks that the baseline is what it
// claims: a request with the header names of the bridge's delivery, the
// same static values, and a signature that verifies.
func TestPostSendsTheBridgesRequest(t *testing.T) {
	ctx := context.Background()
	body := []byte(`{"tenant":"t1","amount":12.5}`)
	want, err := barehook.BridgeHeaders(ctx, "order.created", body)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *http.Request, 1)
	gotBody := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		gotBody <- b
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, err := barehook.New(ctx, "order.created", body, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Post(ctx, srv.URL, 7, body); err != nil {
		t.Fatal(err)
	}
	r, b := <-got, <-gotBody
	h := r.Header.Clone()
	for _, k := range []string{"Host", "Content-Length", "Accept-Encoding"} {
		delete(h, k)
	}
	if g, w := slices.Sorted(maps.Keys(h)), slices.Sorted(maps.Keys(want)); !slices.Equal(g, w) {
		t.Fatalf("headers %v, the bridge sends %v", g, w)
	}
	for _, k := range []string{"Content-Type", "User-Agent", "Ce-Specversion", "Ce-Type", "Ce-Source", "Webhook-Attempt", "Webhook-Subscription"} {
		if h.Get(k) != want.Get(k) {
			t.Errorf("%s: %q, the bridge sends %q", k, h.Get(k), want.Get(k))
		}
	}
	ts, err := strconv.ParseInt(h.Get("Webhook-Timestamp"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if !webhook.Verify(barehook.Secret, h.Get("Webhook-Id"), ts, b, h.Get("Webhook-Signature")) {
		t.Errorf("signature %q does not verify", h.Get("Webhook-Signature"))
	}
	if string(b) != string(body) {
		t.Errorf("body %q, want %q", b, body)
	}
}
