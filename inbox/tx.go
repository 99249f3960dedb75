package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// TxHandler handles an event inside the transaction the inbox opened; its
// writes must go through tx. It must not commit or roll back tx.
type TxHandler func(ctx context.Context, tx *sql.Tx, ev pubsub.Event) error

// Transactional returns a handler that, in one transaction of store.DB,
// records (key, ev.ID) as done and runs h; both commit or neither does.
// So h's effect on the database happens once per event whenever the
// process dies, unlike [Middleware], whose done mark follows the
// handler's writes in a transaction of its own.
//
// Each call begins a transaction and inserts the done row, ignoring a
// duplicate. When the row exists and is done, the event was handled
// before: the transaction is rolled back and the call returns nil. A
// duplicate delivered while another transaction holds the row waits on
// the table's primary key until that transaction ends, then is skipped,
// or runs when that transaction rolled back (on MySQL, some of several
// duplicates waiting behind a rollback may instead fail with a deadlock
// error; their redeliveries are skipped or run as above). A row left
// under the same key by another form of the inbox (a [Middleware] claim
// still 'processing') is refused with an error that wraps
// [pubsub.ErrPermanent]: a handler key belongs to one form. Otherwise h
// runs (a panic becomes a [*pubsub.PanicError], opts.Timeout bounds it
// when set); its error rolls everything back and is returned, so the
// redelivery runs it again. Then the transaction commits; an error from
// Commit is returned wrapped, and since the commit is atomic the
// redelivery either skips the event or runs it afresh.
//
// The done row stays until [SQLStore.Clean] runs after opts.Keep; a
// redelivery later than that runs h again. opts.Lease is not used: a
// transaction needs no lease, as the database rolls it back when its
// connection dies. The table must exist ([SQLStore.Migrate]).
//
// It panics when key is empty or h is nil. A store without a DB, or with
// an invalid Dialect, is not checked here: every call of the returned
// handler then returns an error.
func Transactional(store SQLStore, key string, opts Options, h TxHandler) pubsub.Handler {
	if key == "" {
		panic("inbox: Transactional needs a handler key")
	}
	if h == nil {
		panic("inbox: Transactional needs a handler")
	}
	opts.setDefaults()
	return func(ctx context.Context, ev pubsub.Event) error {
		if store.DB == nil {
			return fmt.Errorf("inbox: Transactional handler %q has a SQLStore without a DB", key)
		}
		if store.Dialect != 0 && !store.Dialect.Valid() {
			return fmt.Errorf("inbox: Transactional handler %q has a SQLStore with an invalid Dialect (%d)", key, int(store.Dialect))
		}
		return runTx(ctx, store, key, opts, h, ev)
	}
}

var txColumns = []string{"handler_key", "event_id", "state", "until_ms", "done_at_ms"}

func runTx(ctx context.Context, store SQLStore, key string, opts Options, h TxHandler, ev pubsub.Event) (err error) {
	d := store.dialect()
	if err := checkLengths(d, key, ev.ID); err != nil {
		return err
	}
	tx, err := store.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("inbox: beginning the transaction of %s for %q: %w", ev.ID, key, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()

	now := time.Now()
	res, err := d.Exec(ctx, tx, d.InsertIgnore(Table, txColumns, []string{"handler_key", "event_id"}),
		key, string(ev.ID), "done", now.Add(opts.Keep).UnixMilli(), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("inbox: recording %s as done for %q: %w", ev.ID, key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("inbox: recording %s as done for %q: %w", ev.ID, key, err)
	}
	if n == 0 {
		// The row exists, committed: the insert waited for the
		// transaction that wrote it.
		var state string
		err := d.QueryRow(ctx, tx, `SELECT state FROM `+Table+` WHERE handler_key = $1 AND event_id = $2`, key, string(ev.ID)).Scan(&state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("inbox: %s for %q: its row was deleted while this delivery waited for it; deliver it again", ev.ID, key)
		case err != nil:
			return fmt.Errorf("inbox: reading the state of %s for %q: %w", ev.ID, key, err)
		case state == "done":
			return nil // handled before: a redelivery
		}
		return fmt.Errorf("inbox: %s for %q: the key is used by another inbox form (its row is %q; a handler key belongs to one form): %w",
			ev.ID, key, state, pubsub.ErrPermanent)
	}

	run := pubsub.Recover(func(ctx context.Context, ev pubsub.Event) error { return h(ctx, tx, ev) })
	if opts.Timeout > 0 {
		run = pubsub.Timeout(opts.Timeout)(run)
	}
	if err := run(ctx, ev); err != nil {
		return err
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("inbox: committing %s for %q (the handler's writes and the done mark commit together or not at all): %w", ev.ID, key, err)
	}
	return nil
}
