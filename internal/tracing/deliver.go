package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys of the webhook bridge's delivery spans.
const (
	AttrSubscriptionID = attribute.Key("switchyard.webhook.subscription.id")
	AttrAttempt        = attribute.Key("switchyard.webhook.attempt")
	AttrOutcome        = attribute.Key("switchyard.webhook.outcome")
	AttrDeadLetterKind = attribute.Key("switchyard.webhook.dead_letter.kind")
)

// DeliverSpanName names the span of one delivery attempt: the same for
// every subscription and endpoint, which are attributes.
const DeliverSpanName = "webhook deliver"

// Deliver starts the span of delivery attempt attempt (1-based) of an
// event to subscription subID at url (already stripped of credentials), as a
// child of ctx's span: the consumer span of the event. first, when valid,
// is the span of the delivery's first attempt, which a retry links to.
// With spans off it returns ctx and the zero Span.
func (t *Tracer) Deliver(ctx context.Context, subID, url string, attempt int, first trace.SpanContext) (context.Context, Span) {
	tr := t.tracer()
	if tr == nil {
		return ctx, Span{}
	}
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(AttrSubscriptionID.String(subID), semconv.URLFull(url), AttrAttempt.Int(attempt)),
	}
	if first.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: first}))
	}
	ctx, s := tr.Start(ctx, DeliverSpanName, opts...)
	return ctx, Span{s}
}

// Fail marks the span failed without a Go error: status Error with
// description msg, and error.type errType (an HTTP status code, say).
func (s Span) Fail(errType, msg string) {
	if s.s == nil {
		return
	}
	s.s.SetStatus(codes.Error, msg)
	s.s.SetAttributes(semconv.ErrorTypeKey.String(errType))
}
