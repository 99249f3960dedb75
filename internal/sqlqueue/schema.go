package sqlqueue

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Column is a column a migration makes sure a table has.
type Column struct {
	// Name is the column's name.
	Name string
	// Def is its type and default, as in CREATE TABLE.
	Def string
}

// AddMissingColumns adds to table the columns it lacks, as tables made by
// an earlier version do. It never changes or drops a column. The columns
// are read from the catalog, not from a SELECT * whose plan a driver may
// have cached before the table changed (PostgreSQL then refuses it).
func (d Dialect) AddMissingColumns(ctx context.Context, db *sql.DB, table string, cols []Column) error {
	have, err := d.columns(ctx, db, table)
	if err != nil {
		return fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	present := map[string]bool{}
	for _, c := range have {
		present[strings.ToLower(c)] = true
	}
	for _, c := range cols {
		if present[strings.ToLower(c.Name)] {
			continue
		}
		if _, err := db.ExecContext(ctx, `ALTER TABLE `+table+` ADD COLUMN `+c.Name+` `+c.Def); err != nil &&
			!strings.Contains(strings.ToLower(err.Error()), "duplicate column") && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("adding column %s to %s: %w", c.Name, table, err)
		}
	}
	return nil
}

// columns names the columns of table, as the catalog of d lists them.
func (d Dialect) columns(ctx context.Context, db *sql.DB, table string) ([]string, error) {
	q := `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`
	switch d {
	case SQLite:
		q = `SELECT name FROM pragma_table_info($1)`
	case MySQL:
		q = `SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = $1`
	}
	rs, err := d.Query(ctx, db, q, table)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var names []string
	for rs.Next() {
		var n string
		if err := rs.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	if err := rs.Err(); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no table %s", table)
	}
	return names, nil
}

// CreateIndex creates the index name on table (cols) when it does not
// exist. MySQL 8 has no CREATE INDEX IF NOT EXISTS, so there the index
// is looked up first.
func (d Dialect) CreateIndex(ctx context.Context, db *sql.DB, table, name, cols string) error {
	if d != MySQL {
		if _, err := db.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS `+name+` ON `+table+` (`+cols+`)`); err != nil {
			return fmt.Errorf("creating index %s: %w", name, err)
		}
		return nil
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.statistics
		WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?`, table, name).Scan(&n); err != nil {
		return fmt.Errorf("looking for index %s: %w", name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := db.ExecContext(ctx, `CREATE INDEX `+name+` ON `+table+` (`+cols+`)`); err != nil &&
		!strings.Contains(err.Error(), "Duplicate key name") { // a concurrent migration made it
		return fmt.Errorf("creating index %s: %w", name, err)
	}
	return nil
}
