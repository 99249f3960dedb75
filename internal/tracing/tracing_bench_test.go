package tracing

import (
	"context"
	"testing"

	"github.com/switchyard-go/switchyard/pubsub"
)

func BenchmarkOff(b *testing.B) {
	tr := New(nil)
	ctx := context.Background()
	evs := []pubsub.Event{{ID: "a", Name: "n"}}
	b.Run("tracer", func(b *testing.B) {
		for b.Loop() {
			_ = tr.tracer()
		}
	})
	b.Run("send", func(b *testing.B) {
		for b.Loop() {
			c, s := tr.Send(ctx, "s", "d", evs)
			cr, _ := Carried(c)
			_, _ = cr.Fields(0)
			s.End(nil)
		}
	})
	b.Run("process", func(b *testing.B) {
		for b.Loop() {
			_, s := tr.Process(ctx, "s", "d", "g", evs[0], Parse("", ""))
			s.End(nil)
		}
	})
}

func BenchmarkAny(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		_ = Any(ctx)
	}
}
