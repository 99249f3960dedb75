package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"

	"github.com/switchyard-go/switchyard/internal/tracing"
)

// tracedTransport wraps base in otelhttp's transport: an HTTP client span
// per request, child of the attempt's span, and its context sent as
// traceparent. tp nil uses the provider of the attempt's span. Its
// metrics are off: the bridge's Observer counts deliveries.
func tracedTransport(base http.RoundTripper, tp trace.TracerProvider) http.RoundTripper {
	opts := []otelhttp.Option{
		otelhttp.WithPropagators(tracing.W3C),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		// The HTTP conventions' name for a client span: the method.
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }),
	}
	opts = append(opts, otelhttp.WithTracerProvider(redactingProvider{tp: tp}))
	return otelhttp.NewTransport(base, opts...)
}

// redactingProvider makes otelhttp's client spans through tp (nil: the
// provider of the span in the request's context) with url.full as
// [spanURL] gives it: otelhttp hides the user info but keeps query values,
// and a subscription URL may hold a token there.
type redactingProvider struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (p redactingProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return redactingTracer{tp: p.tp, name: name, opts: opts}
}

type redactingTracer struct {
	embedded.Tracer
	tp   trace.TracerProvider
	name string
	opts []trace.TracerOption
}

func (t redactingTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	tp := t.tp
	if tp == nil {
		tp = trace.SpanFromContext(ctx).TracerProvider()
	}
	ctx, s := tp.Tracer(t.name, t.opts...).Start(ctx, name, opts...)
	if !s.IsRecording() {
		return ctx, s
	}
	cfg := trace.NewSpanStartConfig(opts...)
	for _, kv := range cfg.Attributes() {
		if kv.Key == semconv.URLFullKey {
			s.SetAttributes(semconv.URLFull(spanURL(kv.Value.AsString())))
		}
	}
	return ctx, redactingSpan{s}
}

// redactingSpan is a span whose url.full, however set, is spanURL's.
type redactingSpan struct{ trace.Span }

func (s redactingSpan) SetAttributes(kv ...attribute.KeyValue) {
	for i, a := range kv {
		if a.Key == semconv.URLFullKey {
			kv = slices.Clone(kv)
			kv[i] = semconv.URLFull(spanURL(a.Value.AsString()))
		}
	}
	s.Span.SetAttributes(kv...)
}

// roundTripper returns what sends req: the traced transport when spans
// are made; otherwise the bare one, with the trace context ctx carries
// (the event's, passed through) set as traceparent and tracestate.
func (b *Bridge) roundTripper(ctx context.Context, req *http.Request) http.RoundTripper {
	if b.tracer.On() {
		return b.traced
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		tracing.W3C.Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	return b.transport
}

// spanURL is rawURL for url.full: its user info dropped and every query
// value replaced by REDACTED (the keys kept), as the OpenTelemetry HTTP
// conventions ask of credentials (a token in the query is one); the
// fragment dropped.
func spanURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery = "REDACTED"
		} else {
			for _, vs := range q {
				for i := range vs {
					vs[i] = "REDACTED"
				}
			}
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

type firstAttemptKey struct{}

// withFirstAttempt returns ctx noting sc as the span of the first attempt
// of the delivery being made: a retry scheduled under it carries sc, and
// its attempt span links to it.
func withFirstAttempt(ctx context.Context, sc trace.SpanContext) context.Context {
	return context.WithValue(ctx, firstAttemptKey{}, sc)
}

func firstAttempt(ctx context.Context) trace.SpanContext {
	sc, _ := ctx.Value(firstAttemptKey{}).(trace.SpanContext)
	return sc
}

// traceLink is the traceparent of a delivery's first attempt span, in a
// retry event. A value that is not a string is read as none: a retry is
// never refused for it.
type traceLink string

// UnmarshalJSON reads a string, and anything else as "".
func (l *traceLink) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil {
		s = ""
	}
	*l = traceLink(s)
	return nil
}

// spanContext returns the span context l names; not valid when l is
// empty or malformed.
func (l traceLink) spanContext() trace.SpanContext {
	return tracing.Parse(string(l), "")
}

// linkOf returns the traceLink of sc, "" when sc is not valid.
func linkOf(sc trace.SpanContext) traceLink {
	tp, _ := tracing.Fields(trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: sc.TraceID(), SpanID: sc.SpanID(), TraceFlags: sc.TraceFlags(),
	}))
	return traceLink(tp)
}

// attemptNote is what an attempt came to, for its span.
type attemptNote struct {
	outcome Outcome
	res     result
	kind    DeadLetterKind
}

// set notes outcome and res; a nil note (spans off) notes nothing.
func (n *attemptNote) set(outcome Outcome, res result) {
	if n != nil {
		n.outcome, n.res = outcome, res
	}
}

// dead notes a dead letter of kind after res.
func (n *attemptNote) dead(kind DeadLetterKind, res result) {
	if n != nil {
		n.outcome, n.res, n.kind = DeadLettered, res, kind
	}
}

// end ends span with n's outcome; err is the error deliver returns.
func (n *attemptNote) end(span tracing.Span, err error) {
	if n.outcome != "" {
		span.SetAttributes(tracing.AttrOutcome.String(string(n.outcome)))
	}
	if n.res.status != 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(n.res.status))
	}
	if n.kind != "" {
		span.SetAttributes(tracing.AttrDeadLetterKind.String(string(n.kind)))
	}
	switch n.outcome {
	case Failed, TimedOut, DeadLettered:
		switch {
		case n.res.timedOut:
			span.Fail("timeout", n.res.describe())
		case n.res.status != 0 && !n.res.ok():
			span.Fail(strconv.Itoa(n.res.status), n.res.describe())
		case n.res.err != nil:
			span.Fail(fmt.Sprintf("%T", n.res.err), n.res.describe())
		default:
			span.Fail(string(n.outcome), string(n.outcome))
		}
	}
	span.End(err)
}
