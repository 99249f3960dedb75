package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/inbox"
	"github.com/switchyard-go/switchyard/pubsub"
)

// eachSQLStore runs fn on a fresh SQL store of each dialect.
func eachSQLStore(t *testing.T, fn func(t *testing.T, s inbox.SQLStore)) {
	eachSQLDatabase(t, func(t *testing.T, open func() inbox.SQLStore) { fn(t, open()) })
}

// eachSQLDatabase runs fn on a fresh database of each dialect, with the
// table made; open returns a store on a DB of its own, as another
// process would have.
func eachSQLDatabase(t *testing.T, fn func(t *testing.T, open func() inbox.SQLStore)) {
	for _, kind := range []string{"postgres", "sqlite", "mysql"} {
		t.Run(kind, func(t *testing.T) {
			driver, dsn := "pgx", pg.DSN
			switch kind {
			case "mysql":
				var err error
				if dsn, err = maria.NewDatabase("inboxq"); err != nil {
					t.Fatal(err)
				}
				driver = "mysql"
			case "sqlite":
				driver, dsn = "sqlite", filepath.Join(t.TempDir(), "inbox.db")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
			}
			open := func() inbox.SQLStore {
				db, err := sql.Open(driver, dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = db.Close() })
				return inbox.SQLStore{DB: db}
			}
			if err := open().Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			fn(t, open)
		})
	}
}

// uniq is a name no other test uses: the PostgreSQL table is shared.
func uniq(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

func newQueue(t *testing.T, cfg inbox.QueueConfig) *inbox.Queue {
	t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 5 * time.Millisecond
	}
	if cfg.Backoff == nil {
		cfg.Backoff = pubsub.ConstantBackoff(10 * time.Millisecond)
	}
	q, err := inbox.NewQueue(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func mustRegister(t *testing.T, q *inbox.Queue, name pubsub.Name, key string, h pubsub.Handler) {
	t.Helper()
	if err := q.Register(name, key, h); err != nil {
		t.Fatal(err)
	}
}

func mustStore(t *testing.T, q *inbox.Queue, ev pubsub.Event) {
	t.Helper()
	if err := q.Store(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling, not synchronising
	}
}

// stepUntil calls Step until cond holds.
func stepUntil(t *testing.T, q *inbox.Queue, what string, cond func() bool) {
	t.Helper()
	waitFor(t, what, func() bool {
		if _, err := q.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		return cond()
	})
}

func record(t *testing.T, q *inbox.Queue, key string, id pubsub.ID) inbox.Record {
	t.Helper()
	r, err := q.Record(context.Background(), key, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func hasState(q *inbox.Queue, key string, id pubsub.ID, state string) func() bool {
	return func() bool {
		r, err := q.Record(context.Background(), key, id)
		return err == nil && r.State == state
	}
}

func namedEvent(name pubsub.Name) pubsub.Event {
	return pubsub.NewEvent(context.Background(), name, []byte(fmt.Sprintf(`{"n":%d}`, seq.Add(1))))
}

func TestQueueValidate(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		cfg  inbox.QueueConfig
		want string
	}{
		{inbox.QueueConfig{}, "Store.DB"},
		{inbox.QueueConfig{Store: inbox.SQLStore{DB: db}, BatchSize: -1}, "BatchSize"},
		{inbox.QueueConfig{Store: inbox.SQLStore{DB: db}, KeepDead: -1}, "KeepDead"},
		{inbox.QueueConfig{Store: inbox.SQLStore{DB: db}, Timeout: time.Minute, Lease: time.Minute}, "Lease"},
		{inbox.QueueConfig{Store: inbox.SQLStore{DB: db}, BatchSize: 10, Concurrency: 1, Lease: time.Minute}, "Lease"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), "QueueConfig."+c.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	if err := (inbox.QueueConfig{Store: inbox.SQLStore{DB: db}, Timeout: time.Hour}).Validate(); err != nil {
		t.Errorf("the default Lease does not follow Timeout: %v", err)
	}
}

func TestQueueStoreAcksBeforeHandling(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s inbox.SQLStore) {
		q := newQueue(t, inbox.QueueConfig{Store: s})
		name, key := pubsub.Name(uniq("order.created")), uniq("charge")
		started, release := make(chan pubsub.ID, 2), make(chan struct{})
		var runs atomic.Int32
		mustRegister(t, q, name, key, func(ctx context.Context, ev pubsub.Event) error {
			runs.Add(1)
			started <- ev.ID
			<-release
			return nil
		})
		first, second := namedEvent(name), namedEvent(name)
		mustStore(t, q, first) // no worker runs: Store does not wait for one
		if r := record(t, q, key, first.ID); r.State != inbox.RecordPending || runs.Load() != 0 {
			t.Fatalf("stored record = %+v after %d runs, want pending and none", r, runs.Load())
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- q.Run(ctx) }()
		if id := <-started; id != first.ID {
			t.Fatalf("handler got %s, want %s", id, first.ID)
		}
		mustStore(t, q, second) // the handler is blocked
		if r := record(t, q, key, first.ID); r.State != inbox.RecordPending || r.ClaimedBy != q.Name() || !r.LeaseEnd.After(time.Now()) {
			t.Errorf("record being handled = %+v, want pending under a running lease", r)
		}
		close(release)
		waitFor(t, "both records done", func() bool {
			return hasState(q, key, first.ID, inbox.RecordDone)() && hasState(q, key, second.ID, inbox.RecordDone)()
		})
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Run = %v after Close", err)
		}
		if _, err := q.Step(ctx); !errors.Is(err, pubsub.ErrClosed) {
			t.Errorf("Step after Close = %v, want ErrClosed", err)
		}
		if err := q.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
		if err := q.Store(ctx, pubsub.NewEvent(ctx, "nobody.wants.this", nil)); err != nil {
			t.Errorf("Store of an event without handlers = %v", err)
		}
		if err := q.Store(ctx, pubsub.Event{Name: name}); !errors.Is(err, pubsub.ErrPermanent) || !errors.Is(err, pubsub.ErrInvalidEvent) {
			t.Errorf("Store of an event without an ID = %v, want a permanent error", err)
		}
	})
}

func TestQueueDuplicatesStoredOnce(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s inbox.SQLStore) {
		q := newQueue(t, inbox.QueueConfig{Store: s})
		name := pubsub.Name(uniq("order.created"))
		charge, mail := uniq("charge"), uniq("mail")
		var mu sync.Mutex
		runs := map[string]int{}
		for _, key := range []string{charge, mail} {
			mustRegister(t, q, name, key, func(context.Context, pubsub.Event) error {
				mu.Lock()
				runs[key]++
				mu.Unlock()
				return nil
			})
		}
		ev := namedEvent(name)
		for range 3 {
			mustStore(t, q, ev)
		}
		if n, err := q.Step(context.Background()); n != 2 || err != nil {
			t.Fatalf("Step = %d, %v; want the 2 records of one event stored 3 times", n, err)
		}
		mustStore(t, q, ev) // a redelivery after it was handled
		if n, err := q.Step(context.Background()); n != 0 || err != nil {
			t.Fatalf("Step after a redelivery = %d, %v; want nothing to do", n, err)
		}
		if runs[charge] != 1 || runs[mail] != 1 {
			t.Errorf("runs = %v, want one per key", runs)
		}
		if err := q.Register(name, charge, func(context.Context, pubsub.Event) error { return nil }); err == nil {
			t.Error("a second handler with the same key was accepted")
		}
	})
}

func TestQueueWorkersShareTable(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s inbox.SQLStore) {
		const total = 500
		name, key := pubsub.Name(uniq("order.created")), uniq("charge")
		var mu sync.Mutex
		handled := map[pubsub.ID][]int{}
		var count atomic.Int32
		queues := make([]*inbox.Queue, 3)
		for i := range queues {
			queues[i] = newQueue(t, inbox.QueueConfig{Store: s, Name: fmt.Sprintf("worker-%d", i), BatchSize: 16, Concurrency: 8})
			mustRegister(t, queues[i], name, key, func(_ context.Context, ev pubsub.Event) error {
				mu.Lock()
				handled[ev.ID] = append(handled[ev.ID], i)
				mu.Unlock()
				count.Add(1)
				return nil
			})
		}
		start := time.Now()
		ids := make([]pubsub.ID, total)
		for i := range ids {
			ev := namedEvent(name)
			ids[i] = ev.ID
			mustStore(t, queues[i%3], ev)
		}
		stored := time.Now()
		t.Logf("stored in %s", stored.Sub(start))
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, q := range queues {
			wg.Go(func() {
				if err := q.Run(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		waitFor(t, "every record handled", func() bool { return count.Load() >= total })
		t.Logf("handled in %s", time.Since(stored))
		cancel()
		wg.Wait()
		per := make([]int, 3)
		for _, id := range ids {
			hs := handled[id]
			if len(hs) != 1 {
				t.Errorf("%s handled %d times, by workers %v", id, len(hs), hs)
				continue
			}
			per[hs[0]]++
			if r := record(t, queues[0], key, id); r.State != inbox.RecordDone {
				t.Errorf("%s is %s after it was handled", id, r.State)
			}
		}
		if len(handled) != total {
			t.Errorf("%d events handled, want %d", len(handled), total)
		}
		t.Logf("records handled per worker: %v", per)
	})
}

func TestQueueFailureRetriedWithBackoff(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s inbox.SQLStore) {
		const backoff = 300 * time.Millisecond
		var errs []error
		q := newQueue(t, inbox.QueueConfig{Store: s, Backoff: pubsub.ConstantBackoff(backoff),
			OnError: func(_ context.Context, r inbox.Record, err error) { errs = append(errs, err) }})
		name, key := pubsub.Name(uniq("order.created")), uniq("charge")
		var attempts []int
		mustRegister(t, q, name, key, func(_ context.Context, ev pubsub.Event) error {
			attempts = append(attempts, ev.Meta.Attempts)
			if len(attempts) <= 2 {
				return fmt.Errorf("card declined %d", len(attempts))
			}
			return nil
		})
		ev := namedEvent(name)
		mustStore(t, q, ev)
		before := time.Now()
		if n, err := q.Step(context.Background()); n != 1 || err != nil {
			t.Fatalf("Step = %d, %v", n, err)
		}
		r := record(t, q, key, ev.ID)
		if r.State != inbox.RecordPending || r.Tries != 1 || r.LastError != "card declined 1" {
			t.Fatalf("after a failed try the record is %+v", r)
		}
		if r.NextAttempt.Before(before.Add(backoff-10*time.Millisecond)) || r.NextAttempt.After(time.Now().Add(backoff+10*time.Millisecond)) {
			t.Errorf("next attempt at %v, want about %s after the try at %v", r.NextAttempt, backoff, before)
		}
		if n, _ := q.Step(context.Background()); n != 0 && time.Now().Before(r.NextAttempt) {
			t.Fatalf("a record was claimed before its backoff ended")
		}
		stepUntil(t, q, "the record done", hasState(q, key, ev.ID, inbox.RecordDone))
		if fmt.Sprint(attempts) != "[0 1 2]" {
			t.Errorf("the handler saw Meta.Attempts %v, want [0 1 2]", attempts)
		}
		if r := record(t, q, key, ev.ID); r.Tries != 2 || r.LastError != "card declined 2" || r.Event.Name != name ||
			string(r.Event.Payload) != string(ev.Payload) || r.Event.Meta.CorrelationID != ev.Meta.CorrelationID ||
			!r.Event.Meta.CreatedAtUTC.Equal(ev.Meta.CreatedAtUTC) {
			t.Errorf("done record = %+v, want 2 tries, the last error and the stored event %+v", r, ev)
		}
		if len(errs) != 2 {
			t.Errorf("OnError called %d times, want 2", len(errs))
		}
	})
}

func TestQueueDeadAndRetry(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s inbox.SQLStore) {
		var deadCalls []inbox.Record
		var errorCalls atomic.Int32
		q := newQueue(t, inbox.QueueConfig{Store: s, MaxAttempts: 3,
			OnError: func(context.Context, inbox.Record, error) { errorCalls.Add(1) },
			OnDead:  func(_ context.Context, r inbox.Record, _ error) { deadCalls = append(deadCalls, r) }})
		name, key := pubsub.Name(uniq("order.created")), uniq("charge")
		var fixed atomic.Bool
		var runs atomic.Int32
		mustRegister(t, q, name, key, func(context.Context, pubsub.Event) error {
			runs.Add(1)
			if fixed.Load() {
				return nil
			}
			return errors.New("bug")
		})
		ev := namedEvent(name)
		mustStore(t, q, ev)
		stepUntil(t, q, "the record dead", hasState(q, key, ev.ID, inbox.RecordDead))
		for range 3 { // dead records are not claimed
			if n, err := q.Step(context.Background()); n != 0 || err != nil {
				t.Fatalf("Step = %d, %v with only a dead record", n, err)
			}
		}
		if runs.Load() != 3 || errorCalls.Load() != 3 {
			t.Errorf("%d runs and %d OnError calls, want 3 each", runs.Load(), errorCalls.Load())
		}
		if len(deadCalls) != 1 || deadCalls[0].Key != key || deadCalls[0].Event.ID != ev.ID ||
			deadCalls[0].State != inbox.RecordDead || deadCalls[0].Tries != 3 || deadCalls[0].LastError != "bug" {
			t.Fatalf("OnDead calls = %+v, want one with the dead record", deadCalls)
		}
		if n, err := q.Clean(context.Background()); err != nil || n != 0 {
			t.Errorf("Clean = %d, %v; a dead record is kept", n, err)
		}
		dead, err := q.Dead(context.Background(), 0)
		if err != nil || len(dead) != 1 || dead[0].Event.ID != ev.ID || string(dead[0].Event.Payload) != string(ev.Payload) {
			t.Fatalf("Dead = %+v, %v", dead, err)
		}
		fixed.Store(true)
		if err := q.Retry(context.Background(), key, ev.ID); err != nil {
			t.Fatal(err)
		}
		if r := record(t, q, key, ev.ID); r.State != inbox.RecordPending || r.Tries != 0 {
			t.Errorf("retried record = %+v, want pending with no tries", r)
		}
		if n, err := q.Step(context.Background()); n != 1 || err != nil {
			t.Fatalf("Step after Retry = %d, %v", n, err)
		}
		if r := record(t, q, key, ev.ID); r.State != inbox.RecordDone || runs.Load() != 4 {
			t.Errorf("record = %+v after %d runs, want done after 4", r, runs.Load())
		}
		if err := q.Retry(context.Background(), key, ev.ID); !errors.Is(err, inbox.ErrNotDead) {
			t.Errorf("Retry of a done record = %v, want ErrNotDead", err)
		}
		if _, err := q.Record(context.Background(), key, "no-such-event"); !errors.Is(err, inbox.ErrNoRecord) {
			t.Errorf("Record of nothing = %v, want ErrNoRecord", err)
		}
		if len(deadCalls) != 1 {
			t.Errorf("OnDead called %d times", len(deadCalls))
		}
	})
}

func TestQueuePermanentErrorIsDeadAtOnce(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s inbox.SQLStore) {
		var dead []inbox.Record
		q := newQueue(t, inbox.QueueConfig{Store: s, OnDead: func(_ context.Context, r inbox.Record, _ error) { dead = append(dead, r) }})
		name, key := pubsub.Name(uniq("order.created")), uniq("charge")
		mustRegister(t, q, name, key, func(context.Context, pubsub.Event) error {
			return fmt.Errorf("unknown currency: %w", pubsub.ErrPermanent)
		})
		ev := namedEvent(name)
		mustStore(t, q, ev)
		if n, err := q.Step(context.Background()); n != 1 || err != nil {
			t.Fatalf("Step = %d, %v", n, err)
		}
		if r := record(t, q, key, ev.ID); r.State != inbox.RecordDead || r.Tries != 1 || len(dead) != 1 {
			t.Errorf("record = %+v after a permanent failure (%d OnDead calls), want dead after 1 try", r, len(dead))
		}
	})
}

func TestQueueTimeoutAndPanicAreFailures(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s inbox.SQLStore) {
		var mu sync.Mutex
		failures := map[string]error{}
		q := newQueue(t, inbox.QueueConfig{Store: s, Timeout: 100 * time.Millisecond, Backoff: pubsub.ConstantBackoff(time.Hour),
			OnError: func(_ context.Context, r inbox.Record, err error) {
				mu.Lock()
				failures[r.Key] = err
				mu.Unlock()
			}})
		name := pubsub.Name(uniq("order.created"))
		slow, hung, panics, fine := uniq("slow"), uniq("hung"), uniq("panics"), uniq("fine")
		stuck := make(chan struct{})
		defer close(stuck)
		mustRegister(t, q, name, slow, func(ctx context.Context, _ pubsub.Event) error { <-ctx.Done(); return ctx.Err() })
		mustRegister(t, q, name, hung, func(context.Context, pubsub.Event) error { <-stuck; return nil })
		mustRegister(t, q, name, panics, func(context.Context, pubsub.Event) error { panic("bug") })
		var ran atomic.Int32
		mustRegister(t, q, name, fine, func(context.Context, pubsub.Event) error { ran.Add(1); return nil })
		ev := namedEvent(name)
		mustStore(t, q, ev)
		if n, err := q.Step(context.Background()); n != 4 || err != nil {
			t.Fatalf("Step = %d, %v", n, err)
		}
		var pe *pubsub.PanicError
		switch {
		case !errors.Is(failures[slow], context.DeadlineExceeded):
			t.Errorf("a handler past its timeout failed with %v", failures[slow])
		case !errors.Is(failures[hung], context.DeadlineExceeded) || !strings.Contains(failures[hung].Error(), "abandoned"):
			t.Errorf("a handler ignoring its timeout failed with %v", failures[hung])
		case !errors.As(failures[panics], &pe):
			t.Errorf("a panic became %v", failures[panics])
		}
		for _, key := range []string{slow, hung, panics} {
			if r := record(t, q, key, ev.ID); r.State != inbox.RecordPending || r.Tries != 1 || r.LastError == "" {
				t.Errorf("record of %s = %+v, want pending after a failed try", key, r)
			}
		}
		if r := record(t, q, fine, ev.ID); r.State != inbox.RecordDone || ran.Load() != 1 {
			t.Errorf("the handler next to the failing ones: record %+v, %d runs", r, ran.Load())
		}
		ev2 := namedEvent(name) // the worker keeps going
		mustStore(t, q, ev2)
		if n, err := q.Step(context.Background()); n != 4 || err != nil || ran.Load() != 2 {
			t.Fatalf("Step after the failures = %d, %v, %d runs", n, err, ran.Load())
		}
	})
}

func TestQueueLeaseOfDeadWorkerTakenOver(t *testing.T) {
	eachSQLDatabase(t, func(t *testing.T, open func() inbox.SQLStore) {
		name, key := pubsub.Name(uniq("order.created")), uniq("charge")
		// The first worker claims the record and runs its handler, then
		// dies before it records the outcome: its database is gone.
		lost := open()
		dying := newQueue(t, inbox.QueueConfig{Store: lost, Name: "dying", Timeout: 250 * time.Millisecond, Lease: 400 * time.Millisecond})
		mustRegister(t, dying, name, key, func(context.Context, pubsub.Event) error { return lost.DB.Close() })
		ev := namedEvent(name)
		mustStore(t, dying, ev)
		claimedAt := time.Now()
		if n, err := dying.Step(context.Background()); n != 1 || err == nil {
			t.Fatalf("Step of the dying worker = %d, %v; want 1 claimed and its outcome unrecorded", n, err)
		}
		other := newQueue(t, inbox.QueueConfig{Store: open(), Name: "other"})
		var handledAt time.Time
		var attempts int
		mustRegister(t, other, name, key, func(_ context.Context, ev pubsub.Event) error {
			handledAt, attempts = time.Now(), ev.Meta.Attempts
			return nil
		})
		if n, err := other.Step(context.Background()); n != 0 || err != nil {
			t.Fatalf("Step of another worker within the lease = %d, %v", n, err)
		}
		stepUntil(t, other, "the record taken over", func() bool { return !handledAt.IsZero() })
		if d := handledAt.Sub(claimedAt); d < 400*time.Millisecond {
			t.Errorf("taken over %s after the claim, before the lease of 400ms ended", d)
		}
		if r := record(t, other, key, ev.ID); r.State != inbox.RecordDone || r.Tries != 0 || attempts != 0 {
			t.Errorf("record = %+v (handler saw attempts %d), want done by the other worker, no try counted", r, attempts)
		}
	})
}

func TestQueueRetention(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s inbox.SQLStore) {
		name := pubsub.Name(uniq("order.created"))
		ok, bad := uniq("ok"), uniq("bad")
		cfg := inbox.QueueConfig{Store: s, MaxAttempts: 1, Keep: time.Millisecond}
		q := newQueue(t, cfg)
		mustRegister(t, q, name, ok, func(context.Context, pubsub.Event) error { return nil })
		mustRegister(t, q, name, bad, func(context.Context, pubsub.Event) error { return errors.New("bug") })
		// A done row of the Middleware form, whose key no queue has.
		mwKey := uniq("middleware")
		handled := namedEvent(name)
		if err := inbox.Middleware(s, mwKey, inbox.Options{})(func(context.Context, pubsub.Event) error { return nil })(context.Background(), handled); err != nil {
			t.Fatal(err)
		}
		first := namedEvent(name)
		mustStore(t, q, first)
		if n, err := q.Step(context.Background()); n != 2 || err != nil {
			t.Fatalf("Step = %d, %v", n, err)
		}
		waiting := namedEvent(name)
		mustStore(t, q, waiting) // pending: nobody steps
		waitFor(t, "the done record deleted", func() bool {
			if _, err := q.Clean(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, err := q.Record(context.Background(), ok, first.ID)
			return errors.Is(err, inbox.ErrNoRecord)
		})
		if r := record(t, q, bad, first.ID); r.State != inbox.RecordDead {
			t.Errorf("dead record = %+v after Clean", r)
		}
		for _, key := range []string{ok, bad} {
			if r := record(t, q, key, waiting.ID); r.State != inbox.RecordPending {
				t.Errorf("pending record = %+v after Clean", r)
			}
		}
		if st, err := s.Claim(context.Background(), mwKey, handled.ID, time.Minute); err != nil || st != inbox.AlreadyDone {
			t.Errorf("the queue's Clean touched a Middleware row: Claim = %v, %v", st, err)
		}
		// A queue that keeps dead records for a moment deletes them.
		cfg.KeepDead, cfg.Name = time.Millisecond, "keepdead"
		q2 := newQueue(t, cfg)
		mustRegister(t, q2, name, bad, func(context.Context, pubsub.Event) error { return nil })
		waitFor(t, "the dead record deleted", func() bool {
			if _, err := q2.Clean(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, err := q2.Record(context.Background(), bad, first.ID)
			return errors.Is(err, inbox.ErrNoRecord)
		})
		if r := record(t, q2, bad, waiting.ID); r.State != inbox.RecordPending {
			t.Errorf("pending record = %+v after Clean", r)
		}
		// Done records carry until_ms, so SQLStore.Clean deletes them too.
		if n, err := q.Step(context.Background()); n != 2 || err != nil {
			t.Fatalf("Step = %d, %v", n, err)
		}
		waitFor(t, "SQLStore.Clean deleting a done record", func() bool {
			if _, err := s.Clean(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, err := q.Record(context.Background(), ok, waiting.ID)
			return errors.Is(err, inbox.ErrNoRecord)
		})
	})
}

func TestQueueClaimsOnlyItsKeys(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s inbox.SQLStore) {
		name := pubsub.Name(uniq("order.created"))
		billingKey, mailKey := uniq("billing"), uniq("mail")
		billing := newQueue(t, inbox.QueueConfig{Store: s, Name: "billing"})
		mail := newQueue(t, inbox.QueueConfig{Store: s, Name: "mail"})
		var billed, mailed atomic.Int32
		mustRegister(t, billing, name, billingKey, func(context.Context, pubsub.Event) error { billed.Add(1); return nil })
		mustRegister(t, mail, name, mailKey, func(context.Context, pubsub.Event) error { mailed.Add(1); return nil })
		ev := namedEvent(name)
		mustStore(t, billing, ev) // each service stores for its own keys
		mustStore(t, mail, ev)
		for range 3 {
			if n, err := billing.Step(context.Background()); err != nil || n > 1 {
				t.Fatalf("billing Step = %d, %v", n, err)
			}
		}
		if r := record(t, mail, mailKey, ev.ID); r.State != inbox.RecordPending || billed.Load() != 1 || mailed.Load() != 0 {
			t.Fatalf("after billing's steps: mail record %+v, billed %d, mailed %d", r, billed.Load(), mailed.Load())
		}
		if n, err := mail.Step(context.Background()); n != 1 || err != nil || mailed.Load() != 1 {
			t.Fatalf("mail Step = %d, %v, mailed %d", n, err, mailed.Load())
		}
		for range 3 { // nothing to claim
			if n, err := mail.Step(context.Background()); n != 0 || err != nil {
				t.Fatalf("mail Step = %d, %v", n, err)
			}
		}
		if st := s.DB.Stats(); st.InUse != 0 {
			t.Errorf("%d connections in use after the steps, want 0", st.InUse)
		}
	})
}

func TestQueueCloseWaitsForHandlers(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s inbox.SQLStore) {
		const timeout = 200 * time.Millisecond
		q := newQueue(t, inbox.QueueConfig{Store: s, Timeout: timeout})
		name, slow, hung := pubsub.Name(uniq("order.created")), uniq("slow"), uniq("hung")
		started, release, stuck := make(chan struct{}, 2), make(chan struct{}), make(chan struct{})
		defer close(stuck)
		mustRegister(t, q, name, slow, func(context.Context, pubsub.Event) error { started <- struct{}{}; <-release; return nil })
		mustRegister(t, q, name, hung, func(context.Context, pubsub.Event) error { started <- struct{}{}; <-stuck; return nil })
		ev := namedEvent(name)
		mustStore(t, q, ev)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ran := make(chan error, 1)
		go func() { ran <- q.Run(ctx) }()
		<-started
		<-started
		closed := make(chan time.Time, 1)
		closing := time.Now()
		go func() { _ = q.Close(); closed <- time.Now() }()
		close(release)
		var at time.Time
		select {
		case at = <-closed:
		case <-time.After(20 * time.Second):
			t.Fatal("Close did not return")
		}
		if d := at.Sub(closing); d > timeout+time.Second {
			t.Errorf("Close took %s with a handler that never returns and a Timeout of %s", d, timeout)
		}
		if err := <-ran; err != nil {
			t.Errorf("Run = %v", err)
		}
		if r := record(t, q, slow, ev.ID); r.State != inbox.RecordDone {
			t.Errorf("the record whose handler returned during Close is %+v, want done", r)
		}
		if r := record(t, q, hung, ev.ID); r.State != inbox.RecordPending || r.Tries != 1 || !strings.Contains(r.LastError, "abandoned") {
			t.Errorf("the record whose handler never returned is %+v, want a failed try", r)
		}
	})
}
