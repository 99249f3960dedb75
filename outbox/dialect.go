package outbox

import "fmt"

// Dialect is the SQL database the outbox table lives in.
type Dialect int

const (
	// Postgres is PostgreSQL through database/sql (github.com/jackc/pgx/v5/stdlib).
	// Relays claim rows with FOR UPDATE SKIP LOCKED.
	Postgres Dialect = iota + 1
	// SQLite is SQLite through database/sql (modernc.org/sqlite, pure Go).
	// SQLite has a single writer, so each claim is atomic without locks.
	SQLite
)

// String names the dialect.
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case SQLite:
		return "sqlite"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

func (d Dialect) valid() bool { return d == Postgres || d == SQLite }

// Table is the outbox table's name.
const Table = "switchyard_outbox"

// schema returns the statements that make the table and its index; each
// is idempotent. Times are Unix milliseconds, the same on both dialects.
func (d Dialect) schema() []string {
	id, blob := "BIGSERIAL PRIMARY KEY", "BYTEA"
	if d == SQLite {
		id, blob = "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + Table + ` (
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
		)`,
		`CREATE INDEX IF NOT EXISTS ` + Table + `_due ON ` + Table + ` (status, next_attempt_ms, id)`,
	}
}

// claimSQL claims up to $4 due rows for relay $1 until $2 (ms), at now $3,
// oldest first, and returns them.
func (d Dialect) claimSQL() string {
	lock := ""
	if d == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	return `UPDATE ` + Table + ` SET claimed_by = $1, claimed_until_ms = $2
		WHERE id IN (
			SELECT id FROM ` + Table + `
			WHERE status = 'pending' AND next_attempt_ms <= $3 AND claimed_until_ms <= $3
			ORDER BY id LIMIT $4` + lock + `
		)
		RETURNING id, event_id, name, payload, created_at_ns, correlation_id, attempts, dry_run, tries`
}
