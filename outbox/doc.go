// Package outbox is the transactional outbox: a service writes the events
// that announce a change into an outbox table in the same database
// transaction as the change itself ([Write]), so that both happen or
// neither, and a [Relay] publishes them to any [pubsub.Publisher] and
// marks them sent.
//
//	tx, _ := db.BeginTx(ctx, nil)
//	_, _ = tx.ExecContext(ctx, `INSERT INTO orders ...`)
//	_ = outbox.Write(ctx, tx, pubsub.NewEvent(ctx, "order.created", payload))
//	_ = tx.Commit()
//
// # Dialects
//
// PostgreSQL through database/sql (github.com/jackc/pgx/v5/stdlib) and
// SQLite (modernc.org/sqlite, pure Go: the embedded default). [Migrate]
// creates the table (switchyard_outbox) and its index; it is explicit,
// idempotent and never drops anything.
//
// # Relays
//
// A relay claims a bounded batch of due rows, oldest first, by writing its
// name and a lease deadline into them in one statement (with FOR UPDATE
// SKIP LOCKED on PostgreSQL; on SQLite the single writer makes the claim
// atomic), publishes the batch in order with one Emit, and marks the rows
// sent. Several relays on one table never publish a row at the same time;
// the rows of a relay that died are claimed by the others once its lease
// ends. A relay that outlives its lease may publish rows a second time
// (consumers dedupe with package inbox). Order holds within a relay's
// batches: run one relay where the order between all events matters.
//
// A failed Emit leaves the batch pending with one more try and a backoff;
// after MaxAttempts tries a row is marked dead and logged. Retention
// deletes sent rows after KeepSent and, only when KeepDead is set, dead
// rows; pending rows are never deleted.
package outbox
