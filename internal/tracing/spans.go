package tracing

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pubsub"
)

// Attribute keys of switchyard's own, beside the semantic conventions'.
const (
	AttrEventName     = attribute.Key("switchyard.event.name")
	AttrEventAttempts = attribute.Key("switchyard.event.attempts")
	AttrDeadReason    = attribute.Key("switchyard.dead_letter.reason")
)

// Span is a span being made, or none (the zero Span) when spans are off.
type Span struct{ s trace.Span }

// Recording reports whether the span records.
func (s Span) Recording() bool { return s.s != nil && s.s.IsRecording() }

// SpanContext returns the span's context; it is not valid for the zero
// Span.
func (s Span) SpanContext() trace.SpanContext {
	if s.s == nil {
		return trace.SpanContext{}
	}
	return s.s.SpanContext()
}

// SetAttributes adds attributes to the span.
func (s Span) SetAttributes(kv ...attribute.KeyValue) {
	if s.s != nil {
		s.s.SetAttributes(kv...)
	}
}

// AddEvent adds a span event.
func (s Span) AddEvent(name string, kv ...attribute.KeyValue) {
	if s.s != nil {
		s.s.AddEvent(name, trace.WithAttributes(kv...))
	}
}

// End ends the span; a non-nil err marks it failed (status Error, the
// error recorded, error.type its Go type).
func (s Span) End(err error) {
	if s.s == nil {
		return
	}
	if err != nil {
		s.s.RecordError(err)
		s.s.SetStatus(codes.Error, err.Error())
		s.s.SetAttributes(semconv.ErrorTypeKey.String(fmt.Sprintf("%T", err)))
	}
	s.s.End()
}

// Send starts the producer span of an Emit of events to dest, named
// "send dest" (the messaging conventions' name for a publish). system is
// messaging.system. With spans off it returns ctx and the zero Span.
//
// The events then carry the trace context of the returned ctx (see
// [Carried]): the send span's, or with spans off the caller's own, if any.
// Events that have their own parents ([WithEventParents]) carry those, and
// the span links to each.
func (t *Tracer) Send(ctx context.Context, system, dest string, events []pubsub.Event) (context.Context, Span) {
	tr := t.tracer()
	if tr == nil {
		return ctx, Span{}
	}
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(system),
		semconv.MessagingDestinationName(dest),
		semconv.MessagingOperationName("send"),
		semconv.MessagingOperationTypeSend,
	}
	if len(events) == 1 {
		attrs = append(attrs, semconv.MessagingMessageID(string(events[0].ID)), AttrEventName.String(string(events[0].Name)))
		if c := events[0].Meta.CorrelationID; c != "" {
			attrs = append(attrs, semconv.MessagingMessageConversationID(c))
		}
	} else {
		attrs = append(attrs, semconv.MessagingBatchMessageCount(len(events)))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...)}
	if parents := eventParents(ctx); parents != nil {
		for _, p := range parents {
			if p.IsValid() {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: p}))
			}
		}
	}
	ctx, s := tr.Start(ctx, "send "+dest, opts...)
	return ctx, Span{s}
}

// Create starts the producer span of creating ev for dest, named "create
// dest" (the messaging conventions' name for making a message that is
// sent later, one span per message), as a child of ctx's span. system is
// messaging.system. The returned Span's context is what ev should carry
// ([Span.SpanContext]). With spans off it returns the zero Span.
func (t *Tracer) Create(ctx context.Context, system, dest string, ev pubsub.Event) Span {
	tr := t.tracer()
	if tr == nil {
		return Span{}
	}
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(system),
		semconv.MessagingDestinationName(dest),
		semconv.MessagingOperationName("create"),
		semconv.MessagingOperationTypeCreate,
		semconv.MessagingMessageID(string(ev.ID)),
		AttrEventName.String(string(ev.Name)),
	}
	if c := ev.Meta.CorrelationID; c != "" {
		attrs = append(attrs, semconv.MessagingMessageConversationID(c))
	}
	_, s := tr.Start(ctx, "create "+dest, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	return Span{s}
}

// Process starts the consumer span of handling ev from dest in group,
// named "process dest", as a child of parent (the trace context ev
// carried) and linked to it, as the messaging conventions describe. With
// spans off it returns ctx continuing parent (see [Continue]).
func (t *Tracer) Process(ctx context.Context, system, dest, group string, ev pubsub.Event, parent trace.SpanContext) (context.Context, Span) {
	tr := t.tracer()
	if tr == nil {
		return Continue(ctx, parent), Span{}
	}
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(system),
		semconv.MessagingDestinationName(dest),
		semconv.MessagingOperationName("process"),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingMessageID(string(ev.ID)),
		AttrEventName.String(string(ev.Name)),
		AttrEventAttempts.Int(ev.Meta.Attempts),
	}
	if group != "" {
		attrs = append(attrs, semconv.MessagingConsumerGroupName(group))
	}
	if c := ev.Meta.CorrelationID; c != "" {
		attrs = append(attrs, semconv.MessagingMessageConversationID(c))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	if parent.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: parent}))
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	ctx, s := tr.Start(ctx, "process "+dest, opts...)
	return ctx, Span{s}
}

// DeadLetter records, as a producer span in the event's trace (a child of
// parent), that ev was written to the dead-letter place dest for reason.
func (t *Tracer) DeadLetter(system, dest string, ev pubsub.Event, parent trace.SpanContext, reason error) {
	tr := t.tracer()
	if tr == nil {
		return
	}
	ctx := context.Background()
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	_, s := tr.Start(ctx, "send "+dest, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		semconv.MessagingSystemKey.String(system),
		semconv.MessagingDestinationName(dest),
		semconv.MessagingOperationName("dead_letter"),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingMessageID(string(ev.ID)),
		AttrEventName.String(string(ev.Name)),
		AttrEventAttempts.Int(ev.Meta.Attempts),
		AttrDeadReason.String(reason.Error()),
	))
	s.End()
}

type parentsKey struct{}

// WithEventParents returns ctx for an Emit whose events each continue
// their own trace: event i carries parents[i] (when valid) rather than the
// Emit's. The outbox relay uses it for rows written in many requests.
func WithEventParents(ctx context.Context, parents []trace.SpanContext) context.Context {
	if !parentsUsed.Load() {
		parentsUsed.Store(true)
	}
	return context.WithValue(ctx, parentsKey{}, parents)
}

func eventParents(ctx context.Context) []trace.SpanContext {
	p, _ := ctx.Value(parentsKey{}).([]trace.SpanContext)
	return p
}

// Carrier gives each event of an Emit the trace context it carries.
type Carrier struct {
	parents           []trace.SpanContext
	common            trace.SpanContext
	commonTP, commonT string
	done              bool
}

// Any reports whether an Emit under ctx has trace context to carry: ctx
// holds a valid span context, or per-event parents. It is the cheap test
// before [Carried].
func Any(ctx context.Context) bool {
	// Comparing the span's type spares the common case (no span) a
	// method call and the copy of a span context.
	if s := trace.SpanFromContext(ctx); reflect.TypeOf(s) != noSpanType && s.SpanContext().IsValid() {
		return true
	}
	return parentsUsed.Load() && ctx.Value(parentsKey{}) != nil
}

// noSpanType is the type of what trace.SpanFromContext returns for a
// context without a span.
var noSpanType = reflect.TypeOf(trace.SpanFromContext(context.Background()))

// parentsUsed is set once WithEventParents has been called: until then no
// Emit looks for per-event parents.
var parentsUsed atomic.Bool

// Carried returns the Carrier of an Emit under ctx (the ctx [Tracer.Send]
// returned), and whether any event carries anything.
func Carried(ctx context.Context) (c Carrier, some bool) {
	c = Carrier{parents: eventParents(ctx), common: trace.SpanContextFromContext(ctx)}
	return c, c.parents != nil || c.common.IsValid()
}

// SpanContext returns what event i carries; it is not valid when nothing.
func (c *Carrier) SpanContext(i int) trace.SpanContext {
	if i < len(c.parents) && c.parents[i].IsValid() {
		return c.parents[i]
	}
	return c.common
}

// Fields returns the traceparent and tracestate of event i, both empty
// when it carries nothing.
func (c *Carrier) Fields(i int) (traceparent, tracestate string) {
	if i < len(c.parents) && c.parents[i].IsValid() {
		return Fields(c.parents[i])
	}
	if !c.done {
		c.commonTP, c.commonT = Fields(c.common)
		c.done = true
	}
	return c.commonTP, c.commonT
}
