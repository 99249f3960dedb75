package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// Table is the SQL store's table.
const Table = "switchyard_inbox"

// SQLStore keeps claims in a SQL table (PostgreSQL or SQLite: the SQL is
// the same), which can live in the database of the service's own data.
// It never closes the DB.
type SQLStore struct {
	DB *sql.DB
}

// Migrate creates the table when it does not exist; it is idempotent and
// never drops anything.
func (s SQLStore) Migrate(ctx context.Context) error {
	_, err := s.DB.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+Table+` (
		handler_key TEXT   NOT NULL,
		event_id    TEXT   NOT NULL,
		state       TEXT   NOT NULL,
		until_ms    BIGINT NOT NULL,
		PRIMARY KEY (handler_key, event_id)
	)`)
	if err != nil {
		return fmt.Errorf("inbox: migrating: %w", err)
	}
	return nil
}

// Claim inserts a 'processing' row, or takes over one whose lease ended.
func (s SQLStore) Claim(ctx context.Context, key string, id pubsub.ID, lease time.Duration) (State, error) {
	now := time.Now()
	res, err := s.DB.ExecContext(ctx, `INSERT INTO `+Table+` (handler_key, event_id, state, until_ms)
		VALUES ($1, $2, 'processing', $3)
		ON CONFLICT (handler_key, event_id) DO UPDATE SET state = 'processing', until_ms = excluded.until_ms
		WHERE `+Table+`.state = 'processing' AND `+Table+`.until_ms < $4`,
		key, string(id), now.Add(lease).UnixMilli(), now.UnixMilli())
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return Claimed, nil
	}
	var state string
	err = s.DB.QueryRowContext(ctx, `SELECT state FROM `+Table+` WHERE handler_key = $1 AND event_id = $2`, key, string(id)).Scan(&state)
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

// Done marks the row handled until keep from now.
func (s SQLStore) Done(ctx context.Context, key string, id pubsub.ID, keep time.Duration) error {
	_, err := s.DB.ExecContext(ctx, `UPDATE `+Table+` SET state = 'done', until_ms = $3 WHERE handler_key = $1 AND event_id = $2`,
		key, string(id), time.Now().Add(keep).UnixMilli())
	return err
}

// Release deletes a row that is still 'processing'.
func (s SQLStore) Release(ctx context.Context, key string, id pubsub.ID) error {
	_, err := s.DB.ExecContext(ctx, `DELETE FROM `+Table+` WHERE handler_key = $1 AND event_id = $2 AND state = 'processing'`, key, string(id))
	return err
}

// Clean deletes handled rows past their Keep; run it now and then.
func (s SQLStore) Clean(ctx context.Context) (int64, error) {
	res, err := s.DB.ExecContext(ctx, `DELETE FROM `+Table+` WHERE state = 'done' AND until_ms < $1`, time.Now().UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
