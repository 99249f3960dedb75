package outbox

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/internal/tracing"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// handled is what a handler saw of the span in its ctx.
type handled struct {
	sc     trace.SpanContext // the span in the handler's ctx
	parent trace.SpanContext // its parent, when it is an SDK span
	name   string            // its name, when it is an SDK span
}

// redisPipe is a Redis publisher and a subscriber consuming what it
// publishes, the handler reporting the span of its ctx per event.
type redisPipe struct {
	pub  *redis.Publisher
	seen chan map[pubsub.ID]handled
}

// startRedisPipe starts a publisher on stream of srv and a subscriber
// consuming it, both with tp (nil: the global TracerProvider).
func startRedisPipe(t *testing.T, srv *redistest.Server, stream string, tp trace.TracerProvider) *redisPipe {
	t.Helper()
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = client.Close() })
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := redis.NewSubscriber(ctx, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g",
		Start: redis.StartBeginning, Block: 50 * time.Millisecond, TracerProvider: tp})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	p := &redisPipe{pub: pub, seen: make(chan map[pubsub.ID]handled, 1)}
	p.seen <- map[pubsub.ID]handled{}
	var wg sync.WaitGroup
	wg.Go(func() {
		sub.Consume(ctx, func(ctx context.Context, ev pubsub.Event) error {
			span := trace.SpanFromContext(ctx)
			h := handled{sc: trace.SpanContextFromContext(ctx)}
			if ro, ok := span.(sdktrace.ReadOnlySpan); ok {
				h.parent, h.name = ro.Parent(), ro.Name()
			}
			m := <-p.seen
			m[ev.ID] = h
			p.seen <- m
			return nil
		}, func(_ context.Context, err error, _ *pubsub.Event) { t.Errorf("consuming: %v", err) })
	})
	t.Cleanup(func() {
		cancel()
		_ = sub.Close()
		wg.Wait()
	})
	return p
}

// wait returns what the handler saw of each event of ids, once it saw
// them all.
func (p *redisPipe) wait(t *testing.T, ids ...pubsub.ID) map[pubsub.ID]handled {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := <-p.seen
		all := true
		for _, id := range ids {
			if _, ok := m[id]; !ok {
				all = false
			}
		}
		if all {
			out := make(map[pubsub.ID]handled, len(m))
			for k, v := range m {
				out[k] = v
			}
			p.seen <- m
			return out
		}
		p.seen <- m
		if time.Now().After(deadline) {
			t.Fatalf("handled %d events, want %v", len(m), ids)
		}
		time.Sleep(10 * time.Millisecond) // polling the handler's progress
	}
}

// writeIn writes evs with w in a transaction of its own begun under ctx.
func writeIn(t *testing.T, ctx context.Context, db *sql.DB, w Writer, evs ...pubsub.Event) {
	t.Helper()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, tx, evs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func attrOf(s sdktrace.ReadOnlySpan, k attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value.String()
		}
	}
	return ""
}

// TestTraceFromRequestToHandler: events written under two requests'
// spans, and one written without trace context, are relayed in one batch
// through Redis; each handler's span continues the trace of the request
// that wrote its event, as parent → create → process, and the relay's
// send span links to both create spans.
func TestTraceFromRequestToHandler(t *testing.T) {
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		sr := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		pipe := startRedisPipe(t, srv, "traced-"+d.String(), tp)
		w := Writer{Dialect: d, TracerProvider: tp}

		// A row of no request: no trace context to keep.
		plain := pubsub.NewEvent(context.Background(), "order.created", []byte(`{"n":0}`))
		writeIn(t, context.Background(), db, Writer{Dialect: d}, plain)
		if n := count(t, db, "traceparent IS NULL AND tracestate IS NULL"); n != 1 {
			t.Fatalf("%d rows without trace context, want 1", n)
		}
		var reqs [2]trace.Span
		var evs [2]pubsub.Event
		for i := range reqs {
			ctx, span := tp.Tracer("test").Start(context.Background(), "request")
			reqs[i] = span
			evs[i] = pubsub.NewEvent(ctx, "order.created", []byte(`{"n":1}`))
			writeIn(t, ctx, db, w, evs[i])
			span.End()
		}
		if n := count(t, db, "traceparent IS NOT NULL"); n != 2 {
			t.Fatalf("%d rows with a traceparent, want 2", n)
		}
		creates := map[pubsub.ID]sdktrace.ReadOnlySpan{}
		for _, s := range sr.Ended() {
			if s.Name() == "create "+Table {
				creates[pubsub.ID(attrOf(s, "messaging.message.id"))] = s
			}
		}
		for i, ev := range evs {
			c := creates[ev.ID]
			switch {
			case c == nil:
				t.Fatalf("no create span for event %d", i)
			case c.Parent().SpanID() != reqs[i].SpanContext().SpanID() || c.SpanContext().TraceID() != reqs[i].SpanContext().TraceID():
				t.Errorf("create span of event %d is not a child of its request's span", i)
			case c.SpanKind() != trace.SpanKindProducer || attrOf(c, "messaging.system") != "switchyard.outbox" ||
				attrOf(c, "messaging.operation.type") != "create" || attrOf(c, "messaging.operation.name") != "create" ||
				attrOf(c, "switchyard.event.name") != "order.created" || attrOf(c, "messaging.destination.name") != Table:
				t.Errorf("create span %s: kind %v, attributes %v", c.Name(), c.SpanKind(), c.Attributes())
			}
		}
		if len(creates) != 2 {
			t.Errorf("%d create spans, want 2", len(creates))
		}

		r := relay(t, db, d, pipe.pub, RelayConfig{})
		if n, err := r.Step(context.Background()); n != 3 || err != nil {
			t.Fatalf("Step = %d, %v; want the 3 rows in one batch", n, err)
		}
		got := pipe.wait(t, plain.ID, evs[0].ID, evs[1].ID)
		for i, ev := range evs {
			h := got[ev.ID]
			if h.sc.TraceID() != reqs[i].SpanContext().TraceID() {
				t.Errorf("handler of event %d ran in trace %s, want its request's %s", i, h.sc.TraceID(), reqs[i].SpanContext().TraceID())
			}
			if h.name != "process traced-"+d.String() || h.parent.SpanID() != creates[ev.ID].SpanContext().SpanID() {
				t.Errorf("handler of event %d ran in span %q whose parent is %s, want a process span under the create span %s",
					i, h.name, h.parent.SpanID(), creates[ev.ID].SpanContext().SpanID())
			}
		}
		var send sdktrace.ReadOnlySpan
		for _, s := range sr.Ended() {
			if s.Name() == "send traced-"+d.String() {
				send = s
			}
		}
		if send == nil {
			t.Fatal("no send span")
		}
		linked := map[trace.SpanID]bool{}
		for _, l := range send.Links() {
			linked[l.SpanContext.SpanID()] = true
		}
		for i, ev := range evs {
			if !linked[creates[ev.ID].SpanContext().SpanID()] {
				t.Errorf("the send span does not link to the create span of event %d (links %v)", i, send.Links())
			}
		}
		// The event of no request goes on in the relay's Emit.
		if h := got[plain.ID]; h.sc.TraceID() != send.SpanContext().TraceID() {
			t.Errorf("the event written without trace context was handled in trace %s, want the send span's", h.sc.TraceID())
		}
	})
}

// TestTracePassesThroughWithoutTracerProvider: with no TracerProvider
// anywhere, an event written under a remote span context keeps it, and its
// handler continues it; an invalid span context is not stored.
func TestTracePassesThroughWithoutTracerProvider(t *testing.T) {
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		if tracing.New(nil).On() {
			t.Fatal("a global TracerProvider is set")
		}
		pipe := startRedisPipe(t, srv, "passed-"+d.String(), nil)
		remote := tracing.Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=opaque")
		if !remote.IsValid() {
			t.Fatal("the test's span context does not parse")
		}
		ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
		ev := pubsub.NewEvent(ctx, "order.created", []byte(`{}`))
		writeIn(t, ctx, db, writer(d), ev)
		var tp, ts string
		if err := d.QueryRow(context.Background(), db, `SELECT traceparent, tracestate FROM `+Table+` WHERE event_id = $1`, string(ev.ID)).Scan(&tp, &ts); err != nil {
			t.Fatal(err)
		}
		if tp != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" || ts != "vendor=opaque" {
			t.Errorf("row keeps traceparent %q, tracestate %q", tp, ts)
		}
		// A span context that is not valid (no span ID) is not kept.
		invalid := trace.NewSpanContext(trace.SpanContextConfig{TraceID: remote.TraceID()})
		bad := pubsub.NewEvent(ctx, "order.created", []byte(`{}`))
		writeIn(t, trace.ContextWithSpanContext(context.Background(), invalid), db, writer(d), bad)
		if n := count(t, db, "traceparent IS NULL AND tracestate IS NULL"); n != 1 {
			t.Errorf("%d rows without trace context, want the one written under an invalid span context", n)
		}

		r := relay(t, db, d, pipe.pub, RelayConfig{})
		if n, err := r.Step(context.Background()); n != 2 || err != nil {
			t.Fatalf("Step = %d, %v", n, err)
		}
		got := pipe.wait(t, ev.ID, bad.ID)
		h := got[ev.ID]
		if h.sc.TraceID() != remote.TraceID() || h.sc.SpanID() != remote.SpanID() || h.sc.TraceState().Get("vendor") != "opaque" || !h.sc.IsSampled() {
			t.Errorf("handler ctx holds %+v, want the writer's span context %+v", h.sc, remote)
		}
		if got[bad.ID].sc.IsValid() {
			t.Errorf("the event written under an invalid span context was handled under %+v", got[bad.ID].sc)
		}
	})
}

// carriedRecorder is a publisher that keeps the trace context each event
// of an Emit would carry.
type carriedRecorder struct {
	mu      sync.Mutex
	carried map[pubsub.ID]trace.SpanContext
}

func (c *carriedRecorder) Emit(ctx context.Context, events ...pubsub.Event) error {
	tc, _ := tracing.Carried(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, ev := range events {
		c.carried[ev.ID] = tc.SpanContext(i)
	}
	return nil
}

func (c *carriedRecorder) Close() error { return nil }

// TestGarbageTraceColumnsAreIgnored: rows whose trace columns were edited
// into what does not parse are published, without trace context, in the
// same batch as rows whose columns are valid, which keep theirs.
func TestGarbageTraceColumnsAreIgnored(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		ctx := trace.ContextWithRemoteSpanContext(context.Background(), tracing.Parse(valid, ""))
		evs := []pubsub.Event{
			pubsub.NewEvent(ctx, "a", nil), pubsub.NewEvent(ctx, "b", nil),
			pubsub.NewEvent(ctx, "c", nil), pubsub.NewEvent(ctx, "d", nil),
		}
		writeIn(t, ctx, db, writer(d), evs...)
		for i, set := range []string{
			`traceparent = 'not a traceparent', tracestate = '%%%'`,
			`traceparent = '00-00000000000000000000000000000000-0000000000000000-01', tracestate = NULL`,
			`tracestate = 'garbage=,=,,'`, // a valid traceparent keeps its context
			`traceparent = ''`,
		} {
			if _, err := d.Exec(context.Background(), db, `UPDATE `+Table+` SET `+set+` WHERE event_id = $1`, string(evs[i].ID)); err != nil {
				t.Fatal(err)
			}
		}
		rec := &carriedRecorder{carried: map[pubsub.ID]trace.SpanContext{}}
		r := relay(t, db, d, rec, RelayConfig{})
		if n, err := r.Step(context.Background()); n != 4 || err != nil {
			t.Fatalf("Step = %d, %v; want the 4 rows published", n, err)
		}
		if n := count(t, db, "status = 'sent'"); n != 4 {
			t.Fatalf("%d rows sent, want 4", n)
		}
		for i, ev := range evs {
			sc, ok := rec.carried[ev.ID]
			switch {
			case !ok:
				t.Errorf("event %d not published", i)
			case i == 2 && (sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.TraceState().Len() != 0):
				t.Errorf("event %d with a valid traceparent and a garbage tracestate carries %+v", i, sc)
			case i != 2 && sc.IsValid():
				t.Errorf("event %d with garbage trace columns carries %+v", i, sc)
			}
		}
	})
}

// TestMigrateAddsTraceColumns: a table made before the trace columns
// existed gets them from Migrate, and its rows are published.
func TestMigrateAddsTraceColumns(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		for _, c := range []string{"traceparent", "tracestate"} {
			if _, err := db.Exec(`ALTER TABLE ` + Table + ` DROP COLUMN ` + c); err != nil {
				t.Fatal(err)
			}
		}
		old := pubsub.NewEvent(ctx, "order.created", []byte(`{"old":true}`))
		if _, err := d.Exec(ctx, db, `INSERT INTO `+Table+` (event_id, name, payload, created_at_ns, correlation_id) VALUES ($1, $2, $3, $4, $5)`,
			string(old.ID), string(old.Name), old.Payload, old.Meta.CreatedAtUTC.UnixNano(), old.Meta.CorrelationID); err != nil {
			t.Fatal(err)
		}
		// A service without tracing that upgraded before Migrate ran
		// still writes.
		untraced := pubsub.NewEvent(ctx, "order.created", []byte(`{"untraced":true}`))
		writeIn(t, ctx, db, writer(d), untraced)
		migrate(t, db, d)
		sc := tracing.Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "")
		traced := pubsub.NewEvent(ctx, "order.created", []byte(`{}`))
		writeIn(t, trace.ContextWithRemoteSpanContext(ctx, sc), db, writer(d), traced)
		rec := &carriedRecorder{carried: map[pubsub.ID]trace.SpanContext{}}
		r := relay(t, db, d, rec, RelayConfig{})
		if n, err := r.Step(ctx); n != 3 || err != nil {
			t.Fatalf("Step = %d, %v; want all three rows", n, err)
		}
		for _, id := range []pubsub.ID{old.ID, untraced.ID} {
			if got, ok := rec.carried[id]; !ok || got.IsValid() {
				t.Errorf("a row written before Migrate: published %v, carrying %+v", ok, got)
			}
		}
		if got := rec.carried[traced.ID]; got.TraceID() != sc.TraceID() {
			t.Errorf("the row written after Migrate carries %+v, want %+v", got, sc)
		}
	})
}
