package memory_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
)

// TestTraceFollowsEventsThroughTheBroker: the caller's span is the parent
// of the Emit's send span, which is the parent of every attempt's process
// span (a retry, a dead letter), for a delayed emit too.
func TestTraceFollowsEventsThroughTheBroker(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	b := memory.NewBroker(memory.Options{TracerProvider: tp})
	defer b.Close()
	sub, err := b.NewSubscriber(memory.SubscriberConfig{MaxAttempts: 2, Backoff: pubsub.ConstantBackoff(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	inSpan := map[trace.SpanID]pubsub.Event{}
	done := make(chan struct{}, 8)
	go sub.Consume(context.Background(), func(ctx context.Context, ev pubsub.Event) error {
		mu.Lock()
		inSpan[trace.SpanContextFromContext(ctx).SpanID()] = ev
		mu.Unlock()
		defer func() { done <- struct{}{} }()
		if ev.ID == "doomed" {
			return errors.New("always fails")
		}
		return nil
	}, func(context.Context, error, *pubsub.Event) {})

	ctx, request := tp.Tracer("test").Start(context.Background(), "request")
	ok, doomed, later := pubsub.NewEvent(ctx, "t", nil), pubsub.NewEvent(ctx, "t", nil), pubsub.NewEvent(ctx, "t", nil)
	ok.ID, doomed.ID, later.ID = "ok", "doomed", "later"
	if err := b.Emit(ctx, ok, doomed); err != nil {
		t.Fatal(err)
	}
	if err := b.EmitAt(ctx, time.Now().Add(20*time.Millisecond), later); err != nil {
		t.Fatal(err)
	}
	request.End()
	for range 4 { // ok, doomed twice, later
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("not every attempt ran")
		}
	}
	_ = sub.Close() // ends the last process span

	var sends, processes, deads []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "send memory":
			sends = append(sends, s)
		case "process memory":
			processes = append(processes, s)
		case "send memory dead letters":
			deads = append(deads, s)
		}
	}
	if len(sends) != 2 || len(processes) != 4 || len(deads) != 1 {
		t.Fatalf("%d send, %d process, %d dead-letter spans; want 2, 4, 1", len(sends), len(processes), len(deads))
	}
	sendOf := map[trace.SpanID]bool{}
	for _, s := range sends {
		if s.Parent().SpanID() != request.SpanContext().SpanID() {
			t.Errorf("send span's parent %s, want the request", s.Parent().SpanID())
		}
		sendOf[s.SpanContext().SpanID()] = true
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range processes {
		ev, handled := inSpan[s.SpanContext().SpanID()]
		if !handled || !sendOf[s.Parent().SpanID()] || s.SpanContext().TraceID() != request.SpanContext().TraceID() {
			t.Errorf("process span %s (handler saw it: %v) has parent %s, trace %s", s.SpanContext().SpanID(), handled, s.Parent().SpanID(), s.SpanContext().TraceID())
		}
		if failed := s.Status().Code == codes.Error; failed != (ev.ID == "doomed") {
			t.Errorf("process span of %s: status %v", ev.ID, s.Status())
		}
	}
	if !sendOf[deads[0].Parent().SpanID()] {
		t.Errorf("dead-letter span's parent %s, want a send span", deads[0].Parent().SpanID())
	}
}
