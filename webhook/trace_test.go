package webhook_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
)

// spanWaiter is a SpanProcessor that keeps the spans ended and lets a
// test wait for them.
type spanWaiter struct {
	mu      sync.Mutex
	spans   []sdktrace.ReadOnlySpan
	changed chan struct{}
}

func newSpanWaiter() (*spanWaiter, *sdktrace.TracerProvider) {
	w := &spanWaiter{changed: make(chan struct{})}
	return w, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(w))
}

func (w *spanWaiter) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (w *spanWaiter) OnEnd(s sdktrace.ReadOnlySpan) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.spans = append(w.spans, s)
	close(w.changed)
	w.changed = make(chan struct{})
}
func (w *spanWaiter) Shutdown(context.Context) error   { return nil }
func (w *spanWaiter) ForceFlush(context.Context) error { return nil }

// until waits for cond to hold for the spans ended so far.
func (w *spanWaiter) until(t *testing.T, what string, cond func([]sdktrace.ReadOnlySpan) bool) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.After(wait)
	for {
		w.mu.Lock()
		spans, ch := append([]sdktrace.ReadOnlySpan(nil), w.spans...), w.changed
		w.mu.Unlock()
		if cond(spans) {
			return spans
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s; spans: %s", wait, what, spanNames(spans))
		}
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name())
	}
	return strings.Join(names, ", ")
}

// deliverSpans returns the "webhook deliver" spans, by attempt.
func deliverSpans(spans []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == "webhook deliver" {
			out = append(out, s)
		}
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func spanByID(t *testing.T, spans []sdktrace.ReadOnlySpan, id trace.SpanID) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range spans {
		if s.SpanContext().SpanID() == id {
			return s
		}
	}
	t.Fatalf("no span %s among %s", id, spanNames(spans))
	return nil
}

// redisBridge runs a bridge over a redis-server of the test's own, with
// tp (nil: none) for the backend and the bridge, and returns the
// publisher events go to.
func redisBridge(t *testing.T, tp trace.TracerProvider, subs []webhook.Subscription, maxAttempts int) (*redis.Publisher, *webhook.MemoryDeadLetters) {
	t.Helper()
	client := startRedis(t)
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: "events", TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	sub, err := redis.NewSubscriber(context.Background(), client, redis.SubscriberConfig{
		Streams: []string{"events"}, Group: "bridge", Consumer: "c1", DelayedPoll: 10 * time.Millisecond, TracerProvider: tp,
	})
	if err != nil {
		t.Fatal(err)
	}
	dead := &webhook.MemoryDeadLetters{}
	bridge, err := webhook.New(webhook.Config{
		Subscriber: sub, Publisher: pub, Subscriptions: subs, DeadLetters: dead, TracerProvider: tp,
		Retry: webhook.RetryPolicy{Schedule: []time.Duration{20 * time.Millisecond}, MaxAttempts: maxAttempts, Jitter: 0.01},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); bridge.Run(context.Background()) }()
	t.Cleanup(func() { _ = bridge.Close(); <-done; _ = sub.Close() })
	return pub, dead
}

// received returns the span context a delivery's traceparent names.
func received(h hit) trace.SpanContext {
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(h.Header))
	return trace.SpanContextFromContext(ctx)
}

// A delivery continues the trace of the emit: the receiver's traceparent
// names the HTTP client span, child of the attempt's span, child of the
// event's consumer span; the signature and the subscription's headers
// are what they are without tracing.
func TestTraceDeliveryContinuesTheEventsTrace(t *testing.T) {
	w, tp := newSpanWaiter()
	s := newSink(t, nil)
	u, _ := url.Parse(s.URL)
	subURL := "http://user:secret@" + u.Host + "/hook"
	pub, _ := redisBridge(t, tp, []webhook.Subscription{{
		ID: "s1", Topic: "order.created", URL: subURL, Secrets: webhook.Secrets{vectorSecret}, Headers: map[string]string{"X-Tenant": "t1"},
	}}, 3)

	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	if err := pub.Emit(ctx, event("o-1", `{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	parent.End()
	h := s.waitFor(t, 1)[0]
	got := received(h)
	if !got.IsValid() || got.TraceID() != parent.SpanContext().TraceID() {
		t.Fatalf("receiver's traceparent %q, want trace %s", h.Header.Get("Traceparent"), parent.SpanContext().TraceID())
	}
	if h.Header.Get("X-Tenant") != "t1" {
		t.Errorf("subscription header X-Tenant = %q, want t1", h.Header.Get("X-Tenant"))
	}
	ts, _ := strconv.ParseInt(h.Header.Get("Webhook-Timestamp"), 10, 64)
	if !webhook.Verify(string(vectorSecret), h.Header.Get("Webhook-Id"), ts, h.Body, h.Header.Get("Webhook-Signature")) {
		t.Errorf("signature %q does not verify", h.Header.Get("Webhook-Signature"))
	}

	spans := w.until(t, "the attempt's span and the consumer span", func(s []sdktrace.ReadOnlySpan) bool {
		return len(deliverSpans(s)) == 1 && strings.Contains(spanNames(s), "process events")
	})
	client := spanByID(t, spans, got.SpanID())
	if client.SpanKind() != trace.SpanKindClient {
		t.Errorf("the receiver's parent is %q of kind %s, want the HTTP client span", client.Name(), client.SpanKind())
	}
	deliver := spanByID(t, spans, client.Parent().SpanID())
	if deliver.Name() != "webhook deliver" {
		t.Fatalf("the client span's parent is %q, want webhook deliver", deliver.Name())
	}
	process := spanByID(t, spans, deliver.Parent().SpanID())
	if process.Name() != "process events" || process.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("the attempt's parent is %q (%s), want the consumer span process events", process.Name(), process.SpanKind())
	}
	if process.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("the consumer span is in trace %s, want %s", process.SpanContext().TraceID(), parent.SpanContext().TraceID())
	}
	for key, want := range map[string]string{
		"switchyard.webhook.subscription.id": "s1",
		"url.full":                           "http://" + u.Host + "/hook",
		"switchyard.webhook.outcome":         "delivered",
		"switchyard.webhook.attempt":         "1",
		"http.response.status_code":          "200",
	} {
		if got := attr(deliver, key).String(); got != want {
			t.Errorf("attempt span %s = %q, want %q", key, got, want)
		}
	}
	if deliver.Status().Code == codes.Error {
		t.Errorf("delivered attempt has status %v", deliver.Status())
	}
	if len(deliver.Links()) != 0 {
		t.Errorf("a first attempt links to %v", deliver.Links())
	}
}

// A retry's attempt is in the trace of the first and links to its span;
// the last attempt of a dead-lettered delivery says so.
func TestTraceRetryLinksToTheFirstAttempt(t *testing.T) {
	w, tp := newSpanWaiter()
	s := newSink(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	dl := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) })
	pub, _ := redisBridge(t, tp, []webhook.Subscription{
		{ID: "flaky", Topic: "order.created", URL: s.URL},
		{ID: "down", Topic: "order.paid", URL: dl.URL, MaxAttempts: 3},
	}, 3)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	ev := event("o-2", `{}`)
	paid := event("o-3", `{}`)
	paid.Name = "order.paid"
	if err := pub.Emit(ctx, ev, paid); err != nil {
		t.Fatal(err)
	}
	parent.End()
	s.waitFor(t, 2)
	bySub := func(spans []sdktrace.ReadOnlySpan, id string) []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, s := range deliverSpans(spans) {
			if attr(s, "switchyard.webhook.subscription.id").AsString() == id {
				out = append(out, s)
			}
		}
		return out
	}
	spans := w.until(t, "2 attempts of flaky and 3 of down", func(s []sdktrace.ReadOnlySpan) bool {
		return len(bySub(s, "flaky")) == 2 && len(bySub(s, "down")) == 3
	})

	flaky := bySub(spans, "flaky")
	first, second := flaky[0], flaky[1]
	if attr(first, "switchyard.webhook.attempt").AsInt64() != 1 || attr(second, "switchyard.webhook.attempt").AsInt64() != 2 {
		t.Fatalf("attempts %v then %v", attr(first, "switchyard.webhook.attempt").String(), attr(second, "switchyard.webhook.attempt").String())
	}
	if got := attr(first, "switchyard.webhook.outcome").AsString(); got != "failed" || first.Status().Code != codes.Error ||
		attr(first, "http.response.status_code").AsInt64() != 500 {
		t.Errorf("first attempt: outcome %q, status %v, HTTP %d; want failed, Error, 500", got, first.Status(), attr(first, "http.response.status_code").AsInt64())
	}
	if got := attr(second, "switchyard.webhook.outcome").AsString(); got != "delivered" || second.Status().Code == codes.Error {
		t.Errorf("second attempt: outcome %q, status %v; want delivered", got, second.Status())
	}
	if second.SpanContext().TraceID() != parent.SpanContext().TraceID() || first.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("attempts in traces %s and %s, want %s", first.SpanContext().TraceID(), second.SpanContext().TraceID(), parent.SpanContext().TraceID())
	}
	if links := second.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != first.SpanContext().SpanID() ||
		links[0].SpanContext.TraceID() != first.SpanContext().TraceID() {
		t.Errorf("the retry's links are %v, want one to the first attempt %s", links, first.SpanContext().SpanID())
	}

	down := bySub(spans, "down")
	last := down[2]
	if got := attr(last, "switchyard.webhook.outcome").AsString(); got != "dead_lettered" || last.Status().Code != codes.Error ||
		attr(last, "http.response.status_code").AsInt64() != 502 || attr(last, "switchyard.webhook.dead_letter.kind").AsString() != "exhausted" {
		t.Errorf("last attempt of a dead-lettered delivery: outcome %q, kind %q, status %v, HTTP %d; want dead_lettered, exhausted, Error, 502",
			got, attr(last, "switchyard.webhook.dead_letter.kind").AsString(), last.Status(), attr(last, "http.response.status_code").AsInt64())
	}
	for i, s := range down[1:] {
		if links := s.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != down[0].SpanContext().SpanID() {
			t.Errorf("attempt %d of down links to %v, want the first attempt %s", i+2, links, down[0].SpanContext().SpanID())
		}
	}
}

// With no TracerProvider the receiver still gets the event's trace
// context, on the first attempt and on a retry.
func TestTraceOffPassesTheEventsTraceparentOn(t *testing.T) {
	s := newSink(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	pub, _ := redisBridge(t, nil, []webhook.Subscription{{ID: "s1", Topic: "order.created", URL: s.URL}}, 3)
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	if err := pub.Emit(trace.ContextWithSpanContext(context.Background(), sc), event("o-4", `{}`)); err != nil {
		t.Fatal(err)
	}
	for i, h := range s.waitFor(t, 2) {
		got := received(h)
		if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() {
			t.Errorf("delivery %d: traceparent %q, want the emitter's %s-%s", i+1, h.Header.Get("Traceparent"), sc.TraceID(), sc.SpanID())
		}
	}
}

// A retry whose link to the first attempt is garbage is delivered all the
// same, its span without a link.
func TestTraceRetryWithAGarbageLinkIsDelivered(t *testing.T) {
	w, tp := newSpanWaiter()
	s := newSink(t, nil)
	h := newHarness(t, webhook.Config{TracerProvider: tp, Subscriptions: []webhook.Subscription{{ID: "s", Topic: "order.created", URL: s.URL}}})
	for i, link := range []any{"00-zz-zz-01", 42, map[string]any{"a": 1}, "00-00000000000000000000000000000000-0000000000000000-01"} {
		ev := event("g-"+strconv.Itoa(i), `{}`)
		b, _ := json.Marshal(map[string]any{"subscription_id": "s", "attempts": 1, "event": ev, "first_attempt_traceparent": link})
		h.emit(t, pubsub.Event{ID: pubsub.ID("r-" + strconv.Itoa(i)), Name: webhook.RetryEventName, Payload: b, Meta: pubsub.Meta{Attempts: 1}})
	}
	s.waitFor(t, 4)
	spans := w.until(t, "4 attempt spans", func(s []sdktrace.ReadOnlySpan) bool { return len(deliverSpans(s)) == 4 })
	for _, sp := range deliverSpans(spans) {
		if len(sp.Links()) != 0 || attr(sp, "switchyard.webhook.outcome").AsString() != "delivered" {
			t.Errorf("attempt with a garbage link: links %v, outcome %s", sp.Links(), attr(sp, "switchyard.webhook.outcome").String())
		}
	}
}
