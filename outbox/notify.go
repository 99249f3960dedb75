package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// NotifyChannel is the PostgreSQL channel the trigger [Migrate] installs
// notifies, with an empty payload, when a transaction that inserted into
// the outbox commits; relays LISTEN on it. PostgreSQL folds the identical
// notifications of one transaction into one.
const NotifyChannel = "switchyard_outbox"

// notifyFunc names both the trigger function and the trigger.
const notifyFunc = "switchyard_outbox_notify"

// installNotify creates, on PostgreSQL 12 or later, the trigger function
// and the statement-level trigger that notify NotifyChannel, each only
// when it does not exist: what is there, whoever made it, is left as it
// is. An advisory lock makes concurrent Migrates wait for each other
// rather than fail on each other's CREATE.
func installNotify(ctx context.Context, db *sql.DB) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('`+notifyFunc+`'))`); err != nil {
		return err
	}
	var hasFunc, hasTrigger bool
	if err := tx.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM pg_proc WHERE proname = '`+notifyFunc+`' AND pronamespace = current_schema()::regnamespace),
		EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = '`+Table+`'::regclass AND tgname = '`+notifyFunc+`')`).
		Scan(&hasFunc, &hasTrigger); err != nil {
		return fmt.Errorf("looking for the notify trigger: %w", err)
	}
	if !hasFunc {
		if _, err := tx.ExecContext(ctx, `CREATE FUNCTION `+notifyFunc+`() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('`+NotifyChannel+`', '');
	RETURN NULL;
END
$$`); err != nil {
			return fmt.Errorf("creating the notify function: %w", err)
		}
	}
	// CREATE OR REPLACE TRIGGER needs PostgreSQL 14; the check above
	// makes a plain CREATE idempotent on 12 and 13 too.
	if !hasTrigger {
		if _, err := tx.ExecContext(ctx, `CREATE TRIGGER `+notifyFunc+` AFTER INSERT ON `+Table+
			` FOR EACH STATEMENT EXECUTE FUNCTION `+notifyFunc+`()`); err != nil {
			return fmt.Errorf("creating the notify trigger: %w", err)
		}
	}
	return tx.Commit()
}

// notifies reports whether Run may listen for notifications: on
// PostgreSQL through pgx's database/sql driver, unless turned off, and
// when DB may open a connection besides the one the listener holds. Run
// then listens only when [reserveListener] finds DB can spare the
// connection besides those other relays' listeners hold.
func (r *Relay) notifies() bool {
	if r.cfg.NoNotify || r.cfg.Dialect != Postgres {
		return false
	}
	if fmt.Sprintf("%T", r.cfg.DB.Driver()) != "*stdlib.Driver" {
		return false // not pgx's (importing it here would register it in every program)
	}
	return r.cfg.DB.Stats().MaxOpenConnections != 1
}

// listeners counts, per DB, the relays whose listener holds one of its
// connections, so that listeners never take the connections their relays
// claim with.
var listeners struct {
	sync.Mutex
	n map[*sql.DB]int
}

// reserveListener takes a listener's place on db when db can still open a
// connection besides those of its listeners and the one to claim with; it
// reports whether it did. releaseListener gives the place back.
func reserveListener(db *sql.DB) bool {
	listeners.Lock()
	defer listeners.Unlock()
	if max := db.Stats().MaxOpenConnections; max > 0 && listeners.n[db]+2 > max {
		return false
	}
	if listeners.n == nil {
		listeners.n = map[*sql.DB]int{}
	}
	listeners.n[db]++
	return true
}

func releaseListener(db *sql.DB) {
	listeners.Lock()
	defer listeners.Unlock()
	if listeners.n[db]--; listeners.n[db] <= 0 {
		delete(listeners.n, db)
	}
}

const (
	listenMinBackoff = 100 * time.Millisecond
	listenMaxBackoff = 10 * time.Second
	listenLogEvery   = time.Minute
)

// errListenerDone ends a listening session that ctx ended.
var errListenerDone = errors.New("listener stopped")

// listen holds a connection that listens on NotifyChannel until ctx is
// done, and sends on wake, without blocking, for each notification and
// after each LISTEN (a notification may have come while none listened).
// It reconnects after an error, with a backoff, logging at most once
// per listenLogEvery; the relay polls meanwhile.
func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	var lastLog time.Time
	suppressed := 0
	backoff := time.Duration(0)
	for {
		start := time.Now()
		err := r.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		if time.Since(lastLog) >= listenLogEvery {
			r.cfg.Logger.Error("outbox: listening for notifications failed; polling until it reconnects",
				"relay", r.cfg.Name, "err", err, "errors_not_logged", suppressed)
			lastLog, suppressed = time.Now(), 0
		} else {
			suppressed++
		}
		// A session that lasted starts the backoff over.
		if time.Since(start) > listenMaxBackoff {
			backoff = 0
		}
		backoff = min(max(2*backoff, listenMinBackoff), listenMaxBackoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// listenOnce is one listening session on a connection of its own, which
// it closes at the end rather than return it to the pool still
// listening.
func (r *Relay) listenOnce(ctx context.Context, wake chan<- struct{}) error {
	conn, err := r.cfg.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close() // after Raw's ErrBadConn, it reports the conn done
	var sessionErr error
	_ = conn.Raw(func(dc any) error {
		sc, ok := dc.(interface{ Conn() *pgx.Conn }) // pgx's stdlib.Conn
		if !ok {
			sessionErr = fmt.Errorf("driver connection is a %T, not pgx's", dc)
			return nil
		}
		pc := sc.Conn()
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = pc.Close(cctx)
			cancel()
		}()
		if _, err := pc.Exec(ctx, `LISTEN `+NotifyChannel); err != nil {
			sessionErr = err
			return driver.ErrBadConn // closed above: database/sql discards it
		}
		signal(wake)
		if r.listening != nil {
			r.listening(pc.PgConn().PID())
		}
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				sessionErr = err
				if ctx.Err() != nil {
					sessionErr = errListenerDone
				}
				return driver.ErrBadConn // discarded: it still listens
			}
			signal(wake)
			if r.notified != nil {
				r.notified()
			}
		}
	})
	return sessionErr
}

// signal sends on wake unless a signal is already waiting there.
func signal(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}
