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

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/inbox"
	"github.com/switchyard-go/switchyard/pubsub"
)

// sqlDB is a database of its own on one of the SQL servers.
type sqlDB struct {
	kind    string // postgres, sqlite or mysql
	driver  string
	dsn     string
	dialect inbox.Dialect
	db      *sql.DB
}

// newSQLDB makes a fresh database of kind, opened and with the inbox
// table migrated; it is closed when t ends.
func newSQLDB(t *testing.T, kind string) sqlDB {
	t.Helper()
	d := sqlDB{kind: kind}
	switch kind {
	case "postgres":
		dsn, err := pg.NewDatabase("inbox_tx")
		if err != nil {
			t.Fatal(err)
		}
		d.driver, d.dsn, d.dialect = "pgx", dsn, inbox.Postgres
	case "mysql":
		dsn, err := maria.NewDatabase("inbox_tx")
		if err != nil {
			t.Fatal(err)
		}
		d.driver, d.dsn, d.dialect = "mysql", dsn, inbox.MySQL
	default:
		d.driver, d.dialect = "sqlite", inbox.SQLite
		d.dsn = filepath.Join(t.TempDir(), "inbox.db") + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	}
	db, err := sql.Open(d.driver, d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	d.db = db
	if err := (inbox.SQLStore{DB: db}).Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

// createEffects makes the table a test handler writes its effect to: one
// row per handler run, not unique per event, so duplicates show.
func (d sqlDB) createEffects(t *testing.T) {
	t.Helper()
	q := `CREATE TABLE effects (id ` + d.dialect.AutoID() + `, event_id ` + d.dialect.Key() + ` NOT NULL)`
	if _, err := d.db.Exec(q); err != nil {
		t.Fatal(err)
	}
}

// insertEffect is the handler's write.
func (d sqlDB) insertEffect(ctx context.Context, tx *sql.Tx, id pubsub.ID) error {
	_, err := d.dialect.Exec(ctx, tx, `INSERT INTO effects (event_id) VALUES ($1)`, string(id))
	return err
}

// count runs a COUNT query written with $N placeholders.
func (d sqlDB) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := d.dialect.QueryRow(context.Background(), d.db, q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (d sqlDB) effects(t *testing.T, id pubsub.ID) int {
	t.Helper()
	return d.count(t, `SELECT COUNT(*) FROM effects WHERE event_id = $1`, string(id))
}

func (d sqlDB) doneRows(t *testing.T, key string, id pubsub.ID) int {
	t.Helper()
	return d.count(t, `SELECT COUNT(*) FROM `+inbox.Table+` WHERE handler_key = $1 AND event_id = $2 AND state = 'done'`, key, string(id))
}

// eachSQL runs fn on a fresh database of each SQL kind, with an effects
// table.
func eachSQL(t *testing.T, fn func(t *testing.T, d sqlDB)) {
	for _, kind := range []string{"postgres", "sqlite", "mysql"} {
		t.Run(kind, func(t *testing.T) {
			d := newSQLDB(t, kind)
			d.createEffects(t)
			fn(t, d)
		})
	}
}

func TestTransactionalAtomic(t *testing.T) {
	eachSQL(t, func(t *testing.T, d sqlDB) {
		ctx := context.Background()
		boom := errors.New("boom")
		var runs atomic.Int32
		h := inbox.Transactional(inbox.SQLStore{DB: d.db}, "effects", inbox.Options{}, func(ctx context.Context, tx *sql.Tx, ev pubsub.Event) error {
			if err := d.insertEffect(ctx, tx, ev.ID); err != nil {
				return err
			}
			if runs.Add(1) == 1 {
				return boom // after the write
			}
			return nil
		})
		ev := event()
		if err := h(ctx, ev); !errors.Is(err, boom) {
			t.Fatalf("first delivery = %v, want the handler's error", err)
		}
		if n, m := d.effects(t, ev.ID), d.doneRows(t, "effects", ev.ID); n != 0 || m != 0 {
			t.Fatalf("after the handler failed: %d effect rows and %d done rows, want none", n, m)
		}
		if err := h(ctx, ev); err != nil {
			t.Fatalf("redelivery = %v", err)
		}
		if runs.Load() != 2 {
			t.Fatalf("handler ran %d times, want 2: the redelivery of a failure runs again", runs.Load())
		}
		if n, m := d.effects(t, ev.ID), d.doneRows(t, "effects", ev.ID); n != 1 || m != 1 {
			t.Errorf("after success: %d effect rows and %d done rows, want 1 and 1", n, m)
		}
	})
}

func TestTransactionalRedeliverySkipped(t *testing.T) {
	eachSQL(t, func(t *testing.T, d sqlDB) {
		ctx := context.Background()
		var runs atomic.Int32
		store := inbox.SQLStore{DB: d.db}
		h := inbox.Transactional(store, "effects", inbox.Options{Timeout: 10 * time.Second}, func(ctx context.Context, tx *sql.Tx, ev pubsub.Event) error {
			runs.Add(1)
			return d.insertEffect(ctx, tx, ev.ID)
		})
		ev := event()
		for range 3 {
			if err := h(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		if runs.Load() != 1 || d.effects(t, ev.ID) != 1 {
			t.Errorf("an event delivered 3 times: %d runs, %d effect rows; want 1 and 1", runs.Load(), d.effects(t, ev.ID))
		}
		// Another key handles the same event on its own.
		other := inbox.Transactional(store, "audit", inbox.Options{}, func(context.Context, *sql.Tx, pubsub.Event) error { runs.Add(1); return nil })
		if err := other(ctx, ev); err != nil || runs.Load() != 2 {
			t.Errorf("a second key did not handle the event: %v, %d runs", err, runs.Load())
		}
		// Clean keeps the done mark for Keep.
		if _, err := store.Clean(ctx); err != nil {
			t.Fatal(err)
		}
		if err := h(ctx, ev); err != nil || runs.Load() != 2 {
			t.Errorf("after Clean, a redelivery within Keep = %v, %d runs; want skipped", err, runs.Load())
		}
	})
}

func TestTransactionalPanic(t *testing.T) {
	eachSQL(t, func(t *testing.T, d sqlDB) {
		ctx := context.Background()
		h := inbox.Transactional(inbox.SQLStore{DB: d.db}, "effects", inbox.Options{}, func(ctx context.Context, tx *sql.Tx, ev pubsub.Event) error {
			if err := d.insertEffect(ctx, tx, ev.ID); err != nil {
				return err
			}
			panic("bug")
		})
		ev := event()
		var pe *pubsub.PanicError
		if err := h(ctx, ev); !errors.As(err, &pe) {
			t.Fatalf("a panic became %v, want a *pubsub.PanicError", err)
		}
		if n, m := d.effects(t, ev.ID), d.doneRows(t, "effects", ev.ID); n != 0 || m != 0 {
			t.Errorf("after a panic: %d effect rows and %d done rows, want none", n, m)
		}
		// The connection went back to the pool in a usable state.
		if err := d.db.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTransactionalTimeout(t *testing.T) {
	eachSQL(t, func(t *testing.T, d sqlDB) {
		h := inbox.Transactional(inbox.SQLStore{DB: d.db}, "effects", inbox.Options{Timeout: 20 * time.Millisecond}, func(ctx context.Context, tx *sql.Tx, ev pubsub.Event) error {
			if err := d.insertEffect(ctx, tx, ev.ID); err != nil {
				return err
			}
			<-ctx.Done()
			return ctx.Err()
		})
		ev := event()
		if err := h(context.Background(), ev); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a handler past its Timeout = %v, want its deadline's error", err)
		}
		if n, m := d.effects(t, ev.ID), d.doneRows(t, "effects", ev.ID); n != 0 || m != 0 {
			t.Errorf("after a timeout: %d effect rows and %d done rows, want none", n, m)
		}
	})
}

// lockWaiters counts the sessions of d's server waiting for a row lock,
// or returns -1 where the database cannot tell (SQLite).
func (d sqlDB) lockWaiters(t *testing.T) int {
	switch d.kind {
	case "postgres":
		return d.count(t, `SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)
	case "mysql":
		return d.count(t, `SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'`)
	}
	return -1
}

func TestTransactionalConcurrentDuplicates(t *testing.T) {
	eachSQL(t, func(t *testing.T, d sqlDB) {
		for _, firstFails := range []bool{false, true} {
			t.Run(fmt.Sprintf("firstFails=%v", firstFails), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				boom := errors.New("boom")
				var runs atomic.Int32
				started, release := make(chan struct{}), make(chan struct{})
				h := inbox.Transactional(inbox.SQLStore{DB: d.db}, "effects", inbox.Options{}, func(ctx context.Context, tx *sql.Tx, ev pubsub.Event) error {
					if err := d.insertEffect(ctx, tx, ev.ID); err != nil {
						return err
					}
					if runs.Add(1) == 1 {
						close(started)
						<-release // holding the done row, uncommitted
						if firstFails {
							return boom
						}
					}
					return nil
				})
				ev := event()
				errs := make([]error, 8)
				go0 := make(chan struct{})
				var wg sync.WaitGroup
				var returned atomic.Int32
				for i := range errs {
					wg.Go(func() {
						<-go0
						errs[i] = h(ctx, ev)
						returned.Add(1)
					})
				}
				close(go0)
				select {
				case <-started:
				case <-ctx.Done():
					t.Fatal("no delivery started its handler")
				}
				// Let the other seven queue up behind the first one's row
				// (MariaDB may fail some of them at once with a deadlock).
				if d.lockWaiters(t) < 0 {
					time.Sleep(100 * time.Millisecond) // SQLite waits in its busy handler, out of sight
				} else {
					for d.lockWaiters(t)+int(returned.Load()) < 7 {
						if ctx.Err() != nil {
							t.Fatalf("only %d deliveries wait for the first one's row, %d returned", d.lockWaiters(t), returned.Load())
						}
						// Polling the server's lock view: InnoDB refreshes it
						// only when it was not read for 100ms.
						time.Sleep(150 * time.Millisecond)
					}
				}
				close(release)
				done := make(chan struct{})
				go func() { wg.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(30 * time.Second):
					t.Fatal("concurrent duplicates hang")
				}
				var nils, boomErrs int
				for _, err := range errs {
					switch {
					case err == nil:
						nils++
					case errors.Is(err, boom):
						boomErrs++
					case strings.HasPrefix(err.Error(), "inbox: "):
						t.Logf("a concurrent duplicate returned: %v", err)
					default:
						t.Errorf("a concurrent duplicate returned an error the inbox did not explain: %v", err)
					}
				}
				if firstFails && boomErrs != 1 {
					t.Errorf("%d calls returned the first handler's error, want 1", boomErrs)
				}
				// A last redelivery runs only when no duplicate took over.
				if err := h(context.Background(), ev); err != nil {
					t.Fatal(err)
				}
				want := int32(1)
				if firstFails {
					want = 2
				}
				if n := d.effects(t, ev.ID); n != 1 || runs.Load() != want {
					t.Errorf("%d effect rows after %d runs, want 1 after %d (results: %v)", n, runs.Load(), want, errs)
				}
				t.Logf("%d of 8 calls returned nil, %d runs", nils, runs.Load())
			})
		}
	})
}

func TestTransactionalRefusesMiddlewareKey(t *testing.T) {
	eachSQL(t, func(t *testing.T, d sqlDB) {
		ctx := context.Background()
		store := inbox.SQLStore{DB: d.db}
		ev := event()
		// A Middleware handler of the key holds the event.
		if st, err := store.Claim(ctx, "shared", ev.ID, time.Minute); err != nil || st != inbox.Claimed {
			t.Fatalf("Claim = %v, %v", st, err)
		}
		var runs atomic.Int32
		h := inbox.Transactional(store, "shared", inbox.Options{}, func(context.Context, *sql.Tx, pubsub.Event) error { runs.Add(1); return nil })
		err := h(ctx, ev)
		if err == nil || !strings.Contains(err.Error(), `"shared"`) || !strings.Contains(err.Error(), "another inbox form") {
			t.Fatalf("Transactional on a key Middleware uses = %v, want an error naming the key and the clash", err)
		}
		if !errors.Is(err, pubsub.ErrPermanent) {
			t.Errorf("the clash %v does not wrap pubsub.ErrPermanent", err)
		}
		if runs.Load() != 0 {
			t.Error("the handler ran")
		}
	})
}

func TestTransactionalArguments(t *testing.T) {
	h := inbox.Transactional(inbox.SQLStore{}, "k", inbox.Options{}, func(context.Context, *sql.Tx, pubsub.Event) error { return nil })
	for range 2 {
		if err := h(context.Background(), event()); err == nil || !strings.Contains(err.Error(), "without a DB") {
			t.Errorf("a store without a DB = %v", err)
		}
	}
	for name, f := range map[string]func(){
		"empty key": func() {
			inbox.Transactional(inbox.SQLStore{}, "", inbox.Options{}, func(context.Context, *sql.Tx, pubsub.Event) error { return nil })
		},
		"nil handler": func() { inbox.Transactional(inbox.SQLStore{}, "k", inbox.Options{}, nil) },
	} {
		func() {
			defer func() {
				if v := recover(); v == nil || !strings.Contains(fmt.Sprint(v), "inbox: Transactional needs") {
					t.Errorf("%s: recovered %v, want a panic that says what is missing", name, v)
				}
			}()
			f()
		}()
	}
}

func TestRegisterTx(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		c := goredis.NewClient(&goredis.Options{Addr: rds.Addr})
		t.Cleanup(func() { _ = c.Close() })
		reg := inbox.NewRegistry(inbox.RedisStore{Client: c}, inbox.Options{})
		err := reg.RegisterTx("order.created", "charge", func(context.Context, *sql.Tx, pubsub.Event) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "SQLStore") {
			t.Errorf("RegisterTx on a Redis store = %v, want an error saying it needs a SQLStore", err)
		}
	})
	eachSQL(t, func(t *testing.T, d sqlDB) {
		ctx := context.Background()
		for _, store := range []inbox.Store{inbox.SQLStore{DB: d.db}, &inbox.SQLStore{DB: d.db}} {
			reg := inbox.NewRegistry(store, inbox.Options{})
			var charged, mailed atomic.Int32
			if err := reg.RegisterTx("order.created", "charge", func(ctx context.Context, tx *sql.Tx, ev pubsub.Event) error {
				charged.Add(1)
				return d.insertEffect(ctx, tx, ev.ID)
			}); err != nil {
				t.Fatal(err)
			}
			if err := reg.Register("order.created", "mail", func(context.Context, pubsub.Event) error { mailed.Add(1); return nil }); err != nil {
				t.Fatal(err)
			}
			if err := reg.RegisterTx("order.created", "charge", func(context.Context, *sql.Tx, pubsub.Event) error { return nil }); err == nil {
				t.Error("a second handler with the same key was accepted")
			}
			if err := reg.Register("order.created", "charge", func(context.Context, pubsub.Event) error { return nil }); err == nil {
				t.Error("Register took a key RegisterTx has")
			}
			if err := reg.RegisterTx("order.created", "", func(context.Context, *sql.Tx, pubsub.Event) error { return nil }); err == nil {
				t.Error("RegisterTx took an empty key")
			}
			ev := event()
			for range 2 {
				if err := reg.Handle(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			if charged.Load() != 1 || mailed.Load() != 1 || d.effects(t, ev.ID) != 1 {
				t.Errorf("charged %d, mailed %d, %d effect rows; want 1 each", charged.Load(), mailed.Load(), d.effects(t, ev.ID))
			}
		}
	})
	reg := inbox.NewRegistry(inbox.SQLStore{}, inbox.Options{})
	if err := reg.RegisterTx("x", "k", func(context.Context, *sql.Tx, pubsub.Event) error { return nil }); err == nil {
		t.Error("RegisterTx took a SQLStore without a DB")
	}
}
