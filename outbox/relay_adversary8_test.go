package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
)

// TestAdv8TwoListeningRelaysOnAPoolOfTwo: two relays on one DB of two
// connections must not take both to listen and leave none to claim.
func TestAdv8TwoListeningRelaysOnAPoolOfTwo(t *testing.T) {
	db, _, _ := openDB(t, Postgres)
	db.SetMaxOpenConns(2)
	rec := pubsubtest.NewRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 2 {
		r := relay(t, db, Postgres, rec, RelayConfig{Name: fmt.Sprint("pool-", i), PollInterval: 20 * time.Millisecond})
		wg.Go(func() { _ = r.Run(ctx) })
	}
	defer func() { cancel(); wg.Wait() }()
	evs := make([]pubsub.Event, 3)
	for i := range evs {
		evs[i] = pubsub.NewEvent(ctx, "order.created", []byte(`{}`))
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		err := Write(wctx, db, evs[i])
		wcancel()
		if err != nil {
			t.Fatalf("writing with the relays running: %v", err)
		}
	}
	rec.WaitForN(t, len(evs), 5*time.Second)
}

// TestAdv8OrderingKeysAreByteForByte: keys that differ in case, trailing
// spaces or a byte are distinct keys (writers of one do not wait for the
// other), and a key of 255 bytes or of unicode is ordered and published.
func TestAdv8OrderingKeysAreByteForByte(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		if d == SQLite {
			return // one writer: every writer waits
		}
		ctx := context.Background()
		w := writer(d)
		long := strings.Repeat("é", 127) + "x" // 255 bytes
		keys := []string{"k", "K", "k ", " k", "k\t", "ké", "ke\u0301", long, long[:254] + "y"}
		txA, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteOrdered(ctx, txA, "k", pubsub.NewEvent(ctx, "e", []byte("k-held"))); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys[1:] {
			wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			tx, err := db.BeginTx(wctx, nil)
			if err == nil {
				if err = w.WriteOrdered(wctx, tx, k, pubsub.NewEvent(ctx, "e", []byte(k))); err == nil {
					err = tx.Commit()
				}
			}
			cancel()
			if err != nil {
				t.Errorf("key %q waited for key %q or failed: %v", k, "k", err)
			}
		}
		if err := txA.Commit(); err != nil {
			t.Fatal(err)
		}
		rec := pubsubtest.NewRecorder()
		r := relay(t, db, d, rec, RelayConfig{BatchSize: 3})
		drain(t, r)
		var got []string
		for _, e := range rec.Events() {
			got = append(got, string(e.Payload))
		}
		want := append([]string{"k-held"}, keys[1:]...)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("published %q, want %q", got, want)
		}
		var nkeys int
		if err := db.QueryRow(`SELECT COUNT(*) FROM ` + KeysTable).Scan(&nkeys); err != nil || nkeys != len(keys) {
			t.Errorf("%d rows in the keys table (%v), want %d", nkeys, err, len(keys))
		}
	})
}

// TestAdv8CleanDoesNotWaitForAWriter: retention of idle ordering keys
// must not block the relay behind a long transaction that writes a key
// idle for more than a day.
func TestAdv8CleanDoesNotWaitForAWriter(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		if d == SQLite {
			return // one writer: a writing transaction blocks every write
		}
		ctx := context.Background()
		w := writer(d)
		tx, _ := db.BeginTx(ctx, nil)
		if err := w.WriteOrdered(ctx, tx, "old", pubsub.NewEvent(ctx, "e", []byte("1"))); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE ` + KeysTable + ` SET updated_ms = 1`); err != nil {
			t.Fatal(err)
		}
		long, _ := db.BeginTx(ctx, nil)
		defer long.Rollback()
		if err := w.WriteOrdered(ctx, long, "old", pubsub.NewEvent(ctx, "e", []byte("2"))); err != nil {
			t.Fatal(err)
		}
		r := relay(t, db, d, pubsubtest.NewRecorder(), RelayConfig{})
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		if _, err := r.Clean(cctx); err != nil {
			t.Errorf("Clean with a writer of an idle key open: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
		}
		// The open writer still holds its key: another writer waits.
		wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer wcancel()
		tx2, err := db.BeginTx(wctx, nil)
		if err == nil {
			err = w.WriteOrdered(wctx, tx2, "old", pubsub.NewEvent(ctx, "e", []byte("3")))
			_ = tx2.Rollback()
		}
		if err == nil {
			t.Error("a second writer of the key did not wait for the open one after Clean")
		}
		// Once the writer is gone, the idle key's row is deleted.
		// (The cancelled writer may hold it a moment longer.)
		_ = long.Rollback()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := r.Clean(ctx); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.QueryRow(`SELECT COUNT(*) FROM ` + KeysTable).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d rows in the keys table after Clean, want the idle key's deleted", n)
			}
			time.Sleep(10 * time.Millisecond) // polling for the cancelled writer to end
		}
	})
}

// TestAdv8MigrateAnOutboxWithoutOrderingKeys: a table made before
// ordering keys existed (PostgreSQL and SQLite), with pending rows, is
// migrated; its rows are published and ordered writes work.
func TestAdv8MigrateAnOutboxWithoutOrderingKeys(t *testing.T) {
	for _, d := range []Dialect{Postgres, SQLite} {
		t.Run(d.String(), func(t *testing.T) {
			var db *sql.DB
			var err error
			if d == Postgres {
				var dsn string
				if dsn, err = pg.NewDatabase("outbox_old"); err == nil {
					db, err = sql.Open("pgx", dsn)
				}
			} else {
				db, err = sql.Open("sqlite", filepath.Join(t.TempDir(), "old.db")+"?_pragma=busy_timeout(10000)")
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			db.SetMaxOpenConns(1) // so that Migrate's statements meet the old table's cached plans
			id, blob := "BIGSERIAL PRIMARY KEY", "BYTEA"
			if d == SQLite {
				id, blob = "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"
			}
			for _, s := range []string{`CREATE TABLE ` + Table + ` (
			id              ` + id + `,
			event_id        TEXT    NOT NULL,
			name            TEXT    NOT NULL,
			payload         ` + blob + ` NOT NULL,
			created_at_ns   BIGINT  NOT NULL,
			correlation_id  TEXT    NOT NULL DEFAULT '',
			attempts        INTEGER NOT NULL DEFAULT 0,
			dry_run         BOOLEAN NOT NULL DEFAULT FALSE,
			status          TEXT    NOT NULL DEFAULT 'pending',
			tries           INTEGER NOT NULL DEFAULT 0,
			next_attempt_ms BIGINT  NOT NULL DEFAULT 0,
			claimed_by      TEXT    NOT NULL DEFAULT '',
			claimed_until_ms BIGINT NOT NULL DEFAULT 0,
			last_error      TEXT    NOT NULL DEFAULT '',
			done_at_ms      BIGINT  NOT NULL DEFAULT 0
		)`, `CREATE INDEX IF NOT EXISTS ` + Table + `_due ON ` + Table + ` (status, next_attempt_ms, id)`,
				`INSERT INTO ` + Table + ` (event_id, name, payload, created_at_ns) VALUES ('old-1', 'e', 'x', 1)`,
				`INSERT INTO ` + Table + ` (event_id, name, payload, created_at_ns, tries, claimed_by, claimed_until_ms) VALUES ('old-2', 'e', 'y', 1, 3, 'gone', 5)`,
			} {
				if _, err := db.Exec(s); err != nil {
					t.Fatal(err)
				}
			}
			migrate(t, db, d)
			ctx := context.Background()
			tx, _ := db.BeginTx(ctx, nil)
			if err := WriteOrdered(ctx, tx, "k", pubsub.NewEvent(ctx, "e", []byte("new"))); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			rec := pubsubtest.NewRecorder()
			drain(t, relay(t, db, d, rec, RelayConfig{NoNotify: true}))
			var got []string
			for _, e := range rec.Events() {
				got = append(got, string(e.ID))
			}
			if len(got) != 3 || got[0] != "old-1" || got[1] != "old-2" {
				t.Errorf("published %v, want old-1, old-2 and the new event", got)
			}
		})
	}
}
