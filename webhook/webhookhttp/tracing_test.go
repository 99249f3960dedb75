package webhookhttp_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// spanPublisher keeps the span context each Emit was made under.
type spanPublisher struct {
	recorder
	mu  sync.Mutex
	scs []trace.SpanContext
}

func (p *spanPublisher) Emit(ctx context.Context, evs ...pubsub.Event) error {
	p.mu.Lock()
	p.scs = append(p.scs, trace.SpanContextFromContext(ctx))
	p.mu.Unlock()
	return p.recorder.Emit(ctx, evs...)
}

func (p *spanPublisher) emittedUnder() []trace.SpanContext {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]trace.SpanContext(nil), p.scs...)
}

const incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func postTraced(t *testing.T, tp trace.TracerProvider) *spanPublisher {
	t.Helper()
	pub := &spanPublisher{}
	ts, _ := api(t, webhookhttp.Config{Publisher: pub, TracerProvider: tp})
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/events", strings.NewReader(`{"name":"order.created","payload":{}}`))
	req.Header.Set("Traceparent", incoming)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d", resp.StatusCode)
	}
	if n := len(pub.emittedUnder()); n != 1 {
		t.Fatalf("%d emits, want 1", n)
	}
	return pub
}

// Ingest emits under a server span, the child of the caller's.
func TestIngestContinuesTheCallersTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	sc := postTraced(t, tp).emittedUnder()[0]
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want the server span", len(spans))
	}
	server := spans[0]
	if server.Name() != "POST /v1/events" || server.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q of kind %s, want POST /v1/events, server", server.Name(), server.SpanKind())
	}
	if got := server.Parent(); got.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || got.SpanID().String() != "b7ad6b7169203331" || !got.IsRemote() {
		t.Errorf("server span's parent %s-%s (remote %v), want the caller's", got.TraceID(), got.SpanID(), got.IsRemote())
	}
	if sc.SpanID() != server.SpanContext().SpanID() || sc.TraceID() != server.SpanContext().TraceID() {
		t.Errorf("emitted under %s-%s, want the server span %s", sc.TraceID(), sc.SpanID(), server.SpanContext().SpanID())
	}
}

// With no TracerProvider, the events are emitted under the caller's span
// context itself.
func TestIngestPassesTheCallersTraceOnWithTracingOff(t *testing.T) {
	sc := postTraced(t, nil).emittedUnder()[0]
	if sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || sc.SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("emitted under %s-%s, want the caller's span context", sc.TraceID(), sc.SpanID())
	}
}
