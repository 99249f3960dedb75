package inbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-go/switchyard/internal/lifecycle"
	"github.com/switchyard-go/switchyard/internal/sqlqueue"
	"github.com/switchyard-go/switchyard/pubsub"
)

// QueueConfig configures a [Queue]. Store is required; every other zero
// value is the default its doc states.
type QueueConfig struct {
	// Store holds the table (see [SQLStore.Migrate]). The caller owns its
	// DB. Required.
	Store SQLStore
	// Name identifies this queue in the records it claims; at most 255
	// bytes.
	// default: "<host>-<pid>-<n>"
	Name string
	// BatchSize is how many records one claim takes.
	// default: 10
	BatchSize int
	// Concurrency is how many records of a batch are handled at once.
	// default: BatchSize
	Concurrency int
	// Timeout bounds each handler call: its context ends then, and the
	// try counts as failed. A handler that ignores its context and has
	// not returned a grace period later (a quarter of Timeout, at most
	// 5s) is abandoned, its try counted as failed, while it goes on
	// running.
	// default: 30s
	Timeout time.Duration
	// Lease is how long claimed records belong to this queue; records of
	// a queue that died are handled by another once their lease ends. It
	// must exceed the handling of a batch: ceil(BatchSize/Concurrency)
	// rounds of Timeout plus its grace.
	// default: that bound plus 30s (65s with the other defaults)
	Lease time.Duration
	// PollInterval is the wait after finding nothing to handle.
	// default: 100ms
	PollInterval time.Duration
	// MaxAttempts is how many failed tries make a record dead; a try
	// whose error wraps [pubsub.ErrPermanent] makes it dead at once.
	// default: 10
	MaxAttempts int
	// Backoff is the wait before a failed record is tried again, given
	// how many tries failed (1 after the first). Waits should be jittered
	// so that records that failed together are not tried together.
	// default: pubsub.ExponentialBackoff(time.Second, 5*time.Minute),
	// which doubles from 1s up to 5m and moves each wait at random by up
	// to ±20%
	Backoff pubsub.Backoff
	// Keep is how long a done record is kept: the duplicate of an event
	// stored within Keep of its record being done is ignored, a later
	// one is handled again. Run deletes done records past it, and so does
	// [SQLStore.Clean].
	// default: 168h (7 days)
	Keep time.Duration
	// KeepDead is how long a dead record is kept after it died; 0 keeps
	// it until [Queue.Retry] or someone deletes it.
	// default: 0
	KeepDead time.Duration
	// OnError, when set, is called after each failed try, the last one
	// included, with the record as it then is (Tries counts this try).
	// Step calls it after the batch's handlers returned, for one record
	// after another; it must not block.
	// default: nil
	OnError func(ctx context.Context, r Record, err error)
	// OnDead, when set, is called once when a record dies after its last
	// try, after OnError, with the record and the last error.
	// default: nil
	OnDead func(ctx context.Context, r Record, err error)
	// Logger receives errors of the database and dead records.
	// default: nil, which discards
	Logger *slog.Logger
}

var queueSeq atomic.Int64

// rounds is how many times a batch fills the workers.
func (c QueueConfig) rounds() time.Duration {
	return time.Duration((c.BatchSize + c.Concurrency - 1) / c.Concurrency)
}

func (c *QueueConfig) setDefaults() {
	if c.Name == "" {
		host, _ := os.Hostname()
		c.Name = fmt.Sprintf("%s-%d-%d", host, os.Getpid(), queueSeq.Add(1))
	}
	if c.BatchSize == 0 {
		c.BatchSize = 10
	}
	if c.Concurrency == 0 {
		c.Concurrency = c.BatchSize
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Lease == 0 {
		c.Lease = c.rounds()*(c.Timeout+lifecycle.HandlerGrace(c.Timeout)) + 30*time.Second
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
	if c.Keep == 0 {
		c.Keep = 7 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Store.Dialect == 0 {
		c.Store.Dialect = c.Store.dialect()
	}
}

// Validate reports the first field of c that holds an invalid value,
// with the defaults applied to the zero ones.
func (c QueueConfig) Validate() error {
	switch {
	case c.Store.DB == nil:
		return errors.New("inbox: QueueConfig.Store.DB is required")
	case c.Store.Dialect != 0 && !c.Store.Dialect.Valid():
		return errors.New("inbox: QueueConfig.Store.Dialect must be Postgres, SQLite or MySQL")
	case len(c.Name) > 255:
		return errors.New("inbox: QueueConfig.Name must be at most 255 bytes")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"BatchSize", int64(c.BatchSize)}, {"Concurrency", int64(c.Concurrency)}, {"Timeout", int64(c.Timeout)},
		{"Lease", int64(c.Lease)}, {"PollInterval", int64(c.PollInterval)}, {"MaxAttempts", int64(c.MaxAttempts)},
		{"Keep", int64(c.Keep)}, {"KeepDead", int64(c.KeepDead)},
	} {
		if f.v < 0 {
			return fmt.Errorf("inbox: QueueConfig.%s must not be negative", f.name)
		}
	}
	c.setDefaults()
	if batch := c.rounds() * (c.Timeout + lifecycle.HandlerGrace(c.Timeout)); c.Lease <= batch {
		return fmt.Errorf("inbox: QueueConfig.Lease (%s) must exceed the handling of a batch, %d round(s) of Timeout (%s) plus grace (%s)",
			c.Lease, c.rounds(), c.Timeout, lifecycle.HandlerGrace(c.Timeout))
	}
	return nil
}

// Queue is the stored form of the inbox: [Queue.Store], the handler given
// to the broker, writes each event into the inbox table once per handler
// key registered for its name and returns, so that the broker is
// acknowledged before any handler runs; [Queue.Run] then handles the
// stored records, each until its handler returns nil, with a timeout,
// tries after a backoff, and a dead state after MaxAttempts.
//
// Several queues (in one process or many) may share the table: each
// claims, under a lease, only records of the handler keys registered on
// it, so no record is handled by two queues at once, and the records of
// a queue that died are taken over when their lease ends. Handling is at
// least once: a handler whose queue dies after it returned, or whose
// lease ends before its outcome is recorded, runs again.
type Queue struct {
	cfg  QueueConfig
	gate *lifecycle.Gate

	mu     sync.RWMutex
	byName map[pubsub.Name][]string
	byKey  map[string]pubsub.Handler
	sq     atomic.Pointer[sqlqueue.Queue] // nil until a key is registered
}

// queueTable is the inbox table as a queue sees it.
var queueTable = sqlqueue.Table{
	Name:    Table,
	Key:     []string{"handler_key", "event_id"},
	Columns: strings.Split(recordColumns, ", "),
	Order:   "received_ms, event_id",
	Status:  "state",
	Done:    RecordDone,
}

// NewQueue returns a queue without handlers; Register adds them and Run
// handles what Store stored.
func NewQueue(cfg QueueConfig) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Queue{cfg: cfg, gate: lifecycle.NewGate(), byName: map[pubsub.Name][]string{}, byKey: map[string]pubsub.Handler{}}, nil
}

// Name is the queue's name, written into the records it claims.
func (q *Queue) Name() string { return q.cfg.Name }

// Register adds h for events named name, under key: the records of key
// are handled by h. A key is stable (it is what the table remembers),
// unique in the queue, at most 255 bytes, and means one handler: every
// queue that registers it (the workers of one service) registers the
// same handler for the same name. Events stored before their key was
// registered have no record of it.
func (q *Queue) Register(name pubsub.Name, key string, h pubsub.Handler) error {
	if name == "" || key == "" || h == nil {
		return errors.New("inbox: Register needs a name, a key and a handler")
	}
	if len(key) > 255 {
		return fmt.Errorf("inbox: key %q is longer than 255 bytes", key[:32]+"…")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.byKey[key]; ok {
		return fmt.Errorf("inbox: the queue already has a handler with key %q", key)
	}
	q.byKey[key] = h
	q.byName[name] = append(q.byName[name], key)
	keys := make([]string, 0, len(q.byKey))
	for k := range q.byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	in, args := keyList(keys, 1)
	now := "$1" // the time of the done mark
	if q.cfg.Store.Dialect == Postgres {
		now = "CAST($1 AS BIGINT)" // as it is also done_at_ms's
	}
	q.sq.Store(&sqlqueue.Queue{DB: q.cfg.Store.DB, Dialect: q.cfg.Store.Dialect, Table: queueTable, Owner: q.cfg.Name,
		Lease: q.cfg.Lease, MaxTries: q.cfg.MaxAttempts, Backoff: sqlqueue.Backoff(q.cfg.Backoff),
		DoneSet: "until_ms = " + now + " + " + strconv.FormatInt(q.cfg.Keep.Milliseconds(), 10),
		Where:   "handler_key IN " + in, WhereArgs: args})
	return nil
}

// keyList is "($from, …)" for keys, with its args.
func keyList(keys []string, from int) (string, []any) {
	ph := make([]string, len(keys))
	args := make([]any, len(keys))
	for i, k := range keys {
		ph[i], args[i] = "$"+strconv.Itoa(from+i), k
	}
	return "(" + strings.Join(ph, ", ") + ")", args
}

// Store writes ev as a pending record for each handler key registered for
// its name, in one transaction, and returns nil: it is the
// [pubsub.Handler] to give the broker, which then acknowledges the event
// before any handler runs. A record that exists (the same key and event
// ID, stored before) is left as it is, so a redelivery is stored once.
// An event no handler wants is not stored. It returns an error only when
// the records could not be written (the broker then redelivers) or ev is
// invalid (wrapping [pubsub.ErrPermanent]).
func (q *Queue) Store(ctx context.Context, ev pubsub.Event) error {
	q.mu.RLock()
	keys := q.byName[ev.Name]
	q.mu.RUnlock()
	if len(keys) == 0 {
		return nil
	}
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("inbox: not storing the event: %w (%w)", err, pubsub.ErrPermanent)
	}
	if len(ev.ID) > 255 {
		return fmt.Errorf("inbox: not storing %q…: its ID is longer than 255 bytes (%w)", ev.ID[:32], pubsub.ErrPermanent)
	}
	d, db := q.cfg.Store.Dialect, q.cfg.Store.DB
	insert := d.InsertIgnore(Table, []string{"handler_key", "event_id", "state", "until_ms", "name", "payload",
		"created_at_ns", "correlation_id", "attempts", "dry_run", "received_ms", "next_attempt_ms"},
		[]string{"handler_key", "event_id"})
	var created int64
	if !ev.Meta.CreatedAtUTC.IsZero() {
		created = ev.Meta.CreatedAtUTC.UnixNano()
	}
	payload := ev.Payload
	if payload == nil {
		payload = []byte{}
	}
	now := time.Now().UnixMilli()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("inbox: storing %s: %w", ev.ID, err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, key := range keys {
		if _, err := d.Exec(ctx, tx, insert, key, string(ev.ID), RecordPending, 0, string(ev.Name), payload,
			created, ev.Meta.CorrelationID, ev.Meta.Attempts, ev.Meta.IsDryRun, now, 0); err != nil {
			return fmt.Errorf("inbox: storing %s for %q: %w", ev.ID, key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("inbox: storing %s: %w", ev.ID, err)
	}
	return nil
}
