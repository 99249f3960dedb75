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
// PostgreSQL through database/sql (github.com/jackc/pgx/v5/stdlib),
// SQLite (modernc.org/sqlite, pure Go: the embedded default) and MySQL 8
// or MariaDB 10.6+ (github.com/go-sql-driver/mysql). [Write] speaks the
// SQL of PostgreSQL and SQLite; on MySQL write with
// Writer{Dialect: outbox.MySQL}. [Migrate] creates the tables
// (switchyard_outbox, and switchyard_outbox_keys for ordering keys) and
// their indexes, and adds the columns a table made by an earlier version
// lacks; it is explicit, idempotent and never drops anything.
//
// # Relays
//
// A relay claims a bounded batch of due rows, oldest first, by writing its
// name and a lease deadline into them — in one UPDATE … RETURNING with
// FOR UPDATE SKIP LOCKED on PostgreSQL; in one READ COMMITTED transaction
// of SELECT, SELECT … FOR UPDATE SKIP LOCKED and UPDATE on MySQL, which
// has no UPDATE … RETURNING; in one UPDATE … RETURNING on SQLite, whose
// single writer makes it atomic — publishes the batch in order with one
// Emit, and marks the rows sent. Several relays on one table never
// publish a row at the same time; the rows of a relay that died are
// claimed by the others once its lease ends. A relay that dies after
// publishing and before marking, or outlives its lease, publishes rows a
// second time (consumers dedupe with package inbox).
//
// A failed Emit leaves the batch pending with one more try and a backoff;
// after MaxAttempts tries a row is marked dead and logged. Retention
// deletes sent rows after KeepSent and, only when KeepDead is set, dead
// rows; pending rows are never deleted.
//
// # Order
//
// Events written with [Write] are published oldest first within each
// batch; with several relays, batches of different relays interleave.
//
// Events written with [WriteOrdered] carry an ordering key, such as the
// ID of the aggregate they are about, and are published, per key, in the
// order their transactions committed, with any number of relays, relays
// dying and publishes failing:
//
//   - WriteOrdered locks the key's row in switchyard_outbox_keys until the
//     transaction ends, so transactions writing events of one key commit
//     one after the other, and the rows of a key are numbered in commit
//     order. (Writers of different keys do not wait for each other.)
//   - A relay claims a row of a key only when no earlier row of the key is
//     pending — claimed or not, due or not — and in the same claim the
//     rows after it while they are due. No other relay can claim those:
//     their oldest is pending. Nothing is skipped: a row that commits late
//     is pending, and so is published, and the key's later rows wait for
//     it.
//   - A failed publish holds back the rest of its key until the row is
//     published. A row that dies (after MaxAttempts) is the one exception:
//     the key's later rows then go on, and the dead row stays in the table,
//     logged and counted by Hooks.Dead; set MaxAttempts high where a key
//     must wait for an operator instead.
//   - A row published again (a relay died before marking it) comes again
//     after the rows published with it: a consumer that skips repeats, as
//     package inbox does, sees each key in commit order.
//
// A key's events go one claim at a time, so a single key moves at one
// batch per claim round trip; many keys share each batch.
//
// # Tracing
//
// Each row keeps the W3C trace context (the traceparent and tracestate
// columns) of the request that wrote it, so that its consumers continue
// that trace rather than the relay's. When spans are made (a
// TracerProvider in the [Writer], or a global one), Write starts and ends
// a producer span "create switchyard_outbox" per event, a child of the
// span in its ctx (messaging.system "switchyard.outbox", the event's ID
// and name), and the row keeps that span's context. Without a
// TracerProvider no span is made and the row keeps the span context ctx
// holds, if any, such as a remote one an HTTP middleware extracted; rows
// written without one, or before [Migrate] added the columns, keep NULL.
//
// The relay publishes each batch under a context that gives every event
// its own row's trace context (the Emit's send span links to each), so a
// handler's span, with switchyard's redis and memory backends, is in the
// request's trace: request → create → process, while the relay's send
// span is in the relay's trace, linked to the create spans. Events
// without trace context carry the Emit's own (its send span's). Only
// switchyard's redis and memory publishers honour the per-event
// contexts; any other [pubsub.Publisher] gets the relay's ctx alone.
// Trace columns that do not parse (a row edited by hand) are ignored: the
// event is published without them.
//
// Run [Migrate] when upgrading from a version without these columns,
// before starting the relays: the relay reads them, and Write stores
// them whenever there is trace context to keep (a Write with none names
// only the columns an older table has).
//
// # From commit to publish
//
// On PostgreSQL, Migrate installs a statement-level trigger that
// notifies the channel switchyard_outbox ([NotifyChannel]) once per
// committed transaction that wrote to the outbox, whichever program wrote
// it (PostgreSQL folds a transaction's notifications into one). A relay
// on pgx's database/sql driver listens on a connection of its own and
// claims at once; PollInterval then only bounds the wait while its
// listener reconnects. Measured on 2 cores with a 1 s PollInterval
// (BenchmarkCommitToPublish: from tx.Commit returning to Emit), p50/p99
// were 0.6/1.2 ms at 100 transactions a second and 0.4/5.2 ms at 1,000.
// PostgreSQL takes a lock at commit to send a notification, so
// transactions that write to the outbox commit one after another (their
// commit p99 went from 0.9 to 1.9 ms at 1,000 a second); NoNotify turns
// the listening off.
//
// With NoNotify, and on SQLite and MySQL, relays poll: an event waits
// half the PollInterval on average and up to about one (p50 ≈ 50 ms, p99
// ≈ 100 ms with the 100 ms default); a relay kept busy by a steady
// stream picks events up sooner (MySQL at 1,000 a second: p50 3 ms).
// SQLite's single writer adds the writers' queue to that (p99 285 ms at
// 1,000 a second).
package outbox
