package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// The states of a [Queue]'s records, in the table's state column.
const (
	// RecordPending is a record waiting for its handler, or for its next
	// try after a failed one (then Tries > 0 and LastError says why), or
	// being handled (claimed under a lease that has not ended).
	RecordPending = "pending"
	// RecordDone is a record whose handler returned nil; it is kept for
	// Keep, so that a duplicate of its event is not handled again.
	RecordDone = "done"
	// RecordDead is a record whose last try failed; it is kept for
	// KeepDead (by default until [Queue.Retry] or someone deletes it).
	RecordDead = "dead"
)

// ErrNoRecord is returned for a record that does not exist.
var ErrNoRecord = errors.New("inbox: no such record")

// ErrNotDead is returned by [Queue.Retry] for a record that is not dead.
var ErrNotDead = errors.New("inbox: record is not dead")

// Record is an event stored by [Queue.Store] for one handler key.
type Record struct {
	// Key is the handler key the record is for.
	Key string
	// Event is the stored event; its Meta.Attempts is as the broker
	// delivered it. The handler is given it with Meta.Attempts = Tries.
	Event pubsub.Event
	// State is RecordPending, RecordDone or RecordDead.
	State string
	// Tries is how many tries failed.
	Tries int
	// LastError is the error of the last failed try, cut to 1000 bytes.
	LastError string
	// ReceivedAt is when the event was stored.
	ReceivedAt time.Time
	// NextAttempt is when a pending record that failed is due again;
	// it is zero for one that never failed.
	NextAttempt time.Time
	// ClaimedBy is the Name of the queue that claimed the record last.
	ClaimedBy string
	// LeaseEnd is when the claim of a record being handled ends: a
	// pending record is being handled while LeaseEnd is in the future.
	// It is zero when the record is not claimed.
	LeaseEnd time.Time
}

// recordColumns are the columns of a record but for its key and tries,
// in the order scanRecord reads them.
const recordColumns = "state, last_error, received_ms, next_attempt_ms, claimed_by, claimed_until_ms, " +
	"name, payload, created_at_ns, correlation_id, attempts, dry_run"

// scanClaimed reads recordColumns into a record.
func scanClaimed(scan func(dest ...any) error) (Record, error) {
	var r Record
	var received, next, leaseEnd, created int64
	var name, corr sql.NullString
	if err := scan(&r.State, &r.LastError, &received, &next, &r.ClaimedBy, &leaseEnd, &name, &r.Event.Payload, &created, &corr,
		&r.Event.Meta.Attempts, &r.Event.Meta.IsDryRun); err != nil {
		return r, err
	}
	r.Event.Name, r.Event.Meta.CorrelationID = pubsub.Name(name.String), corr.String
	if created != 0 {
		r.Event.Meta.CreatedAtUTC = time.Unix(0, created).UTC()
	}
	if r.Event.Payload == nil {
		r.Event.Payload = []byte{}
	}
	r.ReceivedAt = time.UnixMilli(received)
	if next > 0 {
		r.NextAttempt = time.UnixMilli(next)
	}
	if leaseEnd > 0 {
		r.LeaseEnd = time.UnixMilli(leaseEnd)
	}
	return r, nil
}

// scanRecord reads handler_key, event_id, tries and recordColumns.
func scanRecord(rs interface{ Scan(...any) error }) (Record, error) {
	var key, id string
	var tries int
	r, err := scanClaimed(func(dest ...any) error { return rs.Scan(append([]any{&key, &id, &tries}, dest...)...) })
	r.Key, r.Event.ID, r.Tries = key, pubsub.ID(id), tries
	return r, err
}

// Record returns the record of event id for key, in any state, or
// [ErrNoRecord].
func (q *Queue) Record(ctx context.Context, key string, id pubsub.ID) (Record, error) {
	d := q.cfg.Store.Dialect
	r, err := scanRecord(d.QueryRow(ctx, q.cfg.Store.DB, `SELECT handler_key, event_id, tries, `+recordColumns+` FROM `+Table+
		` WHERE handler_key = $1 AND event_id = $2`, key, string(id)))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Record{}, fmt.Errorf("%w: %s for %q", ErrNoRecord, id, key)
	case err != nil:
		return Record{}, fmt.Errorf("inbox: reading the record of %s for %q: %w", id, key, err)
	}
	return r, nil
}

// Dead returns up to limit dead records of the keys registered on q,
// those that died first first; limit 0 means 100.
func (q *Queue) Dead(ctx context.Context, limit int) ([]Record, error) {
	sq := q.sq.Load()
	if sq == nil {
		return nil, nil
	}
	if limit <= 0 {
		limit = 100
	}
	in, args := keyList(stringArgs(sq.WhereArgs), 3)
	rs, err := q.cfg.Store.Dialect.Query(ctx, q.cfg.Store.DB, `SELECT handler_key, event_id, tries, `+recordColumns+` FROM `+Table+
		` WHERE state = $1 AND handler_key IN `+in+` ORDER BY done_at_ms, event_id LIMIT $2`,
		append([]any{RecordDead, limit}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("inbox: reading dead records: %w", err)
	}
	defer rs.Close()
	var out []Record
	for rs.Next() {
		r, err := scanRecord(rs)
		if err != nil {
			return nil, fmt.Errorf("inbox: reading dead records: %w", err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("inbox: reading dead records: %w", err)
	}
	return out, nil
}

func stringArgs(args []any) []string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = a.(string)
	}
	return s
}

// Retry makes the dead record of event id for key pending again, due
// now, with its tries and last error cleared; it returns [ErrNotDead]
// when there is no such dead record. Whichever queue has key registered
// handles it.
func (q *Queue) Retry(ctx context.Context, key string, id pubsub.ID) error {
	res, err := q.cfg.Store.Dialect.Exec(ctx, q.cfg.Store.DB, `UPDATE `+Table+` SET state = $3, tries = 0, next_attempt_ms = 0,
		claimed_by = '', claimed_until_ms = 0, last_error = '', done_at_ms = 0
		WHERE handler_key = $1 AND event_id = $2 AND state = $4`, key, string(id), RecordPending, RecordDead)
	if err != nil {
		return fmt.Errorf("inbox: retrying %s for %q: %w", id, key, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %s for %q", ErrNotDead, id, key)
	}
	return nil
}
