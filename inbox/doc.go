// Package inbox handles each event once per handler key, on top of the
// at-least-once delivery of every pubsub backend. It comes in three forms,
// which keep different promises; pick by what the handler's effect is.
//
// # Transactional: effects exactly once in the service's database
//
// [Transactional] (or [Registry.RegisterTx]) is for handlers whose effects
// are writes to the SQL database that holds the inbox table: the inbox
// opens a transaction, records the event as done in it, and hands the
// transaction to the handler, so the handler's writes and the done mark
// commit together or not at all. A process that dies anywhere — before
// the handler writes, after it wrote and before the commit, after the
// commit and before the broker's acknowledgement — leaves both or
// neither, and the redelivery either finds the event done and skips it or
// runs it afresh. No lease is involved: the database rolls back the
// transaction of a connection that died. A duplicate delivered while the
// first is in flight waits on the row until that transaction ends (on
// MySQL it may instead fail with a deadlock error, and its redelivery is
// skipped or run). The promise covers only what the handler writes
// through the transaction it is given: a call to another system (HTTP,
// email, another database) can still happen more than once. A handler
// that writes through another transaction of the same database can wait
// for locks the inbox's transaction holds (on SQLite any write does: one
// writer at a time) until its context ends, so write through the tx,
// and give handlers a deadline (Options.Timeout).
//
//	charge := inbox.Transactional(store, "billing.charge", inbox.Options{},
//		func(ctx context.Context, tx *sql.Tx, ev pubsub.Event) error {
//			_, err := tx.ExecContext(ctx, `INSERT INTO charges ...`)
//			return err
//		})
//	go sub.Consume(ctx, charge, nil)
//
// # Middleware: redeliveries skipped
//
// [Middleware] (or [Registry.Register]) records, in a [Store], which events
// each handler key has handled, skips redeliveries of them, and defers a
// duplicate that arrives while the first is being handled. An event is
// recorded as handled only after its handler returned nil; a failed
// handler releases its claim. The claim, the handler's effect and the
// done mark are separate steps, so the effect happens at least once, and
// more than once only when the process dies after the effect and before
// the done mark, or the handler outlives its Lease: make such effects
// idempotent, or use Transactional. Stores: [RedisStore] (SET NX with a
// TTL) and [SQLStore].
//
//	reg := inbox.NewRegistry(inbox.RedisStore{Client: client}, inbox.Options{Timeout: 30 * time.Second})
//	_ = reg.Register("order.created", "billing.charge", chargeCard)
//	_ = reg.Register("order.created", "email.receipt", sendReceipt)
//	go sub.Consume(ctx, reg.Handle, nil)
//
// # Queue: store now, process later
//
// A [Queue] is for brokers whose retention is short, or handlers too slow
// to hold a delivery: its Store method, given to the broker as the
// handler, writes the event into the inbox table once per registered
// handler key and returns, so the broker is acknowledged before any work.
// Workers ([Queue.Run]) then claim the stored records under a lease (FOR
// UPDATE SKIP LOCKED on PostgreSQL and MySQL) and run each handler with a
// timeout. A record is done only after its handler returned nil; a
// failure is tried again after a jittered backoff, and after MaxAttempts
// (or an error wrapping [pubsub.ErrPermanent]) the record is dead: OnDead
// is called, and it is kept until [Queue.Retry] or KeepDead. Several
// services and replicas share the table: a queue claims only the keys
// registered on it, no record is handled by two workers at once, and a
// worker that dies gives up its records when its lease ends. Handling is
// at least once (a handler runs again if its worker dies before the
// outcome is recorded); a delivery of an event already stored is stored
// once. Retention deletes done records after Keep and never a record that
// is pending.
//
// # The table
//
// [SQLStore] keeps one table, switchyard_inbox, in PostgreSQL, SQLite or
// MySQL 8 / MariaDB 10.6+ (the dialect is detected from the driver:
// pgx, modernc.org/sqlite, go-sql-driver/mysql), typically in the
// database of the service's own data; every form uses it, and a handler
// key belongs to one form. [SQLStore.Migrate] creates it and adds the
// columns a table made by an earlier version lacks. On MySQL, keys and
// event IDs are compared byte for byte and may be up to 255 bytes long;
// longer ones are refused as permanent errors.
package inbox
