package webhookhttp

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-go/switchyard/webhook"
)

// Metrics is a bridge's Prometheus instrumentation: a [webhook.Observer]
// for the bridge, and the counters of ingest when given to [Config]. Labels
// hold subscription IDs, outcomes and kinds, never URLs or secrets.
type Metrics struct {
	received   prometheus.Counter
	duplicates prometheus.Counter
	consumed   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	retries    *prometheus.CounterVec
	dead       *prometheus.CounterVec
	filters    *prometheus.CounterVec
	logWrites  *prometheus.CounterVec
	disabled   *prometheus.CounterVec
}

// MetricsConfig adds gauges read at scrape time, each bounded by a second
// and -1 when its source did not answer, and counters kept elsewhere.
// Nil fields add nothing.
type MetricsConfig struct {
	// Lag counts the entries not yet delivered to the group or not yet
	// acknowledged.
	Lag func(context.Context) (int64, error)
	// DeadLetters is the bridge's dead-letter store.
	DeadLetters webhook.DeadLetterStore
	// Unhandled counts what the backend dead-lettered before the bridge
	// could handle it.
	Unhandled func(context.Context) (int64, error)
	// PartitionKeyFallbacks counts the events the partition key
	// expression gave no key, placed by their ID instead
	// ([webhook.PartitionKey.Fallbacks]).
	PartitionKeyFallbacks func() int64
	// AttemptLog is the bridge's delivery log.
	AttemptLog webhook.AttemptLog
}

// scrapeTimeout bounds what a scrape asks Redis.
const scrapeTimeout = time.Second

// NewMetrics registers the bridge's metrics in reg.
func NewMetrics(reg prometheus.Registerer, cfg MetricsConfig) *Metrics {
	m := &Metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhook_bridge_events_received_total", Help: "Events accepted and emitted by POST /v1/events.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhook_bridge_events_duplicate_total", Help: "Events posted to POST /v1/events with an id already accepted within the dedupe window, not emitted again.",
		}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_bridge_events_consumed_total", Help: "Events the bridge consumed (retries excluded), by result: matched (delivered to at least one subscription), filtered_out (a subscription's topic matched but every such filter said no), unmatched (no subscription's topic).",
		}, []string{"result"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_bridge_deliveries_total", Help: "Delivery attempts by subscription and outcome (delivered, failed, gone, dry_run, deferred, rate_limited).",
		}, []string{"subscription", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "webhook_bridge_delivery_duration_seconds", Help: "Time of a delivery attempt per subscription, from sending the request to the end of reading the response (its body read up to 64 KiB and discarded).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"subscription"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_bridge_retries_scheduled_total", Help: "Retries scheduled after failed deliveries.",
		}, []string{"subscription"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_bridge_dead_letters_total", Help: "Deliveries given up on, by subscription and kind (exhausted, gone, undeliverable, orphaned).",
		}, []string{"subscription", "kind"}),
		filters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_bridge_filter_errors_total", Help: "Filters that failed at run time (counted as no match).",
		}, []string{"subscription"}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_bridge_subscriptions_disabled_total", Help: "Subscriptions the bridge disabled because every delivery to them failed for disable_after.",
		}, []string{"subscription"}),
		logWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_bridge_delivery_log_attempts_total", Help: "Attempts handed to the delivery log, by result: written, or dropped after the log refused them for 10s.",
		}, []string{"result"}),
	}
	for _, r := range []string{"matched", "filtered_out", "unmatched"} {
		m.consumed.WithLabelValues(r)
	}
	reg.MustRegister(m.received, m.duplicates, m.consumed, m.deliveries, m.latency, m.retries, m.dead, m.filters, m.disabled)
	if l := cfg.AttemptLog; l != nil {
		for _, r := range []string{"written", "dropped"} {
			m.logWrites.WithLabelValues(r)
		}
		reg.MustRegister(m.logWrites, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhook_bridge_delivery_log_attempts_stored", Help: "Attempts the delivery log holds now, within delivery_log.max_len and max_age; -1 when Redis did not answer.",
		}, scrapeCount(l.Len)))
	}
	if cfg.Lag != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhook_bridge_consumer_lag", Help: "Entries of the stream (of its partitions together) not yet delivered to the group or not yet acknowledged (Redis); -1 when Redis did not answer.",
		}, scrapeCount(cfg.Lag)))
	}
	if cfg.Unhandled != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhook_bridge_unhandled_events_stored", Help: "Entries of the event and retry streams the bridge could not handle at all (not decodable, or whose handling crashed, hung or failed every attempt), kept in their dead-letter streams {stream}:dead and listed by GET /v1/dlq with kind unhandled (Redis); -1 when Redis did not answer.",
		}, scrapeCount(cfg.Unhandled)))
	}
	if f := cfg.PartitionKeyFallbacks; f != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhook_bridge_partition_key_fallbacks_total", Help: "Events the partition_key expression gave no key (nil, an error, or a value not a string, number or bool), placed in a partition by their id instead.",
		}, func() float64 { return float64(f()) }))
	}
	if dead := cfg.DeadLetters; dead != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhook_bridge_dead_letters_stored", Help: "Dead letters stored now (XLEN of the dead-letter stream on Redis, of every partition's together); -1 when Redis did not answer.",
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

// SubscriptionDisabled implements [webhook.DisableObserver].
func (m *Metrics) SubscriptionDisabled(sub string) { m.disabled.WithLabelValues(sub).Inc() }

// AttemptsLogged implements [webhook.LogObserver].
func (m *Metrics) AttemptsLogged(n int, err error) {
	result := "written"
	if err != nil {
		result = "dropped"
	}
	m.logWrites.WithLabelValues(result).Add(float64(n))
}

// Delivery implements [webhook.Observer].
func (m *Metrics) Delivery(sub string, out webhook.Outcome, _ int, took time.Duration) {
	m.deliveries.WithLabelValues(sub, string(out)).Inc()
	if out == webhook.Delivered || out == webhook.Failed || out == webhook.Gone {
		m.latency.WithLabelValues(sub).Observe(took.Seconds())
	}
}

// RetryScheduled implements [webhook.Observer].
func (m *Metrics) RetryScheduled(sub string, _ int, _ time.Duration) {
	m.retries.WithLabelValues(sub).Inc()
}

// DeadLettered implements [webhook.Observer].
func (m *Metrics) DeadLettered(sub string, kind webhook.DeadLetterKind) {
	m.dead.WithLabelValues(sub, string(kind)).Inc()
}

// FilterFailed implements [webhook.Observer].
func (m *Metrics) FilterFailed(sub string) { m.filters.WithLabelValues(sub).Inc() }

// EventConsumed implements [webhook.Observer].
func (m *Metrics) EventConsumed(matched, filteredOut int) {
	switch {
	case matched > 0:
		m.consumed.WithLabelValues("matched").Inc()
	case filteredOut > 0:
		m.consumed.WithLabelValues("filtered_out").Inc()
	default:
		m.consumed.WithLabelValues("unmatched").Inc()
	}
}
