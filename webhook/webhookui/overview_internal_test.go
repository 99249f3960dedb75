package webhookui

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricsAPI answers /metrics with what text holds now.
type metricsAPI struct{ text *string }

func (m metricsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/metrics":
		_, _ = w.Write([]byte(*m.text))
	case "/v1/health":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"subscriptions": [
			{"subscription_id": "ok", "state": "healthy", "succeeded": 5, "failed": 0, "success_ratio": 1},
			{"subscription_id": "bad", "state": "failing", "succeeded": 1, "failed": 9, "success_ratio": 0.1, "last_failure": {"at": "2026-01-02T00:00:00Z", "status": 503}},
			{"subscription_id": "off", "state": "disabled", "succeeded": 0, "failed": 2, "success_ratio": 0}], "next": ""}`))
	default:
		http.NotFound(w, r)
	}
}

func metricsText(consumed, delivered, failed, lag int) string {
	return strings.NewReplacer("C", strconv.Itoa(consumed), "D", strconv.Itoa(delivered), "F", strconv.Itoa(failed), "L", strconv.Itoa(lag)).Replace(`# TYPE webhook_bridge_events_consumed_total counter
webhook_bridge_events_consumed_total{result="matched"} C
webhook_bridge_events_consumed_total{result="unmatched"} 0
# TYPE webhook_bridge_deliveries_total counter
webhook_bridge_deliveries_total{outcome="delivered",subscription="a"} D
webhook_bridge_deliveries_total{outcome="failed",subscription="a"} F
webhook_bridge_deliveries_total{outcome="deferred",subscription="a"} 1000
# TYPE webhook_bridge_consumer_lag gauge
webhook_bridge_consumer_lag L
`)
}

func TestOverviewSamplesRates(t *testing.T) {
	text := metricsText(0, 0, 0, 7)
	c, err := New(Config{API: metricsAPI{&text}, AdminToken: "t", SampleEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.sample(ctx); err != nil {
		t.Fatal(err)
	}
	text = metricsText(300, 90, 10, 42)
	if err := c.sample(ctx); err != nil {
		t.Fatal(err)
	}
	pts := c.series.all()
	pts[0].At = pts[1].At.Add(-10 * time.Second) // as if 10s apart
	rs := ratesOf(pts)
	if len(rs.In) != 1 || rs.In[0] != 30 || rs.Out[0] != 10 || rs.Lag[0] != 42 {
		t.Errorf("rates %+v, want 30 in/s, 10 out/s (deferred not counted), lag 42", rs)
	}
	for range Points + 10 {
		c.series.add(sample{At: time.Now()})
	}
	if n := len(c.series.all()); n != Points {
		t.Errorf("the ring holds %d points, want %d", n, Points)
	}
}

func TestOverviewSortsFailingFirst(t *testing.T) {
	text := metricsText(0, 0, 0, 0)
	c, err := New(Config{API: metricsAPI{&text}, AdminToken: "t", SampleEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest(http.MethodGet, "/ui/", nil)
	ctx := context.WithValue(r.Context(), sessionKey{}, "sid")
	w := &buffer{header: http.Header{}}
	c.overview(w, r.WithContext(ctx))
	body := w.body.String()
	off, bad := strings.Index(body, ">off<"), strings.Index(body, ">bad<")
	if w.status != http.StatusOK || off < 0 || bad < 0 || off > bad || strings.Contains(body, ">ok<") {
		t.Errorf("%d: the failing subscriptions are not listed worst first:\n%s", w.status, body)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil { // twice
		t.Fatal(err)
	}
}

func TestCloseWaitsForTheSampler(t *testing.T) {
	text := metricsText(1, 1, 1, 1)
	c, err := New(Config{API: metricsAPI{&text}, AdminToken: "t", SampleEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	cancel()
	<-done
	_ = c.Close() // goleak (TestMain) checks that no sampler is left
	// A console closed before any request never starts one.
	c2, _ := New(Config{API: metricsAPI{&text}, AdminToken: "t"})
	_ = c2.Close()
	w := &buffer{header: http.Header{}}
	r, _ := http.NewRequest(http.MethodGet, "/ui/login", nil)
	c2.ServeHTTP(w, r)
	if w.status != http.StatusOK {
		t.Errorf("a closed console answers %d", w.status)
	}
}
