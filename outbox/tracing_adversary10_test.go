package outbox

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/internal/tracing"
	"github.com/switchyard-go/switchyard/pubsub"
)

// Rows whose trace columns hold multi-megabyte text (and, on SQLite,
// values of another storage class: a BLOB of non-UTF-8 bytes, an
// integer, a real) are all published through Redis, with spans on, in
// one relay's batches: none refused, none dead, none left pending, and
// the handler runs in a process span of its own trace for each.
func TestAdv10HostileTraceColumnsArePublished(t *testing.T) {
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		sr := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		pipe := startRedisPipe(t, srv, "adv10-"+d.String(), tp)
		const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		ctx := trace.ContextWithRemoteSpanContext(context.Background(), tracing.Parse(valid, ""))

		big := strings.Repeat("00-", 2<<20/3)
		sets := []struct {
			sql  string
			args []any
		}{
			{`traceparent = $2`, []any{big}},
			{`tracestate = $2`, []any{strings.Repeat("k=v,", 1<<19)}},
			{`traceparent = $2, tracestate = $3`, []any{strings.Repeat("x", 1<<20), strings.Repeat("y", 1<<20)}},
			{`traceparent = NULL, tracestate = $2`, []any{"a=b"}},
		}
		if d == SQLite {
			sets = append(sets,
				struct {
					sql  string
					args []any
				}{`traceparent = x'ff00fe80c328', tracestate = x'00ff'`, nil},
				struct {
					sql  string
					args []any
				}{`traceparent = 42, tracestate = 3.5`, nil},
				struct {
					sql  string
					args []any
				}{`traceparent = x'` + strings.Repeat("ab", 1<<20) + `'`, nil},
			)
		}
		evs := make([]pubsub.Event, len(sets)+1) // the last keeps its valid columns
		ids := make([]pubsub.ID, len(evs))
		for i := range evs {
			evs[i] = pubsub.NewEvent(ctx, "order.created", []byte(`{}`))
			ids[i] = evs[i].ID
		}
		writeIn(t, ctx, db, Writer{Dialect: d, TracerProvider: tp}, evs...)
		for i, s := range sets {
			args := append([]any{string(evs[i].ID)}, s.args...)
			q := `UPDATE ` + Table + ` SET ` + s.sql + ` WHERE event_id = $1`
			if _, err := d.Exec(context.Background(), db, q, args...); err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
		}
		r := relay(t, db, d, pipe.pub, RelayConfig{BatchSize: 3})
		total := 0
		for {
			n, err := r.Step(context.Background())
			if err != nil {
				t.Fatalf("Step: %v", err)
			}
			if n == 0 {
				break
			}
			total += n
		}
		if total != len(evs) {
			t.Errorf("relay published %d rows, want %d", total, len(evs))
		}
		if n := count(t, db, "status = 'sent'"); n != len(evs) {
			t.Errorf("%d rows sent, want %d", n, len(evs))
		}
		seen := pipe.wait(t, ids...)
		for i, id := range ids {
			h := seen[id]
			if !h.sc.IsValid() || h.name != "process adv10-"+d.String() {
				t.Errorf("row %d: handler ran in %+v (%q), want a process span", i, h.sc, h.name)
			}
		}
		if got := seen[ids[len(ids)-1]].sc.TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("the untouched row's event is handled in trace %s, want the request's", got)
		}
	})
}
