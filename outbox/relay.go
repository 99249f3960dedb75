package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/internal/lifecycle"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/internal/sqlqueue"
	"github.com/switchyard-go/switchyard/internal/tracing"
	"github.com/switchyard-go/switchyard/pubsub"
)

// RelayConfig configures a [Relay]. DB, Dialect and Publisher are
// required; every other zero value is the default its doc states.
type RelayConfig struct {
	// DB holds the outbox table (see [Migrate]). The caller owns it.
	DB *sql.DB
	// Dialect is DB's SQL dialect.
	// default: detected from DB's driver (pgx, modernc.org/sqlite,
	// go-sql-driver/mysql)
	Dialect Dialect
	// Publisher receives the events. The caller owns it.
	Publisher pubsub.Publisher
	// Name identifies this relay in the rows it claims.
	// default: "<host>-<pid>-<n>"
	Name string
	// BatchSize is how many rows one claim takes.
	// default: 100
	BatchSize int
	// Lease is how long claimed rows belong to this relay; a relay that
	// dies holding rows gives them up when it ends, to whichever relay
	// claims next. It must exceed the longest Emit of a batch.
	// default: 30s
	Lease time.Duration
	// PollInterval is the wait after finding nothing to publish. On
	// PostgreSQL a relay is also woken when rows commit (see NoNotify), so
	// there it only bounds the delay while notifications do not arrive.
	// default: 100ms
	PollInterval time.Duration
	// NoNotify turns LISTEN/NOTIFY off: the relay then only polls.
	// Otherwise, on PostgreSQL through pgx's database/sql driver
	// (github.com/jackc/pgx/v5/stdlib), Run holds one connection of DB
	// that listens on NotifyChannel, which the trigger Migrate installs
	// notifies once per committed transaction that inserted into the
	// outbox, whoever wrote the rows; each notification wakes the relay at
	// once. When the listener fails, Run logs it (at most once a minute),
	// polls, and reconnects with a backoff. Other drivers and dialects
	// only poll, and so does a relay whose listener would leave its DB
	// (limited by SetMaxOpenConns) no connection besides those the
	// listeners of the process's relays on it hold and one to claim with.
	// default: false (notifications on where they work)
	NoNotify bool
	// MaxAttempts is how many failed publishes a row gets before it is
	// marked dead.
	// default: 10
	MaxAttempts int
	// Backoff is the wait before a failed row is tried again.
	// default: pubsub.ExponentialBackoff(time.Second, 5*time.Minute)
	Backoff pubsub.Backoff
	// KeepSent is how long published rows are kept before Run deletes
	// them; negative keeps them forever.
	// default: 24h
	KeepSent time.Duration
	// KeepDead is how long dead rows are kept; 0 keeps them forever, so
	// that someone looks at them.
	// default: 0
	KeepDead time.Duration
	// Hooks are told what the relay does, for metrics.
	Hooks Hooks
	// Logger receives errors and dead rows.
	// default: nil, which discards
	Logger *slog.Logger
}

// Hooks are optional callbacks; each may be nil. They must not block.
type Hooks struct {
	// Published is called after n events were published.
	Published func(n int)
	// Failed is called when publishing n claimed events failed.
	Failed func(n int, err error)
	// Dead is called when n events were marked dead.
	Dead func(n int)
	// Deleted is called when retention deleted n rows.
	Deleted func(n int)
}

var relaySeq struct {
	sync.Mutex
	n int
}

func (c *RelayConfig) setDefaults() {
	if c.Name == "" {
		host, _ := os.Hostname()
		relaySeq.Lock()
		relaySeq.n++
		c.Name = fmt.Sprintf("%s-%d-%d", host, os.Getpid(), relaySeq.n)
		relaySeq.Unlock()
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.Lease == 0 {
		c.Lease = 30 * time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = 100 * time.Millisecond
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if c.Backoff == nil {
		c.Backoff = pubsub.ExponentialBackoff(time.Second, 5*time.Minute)
	}
	if c.KeepSent == 0 {
		c.KeepSent = 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Dialect == 0 {
		c.Dialect = sqlqueue.Detect(c.DB)
	}
}

// Validate reports the first field of c that holds an invalid value.
func (c RelayConfig) Validate() error {
	switch {
	case c.DB == nil:
		return errors.New("outbox: RelayConfig.DB is required")
	case c.Dialect != 0 && !c.Dialect.Valid(), c.Dialect == 0 && sqlqueue.Detect(c.DB) == 0:
		return errors.New("outbox: RelayConfig.Dialect must be Postgres, SQLite or MySQL (it is detected from the drivers pgx, modernc.org/sqlite and go-sql-driver/mysql)")
	case c.Publisher == nil:
		return errors.New("outbox: RelayConfig.Publisher is required")
	case c.BatchSize < 0 || c.MaxAttempts < 0 || c.Lease < 0 || c.PollInterval < 0 || c.KeepDead < 0:
		return errors.New("outbox: RelayConfig.BatchSize, MaxAttempts, Lease, PollInterval and KeepDead must not be negative")
	}
	return nil
}

// Relay publishes what services wrote to the outbox, oldest first, and
// marks it sent. Several relays may run on one table: each claims rows
// with a lease, so no row is published by two relays at once, and rows
// of a relay that died are taken over when their lease ends.
type Relay struct {
	cfg   RelayConfig
	gate  *lifecycle.Gate
	queue *sqlqueue.Queue
	// listening, when set (by tests), is called with the backend's PID
	// each time the listener has run LISTEN.
	listening func(pid uint32)
	// notified, when set (by tests), is called for each notification.
	notified func()
}

// NewRelay returns a relay; Run starts it.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	q := &sqlqueue.Queue{DB: cfg.DB, Dialect: cfg.Dialect, Table: queueTable, Owner: cfg.Name,
		Lease: cfg.Lease, MaxTries: cfg.MaxAttempts, Backoff: sqlqueue.Backoff(cfg.Backoff)}
	return &Relay{cfg: cfg, gate: lifecycle.NewGate(), queue: q}, nil
}

// Run publishes until ctx is done or Close is called; either ends the
// context of the batch in hand's Emit, and Run returns once that Emit
// has (and, on PostgreSQL, once its listener has closed its
// connection); rows whose outcome was not recorded are published again
// after their lease. It returns nil when stopped that way. Errors
// of the database or the publisher are logged, reported to Hooks, and
// retried; they do not stop it.
func (r *Relay) Run(ctx context.Context) error {
	if !r.gate.Enter() {
		return pubsub.ErrClosed
	}
	defer r.gate.Leave()
	// Close ends the batch in hand as ctx's end does: its Emit's context
	// is cancelled, so that Close does not wait out a hanging publish
	// (up to Lease). Rows whose outcome was not recorded are published
	// again once their lease ends.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.gate.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	var wake <-chan struct{} // nil, which never fires, when polling only
	if r.notifies() && reserveListener(r.cfg.DB) {
		defer releaseListener(r.cfg.DB)
		lctx, stop := context.WithCancel(ctx)
		ch := make(chan struct{}, 1) // a burst of notifications is one wake
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.listen(lctx, ch)
		}()
		defer func() {
			stop()
			<-done
		}()
		wake = ch
	}
	lastClean := time.Time{}
	for {
		n, err := r.Step(ctx)
		if err != nil && ctx.Err() == nil {
			r.cfg.Logger.Error("outbox: relay step", "relay", r.cfg.Name, "err", err)
		}
		if time.Since(lastClean) > time.Minute {
			if _, err := r.Clean(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Error("outbox: retention", "err", err)
			}
			lastClean = time.Now()
		}
		if n > 0 && err == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-r.gate.Done():
				return nil
			default:
				continue // more may be waiting
			}
		}
		t := time.NewTimer(r.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.gate.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-wake:
			t.Stop()
		}
	}
}

// Close stops Run and waits for it. It is safe to call more than once.
func (r *Relay) Close() error {
	r.gate.Close()
	return nil
}

// Step claims one batch, publishes it and records the outcome; it returns
// how many rows it claimed. Run calls it in a loop; tests and callers
// with their own scheduling may call it directly.
func (r *Relay) Step(ctx context.Context) (int, error) {
	rows, err := r.claim(ctx)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	evs := make([]pubsub.Event, len(rows))
	var parents []trace.SpanContext // made when a row has trace context
	for i, rw := range rows {
		evs[i] = rw.Value.ev
		if rw.Value.parent.IsValid() {
			if parents == nil {
				parents = make([]trace.SpanContext, len(rows))
			}
			parents[i] = rw.Value.parent
		}
	}
	// Publishing is bounded by the lease: past it, another relay may
	// claim the rows.
	pctx, cancel := context.WithTimeout(ctx, r.cfg.Lease)
	if parents != nil {
		// Each event continues the trace of the request that wrote it.
		pctx = tracing.WithEventParents(pctx, parents)
	}
	perr := r.cfg.Publisher.Emit(pctx, evs...)
	cancel()
	if perr == nil {
		// Published: record it even when ctx ended meanwhile (Close or
		// shutdown), rather than publish the batch again.
		mctx, mcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_, err := r.queue.Done(mctx, sqlqueue.Keys(rows))
		mcancel()
		if err != nil {
			return len(rows), fmt.Errorf("outbox: %w (they will be published again)", err)
		}
		if r.cfg.Hooks.Published != nil {
			r.cfg.Hooks.Published(len(rows))
		}
		return len(rows), nil
	}
	if r.cfg.Hooks.Failed != nil {
		r.cfg.Hooks.Failed(len(rows), perr)
	}
	dead, now := 0, time.Now()
	for _, rw := range rows {
		isDead, err := r.queue.Failed(ctx, rw.Key, rw.Tries, now, perr)
		if err != nil {
			return len(rows), fmt.Errorf("outbox: %w", err)
		}
		if isDead {
			dead++
			r.cfg.Logger.Error("outbox: event dead after its last attempt", "event_id", rw.Value.ev.ID, "event_name", rw.Value.ev.Name,
				"tries", rw.Tries+1, "ordering_key", rw.OrderingKey, "err", perr)
		}
	}
	if dead > 0 && r.cfg.Hooks.Dead != nil {
		r.cfg.Hooks.Dead(dead)
	}
	return len(rows), fmt.Errorf("outbox: publishing %d events: %w", len(rows), perr)
}

// row is what a relay reads of a claimed row: its event, and the trace
// context the event continues (not valid when none).
type row struct {
	ev     pubsub.Event
	parent trace.SpanContext
}

func (r *Relay) claim(ctx context.Context) ([]sqlqueue.Row[row], error) {
	rows, err := sqlqueue.Claim(ctx, r.queue, r.cfg.BatchSize, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return rows, nil
}

// scanEvent reads queueTable.Columns into a row. Trace context that does
// not parse (a row edited by hand) is ignored: the event is published
// without it.
func scanEvent(scan func(dest ...any) error) (row, error) {
	var ev pubsub.Event
	var id, name, corr string
	var createdNs int64
	var traceparent, tracestate sql.NullString
	if err := scan(&id, &name, &ev.Payload, &createdNs, &corr, &ev.Meta.Attempts, &ev.Meta.IsDryRun, &traceparent, &tracestate); err != nil {
		return row{}, err
	}
	ev.ID, ev.Name, ev.Meta.CorrelationID = pubsub.ID(id), pubsub.Name(name), corr
	ev.Meta.CreatedAtUTC = time.Unix(0, createdNs).UTC()
	if ev.Payload == nil {
		ev.Payload = []byte{}
	}
	return row{ev: ev, parent: tracing.Parse(traceparent.String, tracestate.String)}, nil
}

// Clean deletes sent rows older than KeepSent and, when KeepDead is set,
// dead rows older than it; pending rows are never deleted. It returns how
// many rows it deleted.
func (r *Relay) Clean(ctx context.Context) (int, error) {
	n, err := r.queue.Clean(ctx, r.cfg.KeepSent, r.cfg.KeepDead)
	if err == nil {
		err = r.cleanKeys(ctx, time.Now().Add(-24*time.Hour).UnixMilli())
	}
	if n > 0 && r.cfg.Hooks.Deleted != nil {
		r.cfg.Hooks.Deleted(n)
	}
	if err != nil {
		return n, fmt.Errorf("outbox: %w", err)
	}
	return n, nil
}

// cleanKeys deletes the rows of ordering keys nobody wrote since before
// (Unix ms), up to 10,000: the next write makes the row again. A key row
// a writer holds locked is skipped, not waited for, so that a long
// transaction writing a key idle for a day does not stop the relay; the
// writer's update makes it recent anyway.
func (r *Relay) cleanKeys(ctx context.Context, before int64) error {
	d, db := r.cfg.Dialect, r.cfg.DB
	switch d {
	case SQLite: // one writer: nothing is locked by another
		_, err := d.Exec(ctx, db, `DELETE FROM `+KeysTable+` WHERE updated_ms < $1`, before)
		return err
	case Postgres:
		_, err := d.Exec(ctx, db, `DELETE FROM `+KeysTable+` WHERE ordering_key IN (
			SELECT ordering_key FROM `+KeysTable+` WHERE updated_ms < $1 LIMIT 10000 FOR UPDATE SKIP LOCKED)`, before)
		return err
	}
	// MySQL takes neither SKIP LOCKED in a DELETE nor a subquery on the
	// table it deletes from: the rows are locked, then deleted.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	rs, err := d.Query(ctx, tx, `SELECT ordering_key FROM `+KeysTable+` WHERE updated_ms < $1 LIMIT 10000 FOR UPDATE SKIP LOCKED`, before)
	if err != nil {
		return err
	}
	var keys []any
	for rs.Next() {
		var k []byte
		if err := rs.Scan(&k); err != nil {
			rs.Close()
			return err
		}
		keys = append(keys, k)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	in, args := sqlqueue.InList("ordering_key", keys, 1)
	if _, err := d.Exec(ctx, tx, `DELETE FROM `+KeysTable+` WHERE `+in, args...); err != nil {
		return err
	}
	return tx.Commit()
}
