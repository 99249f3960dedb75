package inbox_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/inbox"
	"github.com/switchyard-go/switchyard/pubsub"
)

// TestAdv9TransactionalContextEndsAtCommit: the handler returns nil but
// the delivery's context ends just before the commit. Whatever the
// handler returns, the effect and the done mark are both there or both
// not, and a nil return means both are there.
func TestAdv9TransactionalContextEndsAtCommit(t *testing.T) {
	eachSQL(t, func(t *testing.T, d sqlDB) {
		for i := range 20 {
			ctx, cancel := context.WithCancel(context.Background())
			key := uniq("cancel")
			h := inbox.Transactional(inbox.SQLStore{DB: d.db}, key, inbox.Options{},
				func(hctx context.Context, tx *sql.Tx, ev pubsub.Event) error {
					if err := d.insertEffect(hctx, tx, ev.ID); err != nil {
						return err
					}
					if i%2 == 0 {
						cancel() // the context ends before the commit
					} else {
						go cancel() // or while it runs
					}
					return nil
				})
			ev := event()
			err := h(ctx, ev)
			cancel()
			eff, done := d.effects(t, ev.ID), d.doneRows(t, key, ev.ID)
			if eff != done {
				t.Fatalf("run %d: %d effects and %d done marks (handler returned %v)", i, eff, done, err)
			}
			if err == nil && done != 1 {
				t.Fatalf("run %d: returned nil with nothing committed: the broker acknowledges an event never handled", i)
			}
			// The redelivery completes the work exactly once.
			if err := h(context.Background(), ev); err != nil {
				t.Fatalf("run %d: redelivery: %v", i, err)
			}
			if eff := d.effects(t, ev.ID); eff != 1 {
				t.Fatalf("run %d: %d effects after the redelivery, want 1", i, eff)
			}
		}
	})
}

// TestAdv9TransactionalNestedTransaction: a handler that opens a
// transaction of its own on the same DB and writes the inbox row (or, on
// SQLite, anything: one writer) waits on the inbox's own transaction. It
// must end when the delivery's context does, not hang.
func TestAdv9TransactionalNestedTransaction(t *testing.T) {
	eachSQL(t, func(t *testing.T, d sqlDB) {
		key := uniq("nested")
		h := inbox.Transactional(inbox.SQLStore{DB: d.db}, key, inbox.Options{},
			func(ctx context.Context, _ *sql.Tx, ev pubsub.Event) error {
				tx, err := d.db.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer func() { _ = tx.Rollback() }()
				// The same row as the inbox's uncommitted done mark: it
				// waits for the inbox's transaction, which waits for this.
				if _, err := d.dialect.Exec(ctx, tx, `INSERT INTO `+inbox.Table+` (handler_key, event_id, state, until_ms) VALUES ($1, $2, 'done', 0)`,
					key, string(ev.ID)); err != nil {
					return err
				}
				if err := d.insertEffect(ctx, tx, ev.ID); err != nil {
					return err
				}
				return tx.Commit()
			})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ev := event()
		start := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- h(ctx, ev) }()
		select {
		case err := <-errc:
			t.Logf("%s: returned after %s: %v", d.kind, time.Since(start).Round(time.Millisecond), err)
			if err == nil {
				t.Errorf("a handler deadlocked on its own inbox row returned nil")
			}
		case <-time.After(4 * time.Second):
			t.Fatalf("%s: a handler waiting on the inbox's own transaction did not end with its 1s context", d.kind)
		}
		if eff, done := d.effects(t, ev.ID), d.doneRows(t, key, ev.ID); eff != 0 || done != 0 {
			t.Errorf("%d effects and %d done marks after the failed delivery, want none", eff, done)
		}
	})
}
