package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/inbox"
	"github.com/switchyard-go/switchyard/pubsub"
)

// TestAdv9StoreWithTheDatabaseGone: Store on a closed DB, and on a DB
// whose server does not answer, returns an error (so the broker
// redelivers), never nil.
func TestAdv9StoreWithTheDatabaseGone(t *testing.T) {
	eachSQLDatabase(t, func(t *testing.T, open func() inbox.SQLStore) {
		s := open()
		q := newQueue(t, inbox.QueueConfig{Store: s})
		name := pubsub.Name(uniq("order.created"))
		mustRegister(t, q, name, uniq("k"), func(context.Context, pubsub.Event) error { return nil })
		mustStore(t, q, namedEvent(name))
		_ = s.DB.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := q.Store(ctx, namedEvent(name)); err == nil {
			t.Error("Store on a closed DB returned nil")
		} else if errors.Is(err, pubsub.ErrPermanent) {
			t.Errorf("Store on a closed DB: %v, a permanent error (the broker would drop the event)", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		for _, c := range []struct{ driver, dsn string }{
			{"pgx", "postgres://u:p@127.0.0.1:1/db?connect_timeout=1"},
			{"mysql", "u:p@tcp(127.0.0.1:1)/db?timeout=1s"},
		} {
			db, err := sql.Open(c.driver, c.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			q := newQueue(t, inbox.QueueConfig{Store: inbox.SQLStore{DB: db}})
			name := pubsub.Name(uniq("order.created"))
			mustRegister(t, q, name, uniq("k"), func(context.Context, pubsub.Event) error { return nil })
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err = q.Store(ctx, namedEvent(name))
			cancel()
			if err == nil || errors.Is(err, pubsub.ErrPermanent) {
				t.Errorf("%s: Store with the server unreachable = %v, want a transient error", c.driver, err)
			}
		}
	})
}

// TestAdv9CloseWithTheDatabaseGoneMidBatch: handlers are running when the
// queue's DB is closed under it; Close returns promptly, Run returns nil,
// and the records, whose outcome could not be written, stay pending (to
// be handled again), not done nor dead.
func TestAdv9CloseWithTheDatabaseGoneMidBatch(t *testing.T) {
	eachSQLDatabase(t, func(t *testing.T, open func() inbox.SQLStore) {
		s := open()
		q := newQueue(t, inbox.QueueConfig{Store: s, Timeout: time.Second, BatchSize: 4})
		name, key := pubsub.Name(uniq("order.created")), uniq("k")
		started, release := make(chan struct{}, 8), make(chan struct{})
		var fails atomic.Int64
		mustRegister(t, q, name, key, func(ctx context.Context, ev pubsub.Event) error {
			started <- struct{}{}
			<-release
			if fails.Add(1)%2 == 0 {
				return errors.New("handler failed")
			}
			return nil
		})
		evs := []pubsub.Event{namedEvent(name), namedEvent(name), namedEvent(name), namedEvent(name)}
		for _, ev := range evs {
			mustStore(t, q, ev)
		}
		ran := make(chan error, 1)
		go func() { ran <- q.Run(context.Background()) }()
		for range evs {
			select {
			case <-started:
			case <-time.After(4 * time.Second):
				t.Fatal("the handlers did not start")
			}
		}
		_ = s.DB.Close()
		closed := make(chan struct{})
		go func() { _ = q.Close(); close(closed) }()
		close(release)
		select {
		case <-closed:
		case <-time.After(4 * time.Second):
			t.Fatal("Close did not return with the DB gone")
		}
		if err := <-ran; err != nil {
			t.Errorf("Run = %v", err)
		}
		q2 := newQueue(t, inbox.QueueConfig{Store: open()})
		for _, ev := range evs {
			r, err := q2.Record(context.Background(), key, ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			if r.State != inbox.RecordPending || r.Tries != 0 {
				t.Errorf("record %s is %v after %d tries, want pending, untouched (the outcome was never written)", ev.ID, r.State, r.Tries)
			}
		}
	})
}

// TestAdv9PanickingOnDead: an OnDead that panics propagates out of Step
// (nothing swallows it), but only after the record was marked dead; the
// other failed records of the batch are handled again after the lease.
func TestAdv9PanickingOnDead(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s inbox.SQLStore) {
		var dead atomic.Int64
		q := newQueue(t, inbox.QueueConfig{Store: s, MaxAttempts: 1, Timeout: 100 * time.Millisecond, Lease: 300 * time.Millisecond,
			OnDead: func(context.Context, inbox.Record, error) {
				if dead.Add(1) == 1 {
					panic("OnDead blew up")
				}
			}})
		name, key := pubsub.Name(uniq("order.created")), uniq("k")
		mustRegister(t, q, name, key, func(context.Context, pubsub.Event) error { return errors.New("no") })
		a, b := namedEvent(name), namedEvent(name)
		mustStore(t, q, a)
		mustStore(t, q, b)
		func() {
			defer func() {
				if recover() == nil {
					t.Error("OnDead's panic did not reach Step's caller")
				}
			}()
			_, _ = q.Step(context.Background())
		}()
		deadline := time.Now().Add(4 * time.Second)
		for {
			_, _ = q.Step(context.Background())
			ra, _ := q.Record(context.Background(), key, a.ID)
			rb, _ := q.Record(context.Background(), key, b.ID)
			if ra.State == inbox.RecordDead && rb.State == inbox.RecordDead {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("records %v and %v after 4s, want both dead", ra.State, rb.State)
			}
			time.Sleep(20 * time.Millisecond) // waiting out the lease
		}
		if n := dead.Load(); n != 2 {
			t.Errorf("OnDead called %d times, want 2 (once per record)", n)
		}
	})
}
