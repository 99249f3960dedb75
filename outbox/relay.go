package outbox

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/internal/lifecycle"
	"github.com/switchyard-go/switchyard/pubsub"
)

// RelayConfig configures a [Relay]. DB, Dialect and Publisher are
// required; every other zero value is the default its doc states.
type RelayConfig struct {
	// DB holds the outbox table (see [Migrate]). The caller owns it.
	DB *sql.DB
	// Dialect is DB's SQL dialect.
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
	// PollInterval is the wait after finding nothing to publish.
	// default: 100ms
	PollInterval time.Duration
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
}

// Validate reports the first field of c that holds an invalid value.
func (c RelayConfig) Validate() error {
	switch {
	case c.DB == nil:
		return errors.New("outbox: RelayConfig.DB is required")
	case !c.Dialect.valid():
		return errors.New("outbox: RelayConfig.Dialect must be Postgres or SQLite")
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
	cfg  RelayConfig
	gate *lifecycle.Gate
}

// NewRelay returns a relay; Run starts it.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Relay{cfg: cfg, gate: lifecycle.NewGate()}, nil
}

// Run publishes until ctx is done or Close is called; it then returns
// after the batch in hand. It returns nil when stopped that way. Errors
// of the database or the publisher are logged, reported to Hooks, and
// retried; they do not stop it.
func (r *Relay) Run(ctx context.Context) error {
	if !r.gate.Enter() {
		return pubsub.ErrClosed
	}
	defer r.gate.Leave()
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
			continue // more may be waiting
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
		}
	}
}

// Close stops Run and waits for it. It is safe to call more than once.
func (r *Relay) Close() error {
	r.gate.Close()
	return nil
}

type row struct {
	id    int64
	ev    pubsub.Event
	tries int
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
	ids := make([]any, len(rows))
	for i, rw := range rows {
		evs[i], ids[i] = rw.ev, rw.id
	}
	// Publishing is bounded by the lease: past it, another relay may
	// claim the rows.
	pctx, cancel := context.WithTimeout(ctx, r.cfg.Lease)
	perr := r.cfg.Publisher.Emit(pctx, evs...)
	cancel()
	now := time.Now().UnixMilli()
	if perr == nil {
		_, err := r.exec(ctx, `UPDATE `+Table+` SET status = 'sent', done_at_ms = $1, claimed_until_ms = 0
			WHERE claimed_by = $2 AND id IN (`+placeholders(3, len(ids))+`)`, append([]any{now, r.cfg.Name}, ids...)...)
		if err != nil {
			return len(rows), fmt.Errorf("outbox: marking %d rows sent (they will be published again): %w", len(rows), err)
		}
		if r.cfg.Hooks.Published != nil {
			r.cfg.Hooks.Published(len(rows))
		}
		return len(rows), nil
	}
	if r.cfg.Hooks.Failed != nil {
		r.cfg.Hooks.Failed(len(rows), perr)
	}
	dead := 0
	for _, rw := range rows {
		tries := rw.tries + 1
		status, next := "pending", now+r.cfg.Backoff(tries).Milliseconds()
		if tries >= r.cfg.MaxAttempts {
			status, dead = "dead", dead+1
			r.cfg.Logger.Error("outbox: event dead after its last attempt", "event_id", rw.ev.ID, "event_name", rw.ev.Name, "tries", tries, "err", perr)
		}
		var doneAt int64
		if status == "dead" {
			doneAt = now
		}
		_, err := r.exec(ctx, `UPDATE `+Table+` SET status = $1, tries = $2, next_attempt_ms = $3, last_error = $4,
			claimed_until_ms = 0, done_at_ms = $5 WHERE id = $6 AND claimed_by = $7`,
			status, tries, next, truncate(perr.Error()), doneAt, rw.id, r.cfg.Name)
		if err != nil {
			return len(rows), fmt.Errorf("outbox: recording a failed publish: %w", err)
		}
	}
	if dead > 0 && r.cfg.Hooks.Dead != nil {
		r.cfg.Hooks.Dead(dead)
	}
	return len(rows), fmt.Errorf("outbox: publishing %d events: %w", len(rows), perr)
}

func (r *Relay) claim(ctx context.Context) ([]row, error) {
	now := time.Now()
	q, err := r.cfg.DB.QueryContext(ctx, r.cfg.Dialect.claimSQL(),
		r.cfg.Name, now.Add(r.cfg.Lease).UnixMilli(), now.UnixMilli(), r.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("outbox: claiming rows: %w", err)
	}
	defer q.Close()
	var rows []row
	for q.Next() {
		var rw row
		var id, name, corr string
		var createdNs int64
		if err := q.Scan(&rw.id, &id, &name, &rw.ev.Payload, &createdNs, &corr, &rw.ev.Meta.Attempts, &rw.ev.Meta.IsDryRun, &rw.tries); err != nil {
			return nil, fmt.Errorf("outbox: reading claimed rows: %w", err)
		}
		rw.ev.ID, rw.ev.Name, rw.ev.Meta.CorrelationID = pubsub.ID(id), pubsub.Name(name), corr
		rw.ev.Meta.CreatedAtUTC = time.Unix(0, createdNs).UTC()
		rows = append(rows, rw)
	}
	if err := q.Err(); err != nil {
		return nil, fmt.Errorf("outbox: reading claimed rows: %w", err)
	}
	// RETURNING gives no order; publish oldest first.
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(a.id, b.id) })
	return rows, nil
}

// Clean deletes sent rows older than KeepSent and, when KeepDead is set,
// dead rows older than it; pending rows are never deleted. It returns how
// many rows it deleted.
func (r *Relay) Clean(ctx context.Context) (int, error) {
	now := time.Now()
	total := 0
	del := func(status string, keep time.Duration) error {
		res, err := r.exec(ctx, `DELETE FROM `+Table+` WHERE id IN (
			SELECT id FROM `+Table+` WHERE status = $1 AND done_at_ms < $2 ORDER BY id LIMIT 10000)`,
			status, now.Add(-keep).UnixMilli())
		if err != nil {
			return fmt.Errorf("outbox: deleting %s rows: %w", status, err)
		}
		n, _ := res.RowsAffected()
		total += int(n)
		return nil
	}
	if r.cfg.KeepSent >= 0 {
		if err := del("sent", r.cfg.KeepSent); err != nil {
			return total, err
		}
	}
	if r.cfg.KeepDead > 0 {
		if err := del("dead", r.cfg.KeepDead); err != nil {
			return total, err
		}
	}
	if total > 0 && r.cfg.Hooks.Deleted != nil {
		r.cfg.Hooks.Deleted(total)
	}
	return total, nil
}

func (r *Relay) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	// Outcomes are recorded even as ctx ends: an unrecorded publish would
	// be published again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return r.cfg.DB.ExecContext(ctx, q, args...)
}

func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("$" + strconv.Itoa(from+i))
	}
	return b.String()
}

func truncate(s string) string {
	if len(s) > 1000 {
		return s[:1000]
	}
	return s
}
