package redis_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// handled is one handler call: the event and its context's span.
type handled struct {
	ev   pubsub.Event
	span trace.SpanContext
}

type handledLog struct {
	mu    sync.Mutex
	calls []handled
}

func (l *handledLog) add(ctx context.Context, ev pubsub.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, handled{ev, trace.SpanContextFromContext(ctx)})
}

func (l *handledLog) snapshot() []handled {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func spansNamed(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// TestTraceFollowsEventsThroughRedis: one trace from the caller's span
// through Emit, the stream, each handler attempt (a retry, a dead letter)
// and a delayed emit; the entries carry it in traceparent.
func TestTraceFollowsEventsThroughRedis(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("trace")
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	var calls handledLog
	var errs errorLog
	dead := make(chan struct{})
	subscribe(t, client, redis.SubscriberConfig{
		Streams: []string{stream}, Group: "g", MaxAttempts: 3, TracerProvider: tp,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond },
	}, func(ctx context.Context, ev pubsub.Event) error {
		calls.add(ctx, ev)
		switch {
		case ev.ID == "flaky" && ev.Meta.Attempts == 0:
			return errors.New("first try fails")
		case ev.ID == "doomed":
			return errors.New("always fails")
		}
		return nil
	}, func(ctx context.Context, err error, ev *pubsub.Event) {
		errs.handle(ctx, err, ev)
		var dl *pubsub.DeadLetterError
		if errors.As(err, &dl) {
			close(dead)
		}
	})

	ctx, request := tp.Tracer("test").Start(context.Background(), "request")
	flaky, doomed := pubsub.NewEvent(ctx, "t", nil), pubsub.NewEvent(ctx, "t", nil)
	flaky.ID, doomed.ID = "flaky", "doomed"
	if err := pub.Emit(ctx, flaky, doomed); err != nil {
		t.Fatal(err)
	}
	later := pubsub.NewEvent(ctx, "t", nil)
	later.ID = "later"
	if err := pub.EmitAt(ctx, time.Now().Add(100*time.Millisecond), later); err != nil {
		t.Fatal(err)
	}
	request.End()
	select {
	case <-dead:
	case <-time.After(wait):
		t.Fatal("no dead letter")
	}
	eventually(t, "flaky handled twice, later once", func() bool {
		n := map[pubsub.ID]int{}
		for _, c := range calls.snapshot() {
			n[c.ev.ID]++
		}
		return n["flaky"] == 2 && n["later"] == 1 && n["doomed"] == 3
	})
	eventually(t, "every span ended", func() bool {
		return len(spansNamed(rec.Ended(), "process "+stream)) == 6 && len(spansNamed(rec.Ended(), "send "+redis.DeadKey(stream))) == 1
	})

	traceID := request.SpanContext().TraceID()
	spans := rec.Ended()
	sends := spansNamed(spans, "send "+stream)
	if len(sends) != 2 {
		t.Fatalf("%d send spans, want 2 (the batch, the delayed emit)", len(sends))
	}
	batch := sends[0]
	if n, _ := attr(batch, "messaging.batch.message_count"); n.AsInt64() != 2 {
		batch = sends[1]
	}
	for _, s := range sends {
		if s.Parent().SpanID() != request.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindProducer {
			t.Errorf("send span: parent %s kind %s, want the request %s, producer", s.Parent().SpanID(), s.SpanKind(), request.SpanContext().SpanID())
		}
		if v, _ := attr(s, "messaging.system"); v.AsString() != "redis" {
			t.Errorf("messaging.system %q", v.AsString())
		}
		if v, _ := attr(s, "messaging.destination.name"); v.AsString() != stream {
			t.Errorf("messaging.destination.name %q", v.AsString())
		}
	}

	// What the stream holds: the send span's context.
	entries, err := client.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := "00-" + traceID.String() + "-" + batch.SpanContext().SpanID().String() + "-01"
	if len(entries) < 2 || entries[0].Values["traceparent"] != want || entries[1].Values["traceparent"] != want {
		t.Errorf("entries carry %v, want traceparent %s", entries, want)
	}

	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spansNamed(spans, "process "+stream) {
		byID[s.SpanContext().SpanID()] = s
	}
	for _, c := range calls.snapshot() {
		s, ok := byID[c.span.SpanID()]
		if !ok || c.span.TraceID() != traceID {
			t.Errorf("handler of %s (attempt %d) ran in span %s of trace %s, not a process span of the request's trace", c.ev.ID, c.ev.Meta.Attempts, c.span.SpanID(), c.span.TraceID())
			continue
		}
		parent := batch
		if c.ev.ID == "later" {
			parent = sends[0]
			if parent == batch {
				parent = sends[1]
			}
		}
		if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("process span of %s: parent %s kind %s, want the send span %s, consumer", c.ev.ID, s.Parent().SpanID(), s.SpanKind(), parent.SpanContext().SpanID())
		}
		if links := s.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("process span of %s links %v, want the send span", c.ev.ID, links)
		}
		if v, _ := attr(s, "switchyard.event.attempts"); v.AsInt64() != int64(c.ev.Meta.Attempts) {
			t.Errorf("process span of %s: attempts %d, want %d", c.ev.ID, v.AsInt64(), c.ev.Meta.Attempts)
		}
		failed := c.ev.ID == "doomed" || (c.ev.ID == "flaky" && c.ev.Meta.Attempts == 0)
		if (s.Status().Code == codes.Error) != failed {
			t.Errorf("process span of %s attempt %d: status %v", c.ev.ID, c.ev.Meta.Attempts, s.Status())
		}
		if v, _ := attr(s, "messaging.consumer.group.name"); v.AsString() != "g" {
			t.Errorf("messaging.consumer.group.name %q", v.AsString())
		}
	}
	dl := spansNamed(spans, "send "+redis.DeadKey(stream))[0]
	if dl.Parent().SpanID() != batch.SpanContext().SpanID() || dl.SpanContext().TraceID() != traceID {
		t.Errorf("dead-letter span: parent %s, want the send span %s", dl.Parent().SpanID(), batch.SpanContext().SpanID())
	}
	deadEntries, err := client.XRange(context.Background(), redis.DeadKey(stream), "-", "+").Result()
	if err != nil || len(deadEntries) != 1 || deadEntries[0].Values["traceparent"] != want {
		t.Errorf("dead-letter stream: %v %v, want an entry with traceparent %s", deadEntries, err, want)
	}
}

// TestTraceContextPassesThroughWithoutTracerProvider: a service that set
// up no OpenTelemetry still continues the trace of the events it handles
// into the events it emits; a traceparent that does not parse is ignored,
// never poison.
func TestTraceContextPassesThroughWithoutTracerProvider(t *testing.T) {
	client := newClient(t, server.Addr)
	in, out := uniqueName("trace-in"), uniqueName("trace-out")
	pub := newPublisher(t, client, out)
	defer pub.Close()
	makeGroup(t, client, out, "g")
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var calls handledLog
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{in}, Group: "g"}, func(ctx context.Context, ev pubsub.Event) error {
		calls.add(ctx, ev)
		return pub.Emit(ctx, pubsub.NewEvent(ctx, "derived", []byte(ev.ID)))
	}, nil)
	for _, values := range [][]any{
		{"id", "traced", "name", "t", "payload", "", "traceparent", tp, "tracestate", "vendor=1"},
		{"id", "garbage", "name", "t", "payload", "", "traceparent", "not-a-traceparent\x00"},
		{"id", "plain", "name", "t", "payload", ""},
	} {
		if err := client.XAdd(context.Background(), &goredis.XAddArgs{Stream: in, Values: values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "three events handled", func() bool { return len(calls.snapshot()) == 3 })
	for _, c := range calls.snapshot() {
		switch c.ev.ID {
		case "traced":
			if !c.span.IsRemote() || c.span.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || c.span.SpanID().String() != "00f067aa0ba902b7" || c.span.TraceState().Get("vendor") != "1" {
				t.Errorf("handler context of a traced entry holds %+v", c.span)
			}
		default:
			if c.span.IsValid() {
				t.Errorf("handler context of %s holds %+v, want none", c.ev.ID, c.span)
			}
		}
	}
	entries, err := client.XRange(context.Background(), out, "-", "+").Result()
	if err != nil || len(entries) != 3 {
		t.Fatalf("%v %v", entries, err)
	}
	for _, e := range entries {
		got, has := e.Values["traceparent"]
		switch e.Values["payload"] {
		case "traced":
			if got != tp || e.Values["tracestate"] != "vendor=1" {
				t.Errorf("derived from traced: traceparent %v tracestate %v, want %s and vendor=1", got, e.Values["tracestate"], tp)
			}
		default:
			if has {
				t.Errorf("derived from %v carries traceparent %v", e.Values["payload"], got)
			}
		}
	}
}
