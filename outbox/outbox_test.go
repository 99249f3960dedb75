package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/switchyard-go/switchyard/internal/mysqltest"
	"github.com/switchyard-go/switchyard/internal/pgtest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
)

var (
	pg    *pgtest.Server
	maria *mysqltest.Server
)

func TestMain(m *testing.M) {
	if os.Getenv(relayProcessEnv) != "" {
		os.Exit(m.Run()) // a relay process of TestOrderedRelaysKilled: no servers
	}
	code := func() int {
		var err error
		if pg, err = pgtest.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pg.Stop()
		if maria, err = mysqltest.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer maria.Stop()
		return m.Run()
	}()
	os.Exit(code)
}

// eachDB runs fn against a fresh, migrated database of each dialect.
func eachDB(t *testing.T, fn func(t *testing.T, db *sql.DB, d Dialect)) {
	for _, d := range []Dialect{Postgres, SQLite, MySQL} {
		t.Run(d.String(), func(t *testing.T) {
			db, _, _ := openDB(t, d)
			fn(t, db, d)
		})
	}
}

// openDB makes a fresh, migrated database of dialect d, and returns it
// with its driver's name and DSN, for other processes to open.
func openDB(tb testing.TB, d Dialect) (db *sql.DB, driver, dsn string) {
	tb.Helper()
	switch d {
	case Postgres:
		var err error
		if dsn, err = pg.NewDatabase("outbox"); err != nil {
			tb.Fatal(err)
		}
		driver = "pgx"
	case SQLite:
		driver, dsn = "sqlite", filepath.Join(tb.TempDir(), "outbox.db")+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)"
	case MySQL:
		var err error
		if dsn, err = maria.NewDatabase("outbox"); err != nil {
			tb.Fatal(err)
		}
		driver = "mysql"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	migrate(tb, db, d)
	return db, driver, dsn
}

func migrate(tb testing.TB, db *sql.DB, d Dialect) {
	tb.Helper()
	for range 2 { // idempotent
		if err := Migrate(context.Background(), db, d); err != nil {
			tb.Fatal(err)
		}
	}
}

func count(t testing.TB, db *sql.DB, where string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + Table + " WHERE " + where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// writer is the Writer of dialect d.
func writer(d Dialect) Writer { return Writer{Dialect: d} }

// writeN writes n events, each in a transaction of its own, and returns them.
func writeN(t *testing.T, db *sql.DB, d Dialect, n int) []pubsub.Event {
	t.Helper()
	evs := make([]pubsub.Event, n)
	for i := range evs {
		evs[i] = pubsub.NewEvent(context.Background(), "order.created", []byte(fmt.Sprintf(`{"n":%d}`, i)))
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if err := writer(d).Write(context.Background(), tx, evs[i]); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	return evs
}

func relay(t testing.TB, db *sql.DB, d Dialect, pub pubsub.Publisher, cfg RelayConfig) *Relay {
	t.Helper()
	cfg.DB, cfg.Dialect, cfg.Publisher = db, d, pub
	r, err := NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAtomicWithTheBusinessChange(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		if _, err := db.Exec(`CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)`); err != nil {
			t.Fatal(err)
		}
		tx, _ := db.Begin()
		_, _ = tx.Exec(`INSERT INTO orders (id, total) VALUES (1, 990)`)
		if err := writer(d).Write(ctx, tx, pubsub.NewEvent(ctx, "order.created", []byte(`{"id":1}`))); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, "1=1"); n != 0 {
			t.Fatalf("%d outbox rows after a rollback, want 0", n)
		}
		tx, _ = db.Begin()
		_, _ = tx.Exec(`INSERT INTO orders (id, total) VALUES (1, 990)`)
		if err := writer(d).Write(ctx, tx, pubsub.NewEvent(ctx, "order.created", []byte(`{"id":1}`)), pubsub.Event{ID: "bad"}); !errors.Is(err, pubsub.ErrInvalidEvent) {
			t.Fatalf("Write with an invalid event = %v", err)
		}
		if err := writer(d).Write(ctx, tx, pubsub.NewEvent(ctx, "order.created", []byte(`{"id":1}`))); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, "status = 'pending'"); n != 1 {
			t.Fatalf("%d pending rows after commit, want 1", n)
		}
	})
}

func TestOrderAndFields(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		want := writeN(t, db, d, 50)
		rec := pubsubtest.NewRecorder()
		r := relay(t, db, d, rec, RelayConfig{BatchSize: 7})
		for {
			n, err := r.Step(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		got := rec.Events()
		if len(got) != len(want) {
			t.Fatalf("published %d, want %d", len(got), len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.ID != w.ID || g.Name != w.Name || string(g.Payload) != string(w.Payload) || !g.Meta.CreatedAtUTC.Equal(w.Meta.CreatedAtUTC) || g.Meta.CorrelationID != w.Meta.CorrelationID {
				t.Fatalf("event %d published as %+v, want %+v", i, g, w)
			}
		}
		if n := count(t, db, "status = 'sent'"); n != 50 {
			t.Errorf("%d rows marked sent, want 50", n)
		}
	})
}

func TestRacingRelaysNeverDoublePublish(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		want := writeN(t, db, d, 300)
		rec := pubsubtest.NewRecorder()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for i := range 3 {
			r := relay(t, db, d, rec, RelayConfig{Name: fmt.Sprint("relay-", i), BatchSize: 10, PollInterval: 5 * time.Millisecond})
			wg.Go(func() { _ = r.Run(ctx) })
		}
		rec.WaitForN(t, len(want), 30*time.Second)
		cancel()
		wg.Wait()
		seen := map[pubsub.ID]int{}
		for _, ev := range rec.Events() {
			seen[ev.ID]++
		}
		for _, ev := range want {
			if seen[ev.ID] != 1 {
				t.Errorf("event %s published %d times", ev.ID, seen[ev.ID])
			}
		}
		if n := count(t, db, "status = 'sent'"); n != len(want) {
			t.Errorf("%d rows sent, want %d", n, len(want))
		}
	})
}

func TestDeadRelaysRowsAreTakenOver(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		want := writeN(t, db, d, 20)
		// A relay claims every row and dies before publishing them.
		dead := relay(t, db, d, pubsubtest.NewRecorder(), RelayConfig{Name: "dies", Lease: 300 * time.Millisecond, BatchSize: 100})
		claimed, err := dead.claim(context.Background())
		if err != nil || len(claimed) != 20 {
			t.Fatalf("claim = %d rows, %v", len(claimed), err)
		}
		rec := pubsubtest.NewRecorder()
		live := relay(t, db, d, rec, RelayConfig{Name: "lives"})
		if n, err := live.Step(context.Background()); n != 0 || err != nil {
			t.Fatalf("rows under another relay's lease were claimed: %d, %v", n, err)
		}
		start := time.Now()
		for len(rec.Events()) < len(want) {
			if time.Since(start) > 10*time.Second {
				t.Fatal("the dead relay's rows were not taken over")
			}
			if _, err := live.Step(context.Background()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond) // polling, as Run does
		}
		if took := time.Since(start); took < 250*time.Millisecond {
			t.Errorf("taken over after %s, before the lease ended", took)
		}
		// The dead relay's late attempt to mark them sent changes nothing.
		if n := count(t, db, "status = 'sent' AND claimed_by = 'lives'"); n != 20 {
			t.Errorf("%d rows sent by the relay that took over, want 20", n)
		}
	})
}

func TestPublisherDownThenDead(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		writeN(t, db, d, 5)
		rec := pubsubtest.NewRecorder()
		down := errors.New("broker down")
		rec.FailWith(down)
		var deadCount atomic.Int64
		r := relay(t, db, d, rec, RelayConfig{MaxAttempts: 3, Backoff: pubsub.ConstantBackoff(time.Millisecond),
			Hooks: Hooks{Dead: func(n int) { deadCount.Add(int64(n)) }}})
		for attempt := 1; attempt <= 3; attempt++ {
			deadline := time.Now().Add(5 * time.Second)
			for {
				n, err := r.Step(context.Background())
				if n > 0 {
					if !errors.Is(err, down) {
						t.Fatalf("Step = %v, want the publisher's error", err)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("attempt %d never came", attempt)
				}
				time.Sleep(2 * time.Millisecond) // the backoff
			}
			if attempt < 3 && count(t, db, fmt.Sprintf("status = 'pending' AND tries = %d AND last_error LIKE '%%broker down%%'", attempt)) != 5 {
				t.Fatalf("after attempt %d the rows are not pending with %d tries", attempt, attempt)
			}
		}
		if n := count(t, db, "status = 'dead' AND tries = 3"); n != 5 || deadCount.Load() != 5 {
			t.Fatalf("%d dead rows, %d reported, want 5", n, deadCount.Load())
		}
		if len(rec.Events()) != 0 {
			t.Errorf("events recorded by a failing publisher")
		}
		if n, _ := r.Step(context.Background()); n != 0 {
			t.Errorf("dead rows claimed again")
		}
	})
}

func TestRetentionDeletesOnlyWhatItShould(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		writeN(t, db, d, 4)
		rec := pubsubtest.NewRecorder()
		r := relay(t, db, d, rec, RelayConfig{BatchSize: 2, KeepSent: time.Millisecond})
		if _, err := r.Step(ctx); err != nil { // 2 sent
			t.Fatal(err)
		}
		rec.FailWith(errors.New("down"))
		failing := relay(t, db, d, rec, RelayConfig{BatchSize: 1, MaxAttempts: 1, KeepSent: time.Millisecond})
		_, _ = failing.Step(ctx)         // 1 dead, 1 pending left
		time.Sleep(5 * time.Millisecond) // past KeepSent
		if n, err := r.Clean(ctx); err != nil || n != 2 {
			t.Fatalf("Clean = %d, %v; want the 2 sent rows", n, err)
		}
		if count(t, db, "status = 'dead'") != 1 || count(t, db, "status = 'pending'") != 1 {
			t.Fatal("retention touched dead or pending rows")
		}
		withDead := relay(t, db, d, rec, RelayConfig{KeepDead: time.Millisecond})
		if n, err := withDead.Clean(ctx); err != nil || n != 1 || count(t, db, "status = 'pending'") != 1 {
			t.Fatalf("Clean with KeepDead = %d, %v; want the dead row only", n, err)
		}
	})
}
