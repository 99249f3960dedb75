// Package sqlqueue is the work queue in a SQL table that the outbox relay
// and the stored inbox share: rows are claimed in batches under a lease
// (FOR UPDATE SKIP LOCKED where the database has it), processed, and
// marked done, or tried again after a backoff, or dead after their last
// try; retention deletes done rows and, when asked, dead ones. It also
// holds what the packages need to speak three SQL dialects.
package sqlqueue

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// Dialect is the SQL database a table lives in.
type Dialect int

const (
	// Postgres is PostgreSQL through database/sql (github.com/jackc/pgx/v5/stdlib).
	Postgres Dialect = iota + 1
	// SQLite is SQLite through database/sql (modernc.org/sqlite).
	SQLite
	// MySQL is MySQL 8 or MariaDB 10.6+ (github.com/go-sql-driver/mysql).
	MySQL
)

// String names the dialect.
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case SQLite:
		return "sqlite"
	case MySQL:
		return "mysql"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// Valid reports whether d is one of the dialects.
func (d Dialect) Valid() bool { return d >= Postgres && d <= MySQL }

// Detect names the dialect of db's driver, or returns 0 when it is none
// of the drivers the dialects are tested with.
func Detect(db *sql.DB) Dialect {
	if db == nil {
		return 0
	}
	t := fmt.Sprintf("%T", db.Driver())
	switch {
	case strings.Contains(t, "stdlib.Driver"), strings.Contains(t, "pgx"), strings.Contains(t, "pq.Driver"):
		return Postgres
	case strings.Contains(t, "sqlite"):
		return SQLite
	case strings.Contains(t, "mysql"):
		return MySQL
	}
	return 0
}

// Rebind turns a query written with $1, $2, … into d's placeholders, and
// args into the order they then take. PostgreSQL and SQLite take $N as
// written; MySQL takes ? in order, so an argument used twice is passed
// twice.
func (d Dialect) Rebind(query string, args []any) (string, []any) {
	if d != MySQL || !strings.Contains(query, "$") {
		return query, args
	}
	out := make([]any, 0, len(args))
	query = placeholders(query, func(n int) string {
		if n >= 1 && n <= len(args) {
			out = append(out, args[n-1])
		}
		return "?"
	})
	return query, out
}

// placeholders replaces every $N in query with what to(N) returns.
func placeholders(query string, to func(n int) string) string {
	var b strings.Builder
	b.Grow(len(query))
	for i := 0; i < len(query); i++ {
		c := query[i]
		if c != '$' || i+1 >= len(query) || query[i+1] < '0' || query[i+1] > '9' {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(query) && query[j] >= '0' && query[j] <= '9' {
			j++
		}
		n, _ := strconv.Atoi(query[i+1 : j])
		b.WriteString(to(n))
		i = j - 1
	}
	return b.String()
}

// Execer runs statements: *sql.DB, *sql.Tx and *sql.Conn.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Querier runs statements and queries: *sql.DB, *sql.Tx and *sql.Conn.
type Querier interface {
	Execer
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Exec runs query, written with $N placeholders, on e.
func (d Dialect) Exec(ctx context.Context, e Execer, query string, args ...any) (sql.Result, error) {
	query, args = d.Rebind(query, args)
	return e.ExecContext(ctx, query, args...)
}

// Query runs query, written with $N placeholders, on q.
func (d Dialect) Query(ctx context.Context, q Querier, query string, args ...any) (*sql.Rows, error) {
	query, args = d.Rebind(query, args)
	return q.QueryContext(ctx, query, args...)
}

// QueryRow runs query, written with $N placeholders, on q.
func (d Dialect) QueryRow(ctx context.Context, q Querier, query string, args ...any) *sql.Row {
	query, args = d.Rebind(query, args)
	return q.QueryRowContext(ctx, query, args...)
}

// AutoID is the column type of an auto-incremented primary key.
func (d Dialect) AutoID() string {
	switch d {
	case SQLite:
		return "INTEGER PRIMARY KEY AUTOINCREMENT"
	case MySQL:
		return "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY"
	}
	return "BIGSERIAL PRIMARY KEY"
}

// Blob is the column type of bytes of any length.
func (d Dialect) Blob() string {
	switch d {
	case Postgres:
		return "BYTEA"
	case MySQL:
		return "LONGBLOB"
	}
	return "BLOB"
}

// Key is the column type of a string that is part of a key or an index,
// compared byte for byte: MySQL's text collations would fold case and
// trailing spaces, so it is VARBINARY there, limited to 255 bytes.
func (d Dialect) Key() string {
	if d == MySQL {
		return "VARBINARY(255)"
	}
	return "TEXT"
}

// Text is the column type of a string of up to n bytes that has a
// default (MySQL gives TEXT columns no literal default).
func (d Dialect) Text(n int) string {
	if d == MySQL {
		return "VARBINARY(" + strconv.Itoa(n) + ")"
	}
	return "TEXT"
}

// LongText is the column type of a string of any length without a default.
func (d Dialect) LongText() string {
	if d == MySQL {
		return "LONGBLOB"
	}
	return "TEXT"
}

// InsertIgnore is an INSERT of cols into table that does nothing, and
// affects no row, when a row with the same conflict columns exists. On
// MySQL it is INSERT IGNORE, whose count of affected rows, unlike that of
// ON DUPLICATE KEY UPDATE, does not depend on the DSN's clientFoundRows;
// it also turns some errors into warnings (a value too long is cut), so
// the caller checks the lengths of what it inserts.
func (d Dialect) InsertIgnore(table string, cols, conflict []string) string {
	ph := make([]string, len(cols))
	for i := range cols {
		ph[i] = "$" + strconv.Itoa(i+1)
	}
	values := " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(ph, ", ") + ")"
	if d == MySQL {
		return "INSERT IGNORE INTO " + table + values
	}
	return "INSERT INTO " + table + values + " ON CONFLICT (" + strings.Join(conflict, ", ") + ") DO NOTHING"
}
