// Package tracing carries OpenTelemetry trace context with events and
// makes the spans the messaging semantic conventions describe: a producer
// span per Emit, a consumer span per handled event.
//
// Trace context travels as W3C Trace Context (the wire fields traceparent
// and tracestate, whatever propagator the process configured: the wire
// format fixes them). A process that configured no TracerProvider makes no
// span and allocates nothing for events that carry no trace context; an
// event that does carry one still passes it on, so that a service without
// OpenTelemetry does not break the trace of those around it.
package tracing

import (
	"context"
	"reflect"
	"sync/atomic"
	"unsafe"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// The wire fields of the trace context (docs/wire-format.md).
const (
	FieldTraceparent = "traceparent"
	FieldTracestate  = "tracestate"
)

// ScopeName is the instrumentation scope of every span switchyard makes.
const ScopeName = "github.com/switchyard-go/switchyard"

// W3C is the propagator of the trace context switchyard carries: the wire
// fields, the headers of deliveries and of ingest. It is fixed to W3C
// Trace Context, whatever propagator the process configured.
var W3C propagation.TraceContext

// Tracer makes spans with a TracerProvider given in a config, or with the
// global one (otel.GetTracerProvider) when none was given, looked up at
// each use so that one set after the constructor ran still counts.
type Tracer struct {
	tp     trace.TracerProvider // nil: the global one
	t      trace.Tracer         // of tp; nil when tp is nil or a no-op one
	global atomic.Pointer[globalTracer]
}

// globalTracer caches the tracer of the global TracerProvider last seen.
type globalTracer struct {
	tp trace.TracerProvider
	t  trace.Tracer // nil: spans would record nothing
}

// New returns a Tracer of tp; nil means the global TracerProvider.
func New(tp trace.TracerProvider) *Tracer {
	switch tp.(type) {
	case nil:
		return &Tracer{}
	case noop.TracerProvider, *noop.TracerProvider:
		return &Tracer{tp: tp} // t nil: no span
	}
	return &Tracer{tp: tp, t: tp.Tracer(ScopeName)}
}

// globalUnset is the package of the global TracerProvider that stands in
// until otel.SetTracerProvider is called: spans it makes record nothing.
const globalUnset = "go.opentelemetry.io/otel/internal/global"

// tracer returns the tracer to use, or nil when spans would record
// nothing: no TracerProvider set, or a no-op one.
func (t *Tracer) tracer() trace.Tracer {
	if t == nil {
		return nil
	}
	if t.tp != nil {
		return t.t
	}
	tp := otel.GetTracerProvider()
	if g := t.global.Load(); g != nil && sameWords(g.tp, tp) {
		return g.t
	}
	typ := reflect.TypeOf(tp)
	g := &globalTracer{tp: tp}
	switch tp.(type) {
	case noop.TracerProvider, *noop.TracerProvider:
	default:
		if typ.Kind() != reflect.Pointer || typ.Elem().PkgPath() != globalUnset {
			g.t = tp.Tracer(ScopeName)
		}
	}
	if typ.Comparable() {
		t.global.Store(g)
	}
	return g.t
}

// sameWords reports whether a and b hold the same type and the same data
// pointer: then they are the same provider. Different words may still be
// equal values (two copies of a struct), which the caller then looks at
// the slow way; this spares the hot path a call to the runtime's
// interface comparison.
func sameWords(a, b trace.TracerProvider) bool {
	wa, wb := (*[2]unsafe.Pointer)(unsafe.Pointer(&a)), (*[2]unsafe.Pointer)(unsafe.Pointer(&b))
	return wa[0] == wb[0] && wa[1] == wb[1]
}

// On reports whether spans are made.
func (t *Tracer) On() bool { return t.tracer() != nil }

// Fields returns the traceparent and tracestate values for sc; both are
// empty when sc is not valid.
func Fields(sc trace.SpanContext) (traceparent, tracestate string) {
	if !sc.IsValid() {
		return "", ""
	}
	c := carrier{}
	W3C.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
	return c[FieldTraceparent], c[FieldTracestate]
}

// Parse returns the span context that traceparent and tracestate carry
// (marked remote); it is not valid when traceparent is empty or malformed.
func Parse(traceparent, tracestate string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	c := carrier{FieldTraceparent: traceparent}
	if tracestate != "" {
		c[FieldTracestate] = tracestate
	}
	return trace.SpanContextFromContext(W3C.Extract(context.Background(), c))
}

// carrier is a TextMapCarrier over the two fields.
type carrier map[string]string

func (c carrier) Get(key string) string { return c[key] }
func (c carrier) Set(key, value string) { c[key] = value }
func (c carrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Continue returns ctx carrying sc as its remote parent, so that events
// emitted and spans started under it continue sc's trace; ctx itself when
// sc is not valid.
func Continue(ctx context.Context, sc trace.SpanContext) context.Context {
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}
