package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestOnFollowsTheGlobalProvider: no span while no TracerProvider is set,
// spans once one is (after the Tracer was made), none with a no-op one.
// It sets the global provider, so it runs alone in this package.
func TestOnFollowsTheGlobalProvider(t *testing.T) {
	global, explicitNoop := New(nil), New(noop.NewTracerProvider())
	if global.On() || explicitNoop.On() {
		t.Fatal("spans on before any TracerProvider was set")
	}
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	otel.SetTracerProvider(tp)
	if !global.On() {
		t.Error("spans off after otel.SetTracerProvider")
	}
	if explicitNoop.On() {
		t.Error("an explicit no-op provider makes spans")
	}
	if !New(tp).On() {
		t.Error("an explicit SDK provider makes no span")
	}
	otel.SetTracerProvider(noop.NewTracerProvider())
	if global.On() {
		t.Error("spans on after the global provider became a no-op one")
	}
}

func TestFieldsAndParse(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc := Parse(tp, "a=1,b=2")
	if !sc.IsValid() || !sc.IsRemote() || sc.TraceState().Get("b") != "2" {
		t.Fatalf("Parse = %+v", sc)
	}
	if p, s := Fields(sc); p != tp || s != "a=1,b=2" {
		t.Errorf("Fields = %q %q", p, s)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tp + "\x00"} {
		if Parse(bad, "a=1").IsValid() {
			t.Errorf("Parse(%q) is valid", bad)
		}
	}
	if p, s := Fields(trace.SpanContext{}); p != "" || s != "" {
		t.Errorf("Fields of nothing = %q %q", p, s)
	}
	// A tracestate that does not parse is dropped, the traceparent kept.
	if sc := Parse(tp, "not a tracestate!"); !sc.IsValid() || sc.TraceState().Len() != 0 {
		t.Errorf("Parse with a bad tracestate = %+v", sc)
	}
}

func TestCarriedPrefersEachEventsParent(t *testing.T) {
	common := Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "")
	own := Parse("00-11111111111111111111111111111111-2222222222222222-01", "")
	if _, some := Carried(context.Background()); some {
		t.Error("Carried under a bare context says some event carries trace context")
	}
	ctx := WithEventParents(trace.ContextWithSpanContext(context.Background(), common), []trace.SpanContext{{}, own})
	c, some := Carried(ctx)
	if !some || !c.SpanContext(0).Equal(common) || !c.SpanContext(1).Equal(own) || !c.SpanContext(2).Equal(common) {
		t.Errorf("Carried: %v %+v %+v %+v", some, c.SpanContext(0), c.SpanContext(1), c.SpanContext(2))
	}
	if p, _ := c.Fields(1); p != "00-11111111111111111111111111111111-2222222222222222-01" {
		t.Errorf("Fields(1) = %q", p)
	}
}
