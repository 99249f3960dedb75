package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/inbox"
	"github.com/switchyard-go/switchyard/pubsub"
)

// mysqlStores returns a migrated MariaDB database and a second DB on it
// opened with extra DSN parameters, as another service configured
// differently would.
func mysqlStores(t *testing.T, params string) (migrated, other inbox.SQLStore) {
	t.Helper()
	dsn, err := maria.NewDatabase("inboxadv")
	if err != nil {
		t.Fatal(err)
	}
	open := func(dsn string) *sql.DB {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	migrated = inbox.SQLStore{DB: open(dsn)}
	if err := migrated.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return migrated, inbox.SQLStore{DB: open(dsn + "?" + params)}
}

// TestAdv8ClientFoundRowsNeverHandlesTwice: a service whose DSN sets
// clientFoundRows, on a table another service migrated, must not take a
// redelivery for a new event.
func TestAdv8ClientFoundRowsNeverHandlesTwice(t *testing.T) {
	_, s := mysqlStores(t, "clientFoundRows=true")
	ctx := context.Background()
	var txRuns, mwRuns atomic.Int64
	tx := inbox.Transactional(s, uniq("tx"), inbox.Options{}, func(context.Context, *sql.Tx, pubsub.Event) error {
		txRuns.Add(1)
		return nil
	})
	mw := inbox.Middleware(s, uniq("mw"), inbox.Options{})(func(context.Context, pubsub.Event) error {
		mwRuns.Add(1)
		return nil
	})
	ev := event()
	for range 3 {
		_ = tx(ctx, ev)
		_ = mw(ctx, ev)
	}
	if n := txRuns.Load(); n != 1 {
		t.Errorf("Transactional ran its handler %d times for one event", n)
	}
	if n := mwRuns.Load(); n != 1 {
		t.Errorf("Middleware ran its handler %d times for one event", n)
	}
}

// TestAdv8LongEventIDsOnMySQL: event IDs longer than the 255 bytes the
// MySQL table keeps must not be cut to a prefix that another event
// shares (its delivery would then be skipped as a redelivery): they are
// refused as permanent errors. IDs differing in case are distinct.
func TestAdv8LongEventIDsOnMySQL(t *testing.T) {
	// A server or session that is not strict cuts long values.
	_, s := mysqlStores(t, "sql_mode=%27NO_ENGINE_SUBSTITUTION%27")
	ctx := context.Background()
	handled := map[pubsub.ID]int{}
	key := uniq("long")
	h := inbox.Transactional(s, key, inbox.Options{}, func(_ context.Context, _ *sql.Tx, ev pubsub.Event) error {
		handled[ev.ID]++
		return nil
	})
	var mwHandled []pubsub.ID
	mw := inbox.Middleware(s, uniq("mwlong"), inbox.Options{})(func(_ context.Context, ev pubsub.Event) error {
		mwHandled = append(mwHandled, ev.ID)
		return nil
	})
	prefix := strings.Repeat("x", 255)
	for _, id := range []pubsub.ID{pubsub.ID(prefix + "1"), pubsub.ID(prefix + "2"), "abc", "ABC", "abc "} {
		ev := event()
		ev.ID = id
		for _, run := range []pubsub.Handler{h, mw} {
			err := run(ctx, ev)
			if len(id) > 255 {
				if !errors.Is(err, pubsub.ErrPermanent) {
					t.Errorf("an ID of %d bytes: %v, want a permanent error", len(id), err)
				}
			} else if err != nil {
				t.Errorf("%q: %v", id, err)
			}
		}
	}
	if len(handled) != 3 || len(mwHandled) != 3 {
		t.Errorf("Transactional handled %v, Middleware %q; want abc, ABC and 'abc ' each", handled, mwHandled)
	}
}

// TestAdv8MigrateAnInboxOfTheFirstVersion: a table of the first version
// (PostgreSQL, SQLite), with done and processing rows, is migrated twice
// on one connection and keeps working: a done event is skipped, a lapsed
// claim is taken over, and a queue stores and handles events.
func TestAdv8MigrateAnInboxOfTheFirstVersion(t *testing.T) {
	for _, kind := range []string{"postgres", "sqlite"} {
		t.Run(kind, func(t *testing.T) {
			var db *sql.DB
			var err error
			if kind == "postgres" {
				var dsn string
				if dsn, err = pg.NewDatabase("inbox_old"); err == nil {
					db, err = sql.Open("pgx", dsn)
				}
			} else {
				db, err = sql.Open("sqlite", filepath.Join(t.TempDir(), "old.db")+"?_pragma=busy_timeout(10000)")
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			db.SetMaxOpenConns(1)
			for _, q := range []string{`CREATE TABLE IF NOT EXISTS ` + inbox.Table + ` (
		handler_key TEXT   NOT NULL,
		event_id    TEXT   NOT NULL,
		state       TEXT   NOT NULL,
		until_ms    BIGINT NOT NULL,
		PRIMARY KEY (handler_key, event_id)
	)`,
				`INSERT INTO ` + inbox.Table + ` VALUES ('k', 'done-1', 'done', 99999999999999)`,
				`INSERT INTO ` + inbox.Table + ` VALUES ('k', 'lapsed-1', 'processing', 1)`,
			} {
				if _, err := db.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			s := inbox.SQLStore{DB: db}
			for range 2 {
				if err := s.Migrate(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			var ran []pubsub.ID
			mw := inbox.Middleware(s, "k", inbox.Options{})(func(_ context.Context, ev pubsub.Event) error {
				ran = append(ran, ev.ID)
				return nil
			})
			for _, id := range []pubsub.ID{"done-1", "lapsed-1", "new-1"} {
				ev := event()
				ev.ID = id
				if err := mw(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			if fmt.Sprint(ran) != "[lapsed-1 new-1]" {
				t.Errorf("handled %v, want the lapsed claim and the new event", ran)
			}
			q := newQueue(t, inbox.QueueConfig{Store: s})
			var got atomic.Int64
			mustRegister(t, q, "order.created", "q", func(context.Context, pubsub.Event) error { got.Add(1); return nil })
			mustStore(t, q, event())
			stepUntil(t, q, "the stored event handled", func() bool { return got.Load() == 1 })
		})
	}
}

// TestAdv8QueueSurvivesOddRows: rows written by hand or by a broken
// writer — NULL name, payload and correlation ID, negative tries, an
// unknown state, a claim of a queue that never comes back — do not stop
// the queue; pending ones are handled, the others left alone.
func TestAdv8QueueSurvivesOddRows(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s inbox.SQLStore) {
		key := uniq("odd")
		q := newQueue(t, inbox.QueueConfig{Store: s})
		var mu sync.Mutex
		seen := map[pubsub.ID]int{}
		mustRegister(t, q, "order.created", key, func(_ context.Context, ev pubsub.Event) error {
			mu.Lock()
			seen[ev.ID]++
			mu.Unlock()
			return nil
		})
		d := s.Dialect
		if d == 0 {
			d = sqlDialect(s)
		}
		past := time.Now().Add(-time.Hour).UnixMilli()
		for _, row := range [][]any{
			{"nulls", "pending", 0, 0, "", 0},
			{"negative", "pending", -3, 0, "", 0},
			{"ghost", "pending", 0, 0, "a-queue-that-died", past},
			{"weird", "paused", 0, 0, "", 0},
		} {
			if _, err := d.Exec(context.Background(), s.DB, `INSERT INTO `+inbox.Table+
				` (handler_key, event_id, state, tries, until_ms, claimed_by, claimed_until_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				append([]any{key}, row...)...); err != nil {
				t.Fatal(err)
			}
		}
		stepUntil(t, q, "the pending odd rows handled", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 3 })
		for _, id := range []pubsub.ID{"nulls", "negative", "ghost"} {
			if seen[id] != 1 {
				t.Errorf("%s handled %d times", id, seen[id])
			}
			if r, err := q.Record(context.Background(), key, id); err != nil || r.State != inbox.RecordDone {
				t.Errorf("%s: %+v, %v", id, r, err)
			}
		}
		if r, err := q.Record(context.Background(), key, "weird"); err != nil || r.State != "paused" {
			t.Errorf("the row of an unknown state: %+v, %v", r, err)
		}
	})
}

func sqlDialect(s inbox.SQLStore) inbox.Dialect {
	switch fmt.Sprintf("%T", s.DB.Driver()) {
	case "*mysql.MySQLDriver":
		return inbox.MySQL
	case "*sqlite.Driver":
		return inbox.SQLite
	}
	return inbox.Postgres
}
