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

// scrapeTimeout bounds what a scrape asks Redis.
const scrapeTimeout = time.Second

// newMetrics registers the bridge's metrics in reg: lag, when not nil,
// reads the consumer lag and dead the number of dead letters stored, at
// scrape time.
func newMetrics(reg *prometheus.Registry, lag func(context.Context) (int64, error), dead webhook.DeadLetterStore, unhandled ...func(context.Context) (int64, error)) *metrics {
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
			Name: "webhook_bridge_consumer_lag", Help: "Entries of the stream not yet delivered to the group or not yet acknowledged (Redis); -1 when Redis did not answer.",
		}, scrapeCount(lag)))
	}
	for _, count := range unhandled {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhook_bridge_unhandled_events_stored", Help: "Entries of the event and retry streams the bridge could not handle at all (not decodable, or whose handling crashed, hung or failed every attempt), kept in their dead-letter streams {stream}:dead (Redis); -1 when Redis did not answer.",
		}, scrapeCount(count)))
	}
	if dead != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhook_bridge_dead_letters_stored", Help: "Dead letters stored now (XLEN of the dead-letter stream on Redis); -1 when Redis did not answer.",
		}, scrapeCount(dead.Len)))
		if mem, ok := dead.(*webhook.MemoryDeadLetters); ok {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "webhook_bridge_dead_letters_dropped_total", Help: "Dead letters dropped, oldest first, to keep within dead_letters.max_len (in memory).",
			}, func() float64 { return float64(mem.Dropped()) }))
		}
	}
	return m
}

// scrapeCount turns a count read at scrape time into a gauge's value,
// bounded by scrapeTimeout; -1 on an error.
func scrapeCount(count func(context.Context) (int64, error)) func() float64 {
	return func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		n, err := count(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}
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

func (m *metrics) DeadLettered(sub string, _ webhook.DeadLetterKind) {
	m.dead.WithLabelValues(sub).Inc()
}

func (m *metrics) EventConsumed(int, int) {}

func (m *metrics) FilterFailed(sub string) { m.filters.WithLabelValues(sub).Inc() }
