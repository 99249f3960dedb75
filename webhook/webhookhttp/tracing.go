package webhookhttp

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"

	"github.com/switchyard-go/switchyard/internal/tracing"
)

// traced continues, in next, the trace of an incoming traceparent header.
// With spans on, next runs under a server span (otelhttp's, named after
// the route pattern, "POST /v1/events"), the child of the caller's span;
// with spans off, under the caller's span context itself, so that the
// events emitted still carry it.
func (h *Handler) traced(next http.Handler) http.Handler {
	tracer := tracing.New(h.cfg.TracerProvider)
	opts := []otelhttp.Option{
		otelhttp.WithPropagators(tracing.W3C),
		// The handler's own Metrics count requests; no second set.
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.Pattern != "" {
				return r.Pattern
			}
			return r.Method
		}),
	}
	if h.cfg.TracerProvider != nil {
		opts = append(opts, otelhttp.WithTracerProvider(h.cfg.TracerProvider))
	}
	withSpan := otelhttp.NewHandler(next, "", opts...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tracer.On() {
			withSpan.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("Traceparent") != "" {
			r = r.WithContext(tracing.W3C.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
		}
		next.ServeHTTP(w, r)
	})
}
