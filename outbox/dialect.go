package outbox

import "github.com/switchyard-go/switchyard/internal/sqlqueue"

// Dialect is the SQL database the outbox table lives in. It is the same
// type as inbox.Dialect.
type Dialect = sqlqueue.Dialect

const (
	// Postgres is PostgreSQL through database/sql (github.com/jackc/pgx/v5/stdlib).
	// Relays claim rows with FOR UPDATE SKIP LOCKED and wake on
	// LISTEN/NOTIFY.
	Postgres = sqlqueue.Postgres
	// SQLite is SQLite through database/sql (modernc.org/sqlite, pure Go).
	// SQLite has a single writer, so each claim is atomic without locks.
	SQLite = sqlqueue.SQLite
	// MySQL is MySQL 8 or MariaDB 10.6+ through database/sql
	// (github.com/go-sql-driver/mysql). Relays claim rows with FOR UPDATE
	// SKIP LOCKED in a transaction, since MySQL has no UPDATE … RETURNING.
	MySQL = sqlqueue.MySQL
)

// Table is the outbox table's name.
const Table = "switchyard_outbox"

// KeysTable holds a row per ordering key (see [WriteOrdered]): the lock
// that makes writers of one key commit in the order their rows are
// numbered.
const KeysTable = "switchyard_outbox_keys"

// MaxOrderingKey is the longest ordering key, in bytes.
const MaxOrderingKey = 255

// queueTable is the outbox table as the relay's queue sees it.
var queueTable = sqlqueue.Table{
	Name:        Table,
	Key:         []string{"id"},
	Columns:     []string{"event_id", "name", "payload", "created_at_ns", "correlation_id", "attempts", "dry_run", "traceparent", "tracestate"},
	Order:       "id",
	Status:      "status",
	Done:        "sent",
	OrderingKey: "ordering_key",
}

// schema returns the statements that make the tables; each is
// idempotent. Times are Unix milliseconds, the same on every dialect.
// traceparent and tracestate hold the W3C trace context an event
// continues, NULL when it has none (and in rows written before they
// existed).
func schema(d Dialect) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + Table + ` (
			id              ` + d.AutoID() + `,
			event_id        ` + d.LongText() + ` NOT NULL,
			name            ` + d.LongText() + ` NOT NULL,
			payload         ` + d.Blob() + ` NOT NULL,
			created_at_ns   BIGINT  NOT NULL,
			correlation_id  ` + d.LongText() + ` NOT NULL,
			attempts        INTEGER NOT NULL DEFAULT 0,
			dry_run         BOOLEAN NOT NULL DEFAULT FALSE,
			status          ` + d.Text(16) + ` NOT NULL DEFAULT 'pending',
			ordering_key    ` + d.Text(MaxOrderingKey) + ` NOT NULL DEFAULT '',
			traceparent     ` + d.LongText() + `,
			tracestate      ` + d.LongText() + `,
			` + d.LeaseColumns() + `
		)`,
		`CREATE TABLE IF NOT EXISTS ` + KeysTable + ` (
			ordering_key ` + d.Key() + ` NOT NULL PRIMARY KEY,
			writes       BIGINT NOT NULL DEFAULT 0,
			updated_ms   BIGINT NOT NULL DEFAULT 0
		)`,
	}
}
