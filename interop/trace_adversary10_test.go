package interop

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Deliveries of events posted with (valid, garbage, oversized) trace
// headers, with tracing off and on (spans exported to a collector that
// accepts and never answers), verify with the official Standard Webhooks
// Go library and the Svix Go SDK: the traceparent/tracestate headers the
// receiver gets are no part of the signed content.
func TestAdv10TraceHeadersLeaveSignaturesVerifiable(t *testing.T) {
	traceHeaders := []struct{ tp, ts string }{
		{"", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "congo=t61rcWkgMzE"},
		{"garbage", "\xff\xfe"},
		{strings.Repeat("00-", 3000), strings.Repeat("k=v,", 3000)},
	}
	for _, mode := range []string{"off", "on"} {
		t.Run(mode, func(t *testing.T) {
			secret := newSecret(t, 32)
			var mu sync.Mutex
			type got struct {
				header http.Header
				body   []byte
			}
			var hits []got
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				hits = append(hits, got{r.Header.Clone(), b})
				mu.Unlock()
			}))
			t.Cleanup(recv.Close)
			tel := ""
			if mode == "on" {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				var cmu sync.Mutex
				var conns []net.Conn
				t.Cleanup(func() {
					_ = l.Close()
					cmu.Lock()
					defer cmu.Unlock()
					for _, c := range conns {
						_ = c.Close()
					}
				})
				go func() {
					for {
						c, err := l.Accept()
						if err != nil {
							return
						}
						cmu.Lock()
						conns = append(conns, c)
						cmu.Unlock()
					}
				}()
				tel = "telemetry:\n  otlp_endpoint: http://" + l.Addr().String() + "\n"
				t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
			}
			b := startBridge(t, fmt.Sprintf("listen: LISTEN\n%ssubscriptions:\n  - id: s\n    topic: order.created\n    url: %s/hook\n    secret: %s\n", tel, recv.URL, secret))
			for i, h := range traceHeaders {
				req, _ := http.NewRequest(http.MethodPost, "http://"+b.Addr+"/v1/events", strings.NewReader(fmt.Sprintf(`{"name":"order.created","payload":{"i":%d,"s":"\u00e9\u2028"}}`, i)))
				req.Header.Set("Content-Type", "application/json")
				if h.tp != "" {
					req.Header["Traceparent"] = []string{h.tp}
					req.Header["Tracestate"] = []string{h.ts}
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					t.Fatalf("POST #%d: %d", i, resp.StatusCode)
				}
			}
			deadline := time.Now().Add(wait)
			for {
				mu.Lock()
				n := len(hits)
				mu.Unlock()
				if n >= len(traceHeaders) || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond) // polling the receiver with a deadline
			}
			mu.Lock()
			defer mu.Unlock()
			if len(hits) != len(traceHeaders) {
				t.Fatalf("%d deliveries, want %d", len(hits), len(traceHeaders))
			}
			sawTrace := false
			for _, h := range hits {
				if h.header.Get("Traceparent") != "" {
					sawTrace = true
				}
				if err := verifyStandardWebhooks(secret, h.header, h.body); err != nil {
					t.Errorf("standard-webhooks (Go) on %s (traceparent %q): %v", h.body, h.header.Get("Traceparent"), err)
				}
				if err := verifySvix(secret, h.header, h.body); err != nil {
					t.Errorf("svix (Go) on %s: %v", h.body, err)
				}
			}
			if !sawTrace {
				t.Errorf("no delivery carried a traceparent")
			}
		})
	}
}
