package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/internal/sqlqueue"
	"github.com/switchyard-go/switchyard/pubsub"
)

// Table is the SQL store's table. One row per handler key and event
// serves every form of the inbox: a claim of [Middleware], the done mark
// of [Transactional], and a stored event of [Queue]. A handler key
// belongs to one form.
const Table = "switchyard_inbox"

// Dialect is the SQL database the inbox table lives in. It is the same
// type as outbox.Dialect.
type Dialect = sqlqueue.Dialect

const (
	// Postgres is PostgreSQL through database/sql (github.com/jackc/pgx/v5/stdlib).
	Postgres = sqlqueue.Postgres
	// SQLite is SQLite through database/sql (modernc.org/sqlite, pure Go).
	SQLite = sqlqueue.SQLite
	// MySQL is MySQL 8 or MariaDB 10.6+ through database/sql
	// (github.com/go-sql-driver/mysql). Handler keys and event IDs are
	// compared byte for byte and may be up to 255 bytes long.
	MySQL = sqlqueue.MySQL
)

// SQLStore keeps claims in a SQL table, which can live in the database
// of the service's own data. It never closes the DB.
type SQLStore struct {
	// DB holds the table (see [SQLStore.Migrate]).
	DB *sql.DB
	// Dialect is DB's SQL dialect.
	// default: detected from DB's driver (pgx, modernc.org/sqlite,
	// go-sql-driver/mysql)
	Dialect Dialect
}

func (s SQLStore) dialect() Dialect {
	if s.Dialect != 0 {
		return s.Dialect
	}
	if d := sqlqueue.Detect(s.DB); d != 0 {
		return d
	}
	return Postgres // whose SQL SQLite speaks too
}

// schema is the table as this version makes it; Migrate adds the columns
// a table made by an earlier version lacks.
func schema(d Dialect) (create string, added []sqlqueue.Column) {
	added = []sqlqueue.Column{
		{Name: "name", Def: d.LongText() + " NULL"},
		{Name: "payload", Def: d.Blob() + " NULL"},
		{Name: "created_at_ns", Def: "BIGINT NOT NULL DEFAULT 0"},
		{Name: "correlation_id", Def: d.LongText() + " NULL"},
		{Name: "attempts", Def: "INTEGER NOT NULL DEFAULT 0"},
		{Name: "dry_run", Def: "BOOLEAN NOT NULL DEFAULT FALSE"},
		{Name: "received_ms", Def: "BIGINT NOT NULL DEFAULT 0"},
		{Name: "tries", Def: "INTEGER NOT NULL DEFAULT 0"},
		{Name: "next_attempt_ms", Def: "BIGINT NOT NULL DEFAULT 0"},
		{Name: "claimed_by", Def: d.Text(255) + " NOT NULL DEFAULT ''"},
		{Name: "claimed_until_ms", Def: "BIGINT NOT NULL DEFAULT 0"},
		{Name: "last_error", Def: d.Text(1024) + " NOT NULL DEFAULT ''"},
		{Name: "done_at_ms", Def: "BIGINT NOT NULL DEFAULT 0"},
	}
	create = `CREATE TABLE IF NOT EXISTS ` + Table + ` (
		handler_key ` + d.Key() + ` NOT NULL,
		event_id    ` + d.Key() + ` NOT NULL,
		state       ` + d.Text(16) + ` NOT NULL,
		until_ms    BIGINT NOT NULL`
	for _, c := range added {
		create += ",\n\t\t" + c.Name + " " + c.Def
	}
	return create + `,
		PRIMARY KEY (handler_key, event_id)
	)`, added
}

// Migrate creates the table and its indexes when they do not exist, and
// adds the columns a table made by an earlier version lacks; it is
// idempotent and never changes or drops what exists.
func (s SQLStore) Migrate(ctx context.Context) error {
	d := s.dialect()
	create, added := schema(d)
	fail := func(err error) error { return fmt.Errorf("inbox: migrating (%s): %w", d, err) }
	if _, err := s.DB.ExecContext(ctx, create); err != nil {
		return fail(err)
	}
	if err := d.AddMissingColumns(ctx, s.DB, Table, added); err != nil {
		return fail(err)
	}
	if err := d.CreateIndex(ctx, s.DB, Table, Table+"_due", "state, next_attempt_ms, received_ms"); err != nil {
		return fail(err)
	}
	if err := d.CreateIndex(ctx, s.DB, Table, Table+"_until", "state, until_ms"); err != nil {
		return fail(err)
	}
	return nil
}

// Claim inserts a 'processing' row, or takes over one whose lease ended.
func (s SQLStore) Claim(ctx context.Context, key string, id pubsub.ID, lease time.Duration) (State, error) {
	d := s.dialect()
	if err := checkLengths(d, key, id); err != nil {
		return 0, err
	}
	now := time.Now()
	if d == MySQL {
		return s.claimMySQL(ctx, key, id, now, lease)
	}
	q := `INSERT INTO ` + Table + ` (handler_key, event_id, state, until_ms)
		VALUES ($1, $2, 'processing', $3)
		ON CONFLICT (handler_key, event_id) DO UPDATE SET state = 'processing', until_ms = excluded.until_ms
		WHERE ` + Table + `.state = 'processing' AND ` + Table + `.until_ms < $4`
	res, err := d.Exec(ctx, s.DB, q, key, string(id), now.Add(lease).UnixMilli(), now.UnixMilli())
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return Claimed, nil
	}
	return s.claimState(ctx, key, id)
}

// claimMySQL is Claim in two statements, each of which changes exactly
// the rows it counts, so that the count is right whether or not the DSN
// sets clientFoundRows (which makes ON DUPLICATE KEY UPDATE count a row
// it found and left as it was): a new row, or the takeover of a lapsed
// claim (its until_ms, in the past, becomes a time in the future).
func (s SQLStore) claimMySQL(ctx context.Context, key string, id pubsub.ID, now time.Time, lease time.Duration) (State, error) {
	d := MySQL
	until := now.Add(lease).UnixMilli()
	res, err := d.Exec(ctx, s.DB, d.InsertIgnore(Table, []string{"handler_key", "event_id", "state", "until_ms"}, nil),
		key, string(id), "processing", until)
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return Claimed, nil
	}
	res, err = d.Exec(ctx, s.DB, `UPDATE `+Table+` SET until_ms = $3
		WHERE handler_key = $1 AND event_id = $2 AND state = 'processing' AND until_ms < $4`, key, string(id), until, now.UnixMilli())
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return Claimed, nil
	}
	return s.claimState(ctx, key, id)
}

// claimState is what a claim that took nothing found.
func (s SQLStore) claimState(ctx context.Context, key string, id pubsub.ID) (State, error) {
	d := s.dialect()
	var state string
	err := d.QueryRow(ctx, s.DB, `SELECT state FROM `+Table+` WHERE handler_key = $1 AND event_id = $2`, key, string(id)).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Busy, nil // released meanwhile; the redelivery claims it
	case err != nil:
		return 0, err
	case state == "done":
		return AlreadyDone, nil
	}
	return Busy, nil
}

// checkLengths refuses, as a permanent error, a handler key or event ID
// longer than MySQL's key columns keep (255 bytes): cut to a prefix that
// another event shares, it would make that event look handled.
func checkLengths(d Dialect, key string, id pubsub.ID) error {
	if d != MySQL {
		return nil
	}
	if len(key) > 255 || len(id) > 255 {
		return fmt.Errorf("inbox: the handler key (%d bytes) or event ID (%d bytes) is longer than the 255 bytes the MySQL table keeps (%w)",
			len(key), len(id), pubsub.ErrPermanent)
	}
	return nil
}

// Done marks the row handled until keep from now.
func (s SQLStore) Done(ctx context.Context, key string, id pubsub.ID, keep time.Duration) error {
	_, err := s.dialect().Exec(ctx, s.DB, `UPDATE `+Table+` SET state = 'done', until_ms = $3 WHERE handler_key = $1 AND event_id = $2`,
		key, string(id), time.Now().Add(keep).UnixMilli())
	return err
}

// Release deletes a row that is still 'processing'.
func (s SQLStore) Release(ctx context.Context, key string, id pubsub.ID) error {
	_, err := s.dialect().Exec(ctx, s.DB, `DELETE FROM `+Table+` WHERE handler_key = $1 AND event_id = $2 AND state = 'processing'`, key, string(id))
	return err
}

// Clean deletes handled rows past their Keep; run it now and then. It
// never deletes a row that is being handled or waits to be.
func (s SQLStore) Clean(ctx context.Context) (int64, error) {
	res, err := s.dialect().Exec(ctx, s.DB, `DELETE FROM `+Table+` WHERE state = 'done' AND until_ms < $1`, time.Now().UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
