package outbox

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
)

// prompt is what "at once" means in these tests: far under their one-hour
// poll interval, and far over what a wake takes on a loaded machine.
const prompt = 3 * time.Second

// listener is a connection of its own listening on NotifyChannel of db.
func listener(t *testing.T, db *sql.DB) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	var name string
	if err := db.QueryRow(`SELECT current_database()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pg.DatabaseDSN(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, `LISTEN `+NotifyChannel); err != nil {
		t.Fatal(err)
	}
	return conn
}

// nextPayload waits for the next notification on conn and returns its
// payload.
func nextPayload(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return n.Payload
}

// marker commits a notification of its own on NotifyChannel. Notifications
// of transactions arrive in the order they committed, so what a listener
// receives before the marker is all that earlier commits sent.
func marker(t *testing.T, db *sql.DB) {
	t.Helper()
	if _, err := db.Exec(`SELECT pg_notify($1, 'marker')`, NotifyChannel); err != nil {
		t.Fatal(err)
	}
}

// runRelay runs a relay with a one-hour poll interval, so that only
// notifications wake it; it returns the relay, the recorder it publishes
// to, and the PIDs of its listener's backends, sent each time it listens.
func runRelay(t *testing.T, db *sql.DB, cfg RelayConfig) (*Relay, *pubsubtest.Recorder, <-chan uint32, *atomic.Int64) {
	t.Helper()
	rec := pubsubtest.NewRecorder()
	cfg.PollInterval = time.Hour
	r := relay(t, db, Postgres, rec, cfg)
	pids := make(chan uint32, 16)
	var notified atomic.Int64
	r.listening = func(pid uint32) { pids <- pid }
	r.notified = func() { notified.Add(1) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return r, rec, pids, &notified
}

func waitPID(t *testing.T, pids <-chan uint32) uint32 {
	t.Helper()
	select {
	case pid := <-pids:
		return pid
	case <-time.After(10 * time.Second):
		t.Fatal("the relay's listener did not LISTEN")
		return 0
	}
}

// writeOneEvent commits one event and returns it and the time Commit returned.
func writeOneEvent(t *testing.T, db *sql.DB) (pubsub.Event, time.Time) {
	t.Helper()
	ev := pubsub.NewEvent(context.Background(), "order.created", []byte(`{}`))
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), tx, ev); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return ev, time.Now()
}

func waitPublished(t *testing.T, rec *pubsubtest.Recorder, id pubsub.ID, since time.Time) {
	t.Helper()
	rec.WaitForEvent(t, func(ev pubsub.Event) bool { return ev.ID == id }, prompt)
	if took := time.Since(since); took > prompt {
		t.Fatalf("published %s after its commit, with a 1h poll interval", took)
	} else {
		t.Logf("published %s after its commit", took)
	}
}

func TestNotifyWakesTheRelayOnCommit(t *testing.T) {
	db, _, _ := openDB(t, Postgres)
	_, rec, pids, notified := runRelay(t, db, RelayConfig{})
	waitPID(t, pids)

	ev, committed := writeOneEvent(t, db)
	waitPublished(t, rec, ev.ID, committed)

	// A row inserted by any writer, here plain SQL, wakes it too.
	before := notified.Load()
	start := time.Now()
	if _, err := db.Exec(`INSERT INTO `+Table+` (event_id, name, payload, created_at_ns, correlation_id)
		VALUES ('evt_from_sql', 'order.created', '\x7b7d', $1, '')`, time.Now().UnixNano()); err != nil {
		t.Fatal(err)
	}
	waitPublished(t, rec, "evt_from_sql", start)
	if notified.Load() == before {
		t.Error("the listener received no notification for the plain INSERT")
	}
}

func TestNotifyOncePerTransaction(t *testing.T) {
	db, _, _ := openDB(t, Postgres)
	l := listener(t, db)
	evs := make([]pubsub.Event, 100)
	for i := range evs {
		evs[i] = pubsub.NewEvent(context.Background(), "order.created", []byte(`{}`))
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs { // a statement, and a trigger call, per row
		if err := Write(context.Background(), tx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	marker(t, db)
	if p := nextPayload(t, l); p != "" {
		t.Fatalf("first notification %q, want the outbox's empty one", p)
	}
	if p := nextPayload(t, l); p != "marker" {
		t.Fatalf("a transaction of 100 rows sent more than one notification (then %q)", p)
	}
	if n := count(t, db, "1=1"); n != 100 {
		t.Fatalf("%d rows, want 100", n)
	}
}

func TestNotifyNothingOnRollback(t *testing.T) {
	db, _, _ := openDB(t, Postgres)
	l := listener(t, db)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), tx, pubsub.NewEvent(context.Background(), "order.created", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	marker(t, db)
	if p := nextPayload(t, l); p != "marker" {
		t.Fatalf("a rolled-back write notified (%q)", p)
	}
}

// syncBuffer is a log destination for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNotifyListenerReconnects(t *testing.T) {
	db, _, _ := openDB(t, Postgres)
	var log syncBuffer
	_, rec, pids, notified := runRelay(t, db, RelayConfig{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	first := waitPID(t, pids)

	var killed bool
	if err := db.QueryRow(`SELECT pg_terminate_backend($1)`, int64(first)).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend = %v, %v", killed, err)
	}
	second := waitPID(t, pids)
	if second == first {
		t.Fatalf("listening again on backend %d, the one killed", second)
	}
	if !strings.Contains(log.String(), "listening for notifications failed") {
		t.Errorf("the listener's failure was not logged: %q", log.String())
	}

	before := notified.Load()
	ev, committed := writeOneEvent(t, db)
	waitPublished(t, rec, ev.ID, committed)
	if notified.Load() == before {
		t.Error("the new listener received no notification for the commit")
	}
}

func TestNotifyStopReturnsTheConnection(t *testing.T) {
	db, _, _ := openDB(t, Postgres)
	rec := pubsubtest.NewRecorder()
	r := relay(t, db, Postgres, rec, RelayConfig{PollInterval: time.Hour})
	pids := make(chan uint32, 1)
	r.listening = func(pid uint32) { pids <- pid }
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	waitPID(t, pids)
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %s", took)
	}
	if s := db.Stats(); s.InUse != 0 {
		t.Errorf("%d connections in use after Close", s.InUse)
	}
	// The listening connection was closed, not pooled: no pooled
	// connection listens.
	var channels int
	if err := db.QueryRow(`SELECT count(*) FROM pg_listening_channels()`).Scan(&channels); err != nil || channels != 0 {
		t.Errorf("a pooled connection listens on %d channels (%v)", channels, err)
	}
}

func TestNotifyOnlyWhereItWorks(t *testing.T) {
	pgdb, _, _ := openDB(t, Postgres)
	rec := pubsubtest.NewRecorder()
	if !relay(t, pgdb, Postgres, rec, RelayConfig{}).notifies() {
		t.Error("a relay on PostgreSQL through pgx does not listen")
	}
	if relay(t, pgdb, Postgres, rec, RelayConfig{NoNotify: true}).notifies() {
		t.Error("NoNotify did not turn notifications off")
	}
	pgdb.SetMaxOpenConns(1)
	if relay(t, pgdb, Postgres, rec, RelayConfig{}).notifies() {
		t.Error("a relay on a DB of one connection would hold it to listen")
	}
	for _, d := range []Dialect{SQLite, MySQL} {
		db, _, _ := openDB(t, d)
		if relay(t, db, d, rec, RelayConfig{}).notifies() {
			t.Errorf("a relay on %s listens", d)
		}
	}
}

func TestMigrateInstallsOneNotifyTrigger(t *testing.T) {
	db, _, _ := openDB(t, Postgres) // migrated twice
	ctx := context.Background()
	// A trigger of the user's own on the table survives Migrate.
	for _, stmt := range []string{
		`CREATE FUNCTION users_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`,
		`CREATE TRIGGER users_audit AFTER INSERT ON ` + Table + ` FOR EACH ROW EXECUTE FUNCTION users_audit()`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	if err := Migrate(ctx, db, Postgres); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT tgname FROM pg_trigger WHERE tgrelid = '` + Table + `'::regclass AND NOT tgisinternal ORDER BY tgname`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if strings.Join(names, ",") != "switchyard_outbox_notify,users_audit" {
		t.Fatalf("triggers on the outbox: %v", names)
	}
	// Concurrent Migrates wait for each other rather than fail.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- Migrate(ctx, db, Postgres) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
}
