package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// Execer is what Write needs of a transaction: *sql.Tx, or *sql.DB and
// *sql.Conn outside one.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Write stores the events in the outbox in tx, the transaction of the
// business change they announce: they are published if and only if it
// commits. It validates them first (see [pubsub.Event.Validate]) and
// writes none when one is invalid. The SQL works on both dialects.
func Write(ctx context.Context, tx Execer, events ...pubsub.Event) error {
	if err := pubsub.ValidateAll(events); err != nil {
		return err
	}
	for _, ev := range events {
		created := ev.Meta.CreatedAtUTC
		if created.IsZero() {
			created = time.Now()
		}
		payload := ev.Payload
		if payload == nil {
			payload = []byte{}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO `+Table+`
			(event_id, name, payload, created_at_ns, correlation_id, attempts, dry_run)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			string(ev.ID), string(ev.Name), payload, created.UnixNano(), ev.Meta.CorrelationID, ev.Meta.Attempts, ev.Meta.IsDryRun)
		if err != nil {
			return fmt.Errorf("outbox: writing event %s: %w", ev.ID, err)
		}
	}
	return nil
}

// Migrate creates the outbox table and its index when they do not exist.
// It is idempotent, changes nothing that exists, and never drops anything.
func Migrate(ctx context.Context, db *sql.DB, d Dialect) error {
	if !d.valid() {
		return fmt.Errorf("outbox: unknown dialect %v", d)
	}
	for _, stmt := range d.schema() {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("outbox: migrating (%s): %w", d, err)
		}
	}
	return nil
}
