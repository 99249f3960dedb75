package webhookhttp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// The metrics count what the bridge reports, by the documented labels,
// and pass Prometheus' own linter.
func TestMetricsCountAndLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	count := func(context.Context) (int64, error) { return 7, nil }
	m := webhookhttp.NewMetrics(reg, webhookhttp.MetricsConfig{Lag: count, Unhandled: count, DeadLetters: &webhook.MemoryDeadLetters{}})
	var obs webhook.Observer = m
	obs.EventConsumed(2, 1)
	obs.EventConsumed(0, 3)
	obs.EventConsumed(0, 0)
	obs.EventConsumed(0, 0)
	obs.Delivery("s", webhook.Delivered, 200, 3*time.Millisecond)
	obs.DeadLettered("s", webhook.KindGone)
	obs.DeadLettered("s", webhook.KindUndeliverable)
	obs.DeadLettered("s", webhook.KindUndeliverable)
	obs.FilterFailed("s")
	obs.RetryScheduled("s", 2, time.Second)

	want := `
# HELP webhook_bridge_events_consumed_total Events the bridge consumed (retries excluded), by result: matched (delivered to at least one subscription), filtered_out (a subscription's topic matched but every such filter said no), unmatched (no subscription's topic).
# TYPE webhook_bridge_events_consumed_total counter
webhook_bridge_events_consumed_total{result="filtered_out"} 1
webhook_bridge_events_consumed_total{result="matched"} 1
webhook_bridge_events_consumed_total{result="unmatched"} 2
# HELP webhook_bridge_dead_letters_total Deliveries given up on, by subscription and kind (exhausted, gone, undeliverable, orphaned).
# TYPE webhook_bridge_dead_letters_total counter
webhook_bridge_dead_letters_total{kind="gone",subscription="s"} 1
webhook_bridge_dead_letters_total{kind="undeliverable",subscription="s"} 2
# HELP webhook_bridge_unhandled_events_stored ` + unhandledHelp(t, reg) + `
# TYPE webhook_bridge_unhandled_events_stored gauge
webhook_bridge_unhandled_events_stored 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"webhook_bridge_events_consumed_total", "webhook_bridge_dead_letters_total", "webhook_bridge_unhandled_events_stored"); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func unhandledHelp(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "webhook_bridge_unhandled_events_stored" {
			return mf.GetHelp()
		}
	}
	t.Fatal("no webhook_bridge_unhandled_events_stored")
	return ""
}
