package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/internal/sqlqueue"
	"github.com/switchyard-go/switchyard/internal/tracing"
	"github.com/switchyard-go/switchyard/pubsub"
)

// Execer is what Write needs of a transaction: *sql.Tx, or *sql.DB and
// *sql.Conn outside one.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Writer writes events into the outbox of a database of its Dialect. The
// zero Writer writes to PostgreSQL or SQLite (their SQL is the same);
// MySQL needs Writer{Dialect: outbox.MySQL}.
type Writer struct {
	// Dialect is the database's dialect.
	// default: PostgreSQL or SQLite
	Dialect Dialect
	// TracerProvider makes a producer span "create switchyard_outbox" per
	// event written, a child of the span in the ctx of Write, whose trace
	// context the event's row keeps (the traceparent and tracestate
	// columns) for the relay to publish it with (see the package doc).
	// With no TracerProvider set anywhere no span is made, and the row
	// keeps the trace context ctx holds, if any.
	// default: nil, the global one (otel.GetTracerProvider)
	TracerProvider trace.TracerProvider
}

// messagingSystem is the messaging.system of the create spans: the
// publisher the relay will use is not known when an event is written.
const messagingSystem = "switchyard.outbox"

// globalTracer is the tracer of Writers without a TracerProvider.
var globalTracer = tracing.New(nil)

func (w Writer) tracer() *tracing.Tracer {
	if w.TracerProvider == nil {
		return globalTracer
	}
	return tracing.New(w.TracerProvider)
}

// Write stores the events in the outbox in tx, the transaction of the
// business change they announce: they are published if and only if it
// commits. It validates them first (see [pubsub.Event.Validate]) and
// writes none when one is invalid.
func (w Writer) Write(ctx context.Context, tx Execer, events ...pubsub.Event) error {
	return w.write(ctx, tx, "", events)
}

// WriteOrdered is Write for events of one ordering key, such as the ID
// of the aggregate they are about: relays publish the events of one key
// in the order their transactions committed, whatever the number of
// relays (see the package doc). Writing takes a lock on the key until tx
// ends, so transactions that write events of one key commit one after
// the other.
func (w Writer) WriteOrdered(ctx context.Context, tx Execer, key string, events ...pubsub.Event) error {
	switch {
	case key == "":
		return errors.New("outbox: WriteOrdered needs an ordering key")
	case len(key) > MaxOrderingKey:
		return fmt.Errorf("outbox: ordering key of %d bytes, longer than %d", len(key), MaxOrderingKey)
	}
	return w.write(ctx, tx, key, events)
}

func (w Writer) write(ctx context.Context, tx Execer, key string, events []pubsub.Event) error {
	if err := pubsub.ValidateAll(events); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	d := w.Dialect
	if d == 0 {
		d = Postgres // whose SQL SQLite speaks too
	}
	if key != "" {
		if _, err := d.Exec(ctx, tx, lockKeySQL(d), key, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("outbox: locking ordering key %q: %w", key, err)
		}
	}
	// Each row keeps the trace context of its create span or, with spans
	// off, the one ctx holds; NULL when there is none.
	tr := w.tracer()
	spans := tr.On()
	var traceparent, tracestate any
	if !spans {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			traceparent, tracestate = traceColumns(sc)
		}
	}
	for _, ev := range events {
		var span tracing.Span
		if spans {
			span = tr.Create(ctx, messagingSystem, Table, ev)
			traceparent, tracestate = traceColumns(span.SpanContext())
		}
		created := ev.Meta.CreatedAtUTC
		if created.IsZero() {
			created = time.Now()
		}
		payload := ev.Payload
		if payload == nil {
			payload = []byte{}
		}
		args := []any{string(ev.ID), string(ev.Name), payload, created.UnixNano(), ev.Meta.CorrelationID, ev.Meta.Attempts, ev.Meta.IsDryRun, key}
		query := insertSQL
		if traceparent != nil {
			// Named only when there is trace context to keep, so that a
			// service without tracing writes to a table Migrate has not
			// brought up to date yet.
			query, args = insertTracedSQL, append(args, traceparent, tracestate)
		}
		_, err := d.Exec(ctx, tx, query, args...)
		span.End(err)
		if err != nil {
			return fmt.Errorf("outbox: writing event %s: %w", ev.ID, err)
		}
	}
	return nil
}

// insertSQL writes one event; insertTracedSQL one with its trace context.
const (
	insertSQL = `INSERT INTO ` + Table + `
		(event_id, name, payload, created_at_ns, correlation_id, attempts, dry_run, ordering_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	insertTracedSQL = `INSERT INTO ` + Table + `
		(event_id, name, payload, created_at_ns, correlation_id, attempts, dry_run, ordering_key, traceparent, tracestate)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
)

// traceColumns returns the values of the traceparent and tracestate
// columns for sc: NULL (nil) for what it does not carry, both when it is
// not valid.
func traceColumns(sc trace.SpanContext) (traceparent, tracestate any) {
	tp, ts := tracing.Fields(sc)
	if tp == "" {
		return nil, nil
	}
	if ts == "" {
		return tp, nil
	}
	return tp, ts
}

// lockKeySQL counts a write of key $1 at $2, which locks its row until
// the transaction ends.
func lockKeySQL(d Dialect) string {
	if d == MySQL {
		return `INSERT INTO ` + KeysTable + ` (ordering_key, writes, updated_ms) VALUES ($1, 1, $2)
			ON DUPLICATE KEY UPDATE writes = writes + 1, updated_ms = VALUES(updated_ms)`
	}
	return `INSERT INTO ` + KeysTable + ` (ordering_key, writes, updated_ms) VALUES ($1, 1, $2)
		ON CONFLICT (ordering_key) DO UPDATE SET writes = ` + KeysTable + `.writes + 1, updated_ms = excluded.updated_ms`
}

// Write is Writer{}.Write: it stores events in the outbox of a
// PostgreSQL or SQLite database in tx.
func Write(ctx context.Context, tx Execer, events ...pubsub.Event) error {
	return Writer{}.Write(ctx, tx, events...)
}

// WriteOrdered is Writer{}.WriteOrdered: it stores events of one
// ordering key in the outbox of a PostgreSQL or SQLite database in tx.
func WriteOrdered(ctx context.Context, tx Execer, key string, events ...pubsub.Event) error {
	return Writer{}.WriteOrdered(ctx, tx, key, events...)
}

// Migrate creates the outbox tables and their indexes when they do not
// exist, and adds the columns a table made by an earlier version lacks;
// on PostgreSQL it also installs the trigger that wakes relays on commit.
// It is idempotent and never changes or drops what exists.
func Migrate(ctx context.Context, db *sql.DB, d Dialect) error {
	if !d.Valid() {
		return fmt.Errorf("outbox: unknown dialect %v", d)
	}
	fail := func(err error) error { return fmt.Errorf("outbox: migrating (%s): %w", d, err) }
	for _, stmt := range schema(d) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fail(err)
		}
	}
	if err := d.AddMissingColumns(ctx, db, Table, []sqlqueue.Column{
		{Name: "ordering_key", Def: d.Text(MaxOrderingKey) + ` NOT NULL DEFAULT ''`},
		{Name: "traceparent", Def: d.LongText()},
		{Name: "tracestate", Def: d.LongText()},
	}); err != nil {
		return fail(err)
	}
	for _, ix := range [][2]string{
		{Table + "_due", "status, next_attempt_ms, id"},
		{Table + "_order", "ordering_key, status, id"},
		{KeysTable + "_age", "updated_ms"},
	} {
		table := Table
		if ix[0] == KeysTable+"_age" {
			table = KeysTable
		}
		if err := d.CreateIndex(ctx, db, table, ix[0], ix[1]); err != nil {
			return fail(err)
		}
	}
	if d == Postgres {
		if err := installNotify(ctx, db); err != nil {
			return fail(err)
		}
	}
	return nil
}
