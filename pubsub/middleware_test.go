package pubsub_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

func TestChainOrder(t *testing.T) {
	var trace []string
	mw := func(name string) pubsub.Middleware {
		return func(next pubsub.Handler) pubsub.Handler {
			return func(ctx context.Context, ev pubsub.Event) error {
				trace = append(trace, name)
				return next(ctx, ev)
			}
		}
	}
	h := pubsub.Chain(func(context.Context, pubsub.Event) error {
		trace = append(trace, "handler")
		return nil
	}, mw("a"), mw("b"))
	if err := h(context.Background(), pubsub.Event{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(trace, ","); got != "a,b,handler" {
		t.Errorf("order = %s, want a,b,handler", got)
	}
}

func TestRecover(t *testing.T) {
	sentinel := errors.New("sentinel")
	for _, v := range []any{"text", sentinel, 42} {
		err := pubsub.Recover(func(context.Context, pubsub.Event) error { panic(v) })(context.Background(), pubsub.Event{})
		var pe *pubsub.PanicError
		if !errors.As(err, &pe) || pe.Value != v || !strings.Contains(string(pe.Stack), "TestRecover") {
			t.Errorf("panic(%v) became %#v, want a *PanicError with the value and stack", v, err)
		}
		if v == sentinel && !errors.Is(err, sentinel) {
			t.Errorf("a panic with an error should unwrap to it")
		}
	}
	if err := pubsub.Recover(func(context.Context, pubsub.Event) error { return nil })(context.Background(), pubsub.Event{}); err != nil {
		t.Errorf("Recover changed a nil result into %v", err)
	}
}

func TestTimeout(t *testing.T) {
	h := pubsub.Timeout(10 * time.Millisecond)(func(ctx context.Context, ev pubsub.Event) error {
		<-ctx.Done()
		return ctx.Err()
	})
	err := h(context.Background(), pubsub.Event{ID: "slow"})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"slow"`) {
		t.Errorf("Timeout gave %v, want DeadlineExceeded naming the event", err)
	}
	fast := pubsub.Timeout(time.Minute)(func(ctx context.Context, ev pubsub.Event) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("handler context has no deadline")
		}
		return nil
	})
	if err := fast(context.Background(), pubsub.Event{}); err != nil {
		t.Error(err)
	}
}

func TestBackoff(t *testing.T) {
	b := pubsub.ExponentialBackoff(100*time.Millisecond, time.Second)
	for attempt, base := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		for range 20 {
			d := b(attempt)
			if d < base*8/10 || d > base*12/10 {
				t.Fatalf("attempt %d: %v outside %v ±20%%", attempt, d, base)
			}
		}
	}
	if d := pubsub.ConstantBackoff(time.Second)(9); d != time.Second {
		t.Errorf("ConstantBackoff = %v", d)
	}
	if d := pubsub.Jitter(0, 0.5); d != 0 {
		t.Errorf("Jitter(0) = %v", d)
	}
}
