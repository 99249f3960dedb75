package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchyard-go/switchyard/webhook"
)

// metrics is the bridge's Prometheus instrumentation and its
// webhook.Observer. Labels hold subscription IDs and outcomes, never
// URLs or secrets.
type metrics struct {
	received   prometheus.Counter
	deliveries *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	retries    *prometheus.CounterVec
	dead       *prometheus.CounterVec
	filters    *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry, lag func(context.Context) (int64, error)) *metrics {
	m := &metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhook_bridge_events_received_total", Help: "Events accepted by POST /v1/events.",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_bridge_deliveries_total", Help: "Delivery attempts by subscription and outcome (delivered, failed, gone, dry_run, deferred).",
		}, []string{"subscription", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "webhook_bridge_delivery_duration_seconds", Help: "Time from request to response headers, per subscription.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"subscription"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_bridge_retries_scheduled_total", Help: "Retries scheduled after failed deliveries.",
		}, []string{"subscription"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_bridge_dead_letters_total", Help: "Deliveries given up on.",
		}, []string{"subscription"}),
		filters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_bridge_filter_errors_total", Help: "Filters that failed at run time (counted as no match).",
		}, []string{"subscription"}),
	}
	reg.MustRegister(m.received, m.deliveries, m.latency, m.retries, m.dead, m.filters,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if lag != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhook_bridge_consumer_lag", Help: "Entries of the stream not yet delivered to the group or not yet acknowledged (Redis).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			n, err := lag(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	}
	return m
}

func (m *metrics) Delivery(sub string, out webhook.Outcome, _ int, took time.Duration) {
	m.deliveries.WithLabelValues(sub, string(out)).Inc()
	if out == webhook.Delivered || out == webhook.Failed || out == webhook.Gone {
		m.latency.WithLabelValues(sub).Observe(took.Seconds())
	}
}

func (m *metrics) RetryScheduled(sub string, _ int, _ time.Duration) {
	m.retries.WithLabelValues(sub).Inc()
}

func (m *metrics) DeadLettered(sub string) { m.dead.WithLabelValues(sub).Inc() }

func (m *metrics) FilterFailed(sub string) { m.filters.WithLabelValues(sub).Inc() }
