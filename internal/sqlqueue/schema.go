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
// an earlier version do. It never changes or drops a column.
func (d Dialect) AddMissingColumns(ctx context.Context, db *sql.DB, table string, cols []Column) error {
	rs, err := db.QueryContext(ctx, `SELECT * FROM `+table+` WHERE 1 = 0`)
	if err != nil {
		return fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	have, err := rs.Columns()
	rs.Close()
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

// CheckAffectedRows makes sure db's driver counts the rows a statement
// changed, not those it found: on MySQL, the DSN option clientFoundRows
// would make a duplicate look inserted. It changes nothing.
func (d Dialect) CheckAffectedRows(ctx context.Context, db *sql.DB) error {
	if d != MySQL {
		return nil
	}
	conn, err := db.Conn(ctx) // a temporary table belongs to its connection
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TEMPORARY TABLE IF NOT EXISTS switchyard_probe (k INT PRIMARY KEY)`); err != nil {
		return fmt.Errorf("probing the driver: %w", err)
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `DROP TEMPORARY TABLE IF EXISTS switchyard_probe`)
	}()
	if _, err := conn.ExecContext(ctx, `INSERT INTO switchyard_probe (k) VALUES (1)`); err != nil {
		return fmt.Errorf("probing the driver: %w", err)
	}
	res, err := conn.ExecContext(ctx, `INSERT INTO switchyard_probe (k) VALUES (1) ON DUPLICATE KEY UPDATE k = k`)
	if err != nil {
		return fmt.Errorf("probing the driver: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 0 {
		return fmt.Errorf("the MySQL DSN sets clientFoundRows=true, which makes a duplicate look like a new row; remove it")
	}
	return nil
}
