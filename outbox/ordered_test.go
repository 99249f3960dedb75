package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
)

// waitingOnALock reports whether a transaction of db waits for a lock.
func waitingOnALock(t *testing.T, db *sql.DB, d Dialect) bool {
	t.Helper()
	q := `SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`
	if d == MySQL {
		q = `SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'`
	}
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// TestWritersOfOneKeyCommitInTurn: a transaction writing events of a key
// waits for another that wrote events of the key to end, so the rows of a
// key are numbered in commit order; writers of other keys do not wait.
// (SQLite's single writer serialises every writing transaction.)
func TestWritersOfOneKeyCommitInTurn(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		if d == SQLite {
			return
		}
		ctx := context.Background()
		w := writer(d)
		first := pubsub.NewEvent(ctx, "order.paid", []byte(`1`))
		txA, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteOrdered(ctx, txA, "order-1", first); err != nil {
			t.Fatal(err)
		}
		// Another key does not wait.
		txC, _ := db.BeginTx(ctx, nil)
		if err := w.WriteOrdered(ctx, txC, "order-2", pubsub.NewEvent(ctx, "order.paid", []byte(`c`))); err != nil {
			t.Fatal(err)
		}
		if err := txC.Commit(); err != nil {
			t.Fatal(err)
		}
		second := pubsub.NewEvent(ctx, "order.shipped", []byte(`2`))
		done := make(chan error, 1)
		go func() {
			txB, err := db.BeginTx(ctx, nil)
			if err == nil {
				if err = w.WriteOrdered(ctx, txB, "order-1", second); err == nil {
					err = txB.Commit()
				}
			}
			done <- err
		}()
		deadline := time.Now().Add(10 * time.Second)
		for !waitingOnALock(t, db, d) {
			select {
			case err := <-done:
				t.Fatalf("the second writer of the key finished (%v) while the first was open", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("the second writer of the key never waited for the first")
			}
			// Polling the server's lock view: InnoDB refreshes it only
			// when it was not read for 100ms.
			time.Sleep(150 * time.Millisecond)
		}
		if err := txA.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		rec := pubsubtest.NewRecorder()
		r := relay(t, db, d, rec, RelayConfig{})
		drain(t, r)
		var got []pubsub.ID
		for _, ev := range rec.Events() {
			if ev.Name != "order.paid" || string(ev.Payload) != "c" {
				got = append(got, ev.ID)
			}
		}
		if !slices.Equal(got, []pubsub.ID{first.ID, second.ID}) {
			t.Errorf("published %v, want %v", got, []pubsub.ID{first.ID, second.ID})
		}
	})
}

// drain steps r until it claims nothing.
func drain(t *testing.T, r *Relay) {
	t.Helper()
	for {
		n, err := r.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// TestFailedEventHoldsBackItsKey: while the oldest pending event of a key
// waits for its next try, no later event of the key is published; other
// keys go on. An event dead after its last try lets the rest of its key
// go, in order.
func TestFailedEventHoldsBackItsKey(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		w := writer(d)
		write := func(key string, evs ...pubsub.Event) {
			tx, _ := db.BeginTx(ctx, nil)
			if err := w.WriteOrdered(ctx, tx, key, evs...); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		ev := func(p string) pubsub.Event { return pubsub.NewEvent(ctx, "order.changed", []byte(p)) }
		a1, a2, a3, b1 := ev("a1"), ev("a2"), ev("a3"), ev("b1")
		write("a", a1)
		write("a", a2, a3)
		write("b", b1)
		pub := &flakyPublisher{rec: pubsubtest.NewRecorder()}
		pub.failNext(errors.New("broker down"))
		backoff := time.Hour
		r := relay(t, db, d, pub, RelayConfig{BatchSize: 10, MaxAttempts: 2,
			Backoff: func(int) time.Duration { return backoff }})
		if n, err := r.Step(ctx); n != 4 || err == nil {
			t.Fatalf("first step claimed %d (%v), want all 4 and the publisher's error", n, err)
		}
		b2 := ev("b2")
		write("b", b2)
		write("c", ev("c1"))
		// Key a and b wait an hour; a new key goes on; b2 waits behind b1.
		if n, err := r.Step(ctx); n != 1 || err != nil {
			t.Fatalf("second step claimed %d (%v), want only the new key's event", n, err)
		}
		if n := count(t, db, "status = 'pending' AND claimed_until_ms = 0"); n != 5 {
			t.Fatalf("%d rows pending, want 5", n)
		}
		// Make them due; the next failure is a's and b's last try.
		if _, err := db.Exec("UPDATE " + Table + " SET next_attempt_ms = 0"); err != nil {
			t.Fatal(err)
		}
		pub.failNext(errors.New("broker down again"))
		if n, err := r.Step(ctx); n != 5 || err == nil {
			t.Fatalf("third step claimed %d (%v), want a1 a2 a3 b1 b2", n, err)
		}
		if n := count(t, db, "status = 'dead'"); n != 4 {
			t.Fatalf("%d dead rows, want a1 a2 a3 b1 (tried twice)", n)
		}
		if _, err := db.Exec("UPDATE " + Table + " SET next_attempt_ms = 0"); err != nil {
			t.Fatal(err)
		}
		drain(t, r)
		var got []string
		for _, e := range pub.rec.Events() {
			got = append(got, string(e.Payload))
		}
		if !slices.Equal(got, []string{"c1", "b2"}) {
			t.Errorf("published %v, want c1, then b2 once b1 was dead", got)
		}
	})
}

// flakyPublisher fails when told to, and then, at random, after
// publishing the batch (a lost reply), or before.
type flakyPublisher struct {
	rec  *pubsubtest.Recorder
	mu   sync.Mutex
	errs []error
	rate float64 // chance that an Emit fails
	rnd  *rand.Rand
}

func (p *flakyPublisher) failNext(err error) {
	p.mu.Lock()
	p.errs = append(p.errs, err)
	p.mu.Unlock()
}

func (p *flakyPublisher) Emit(ctx context.Context, evs ...pubsub.Event) error {
	p.mu.Lock()
	var err error
	if len(p.errs) > 0 {
		err, p.errs = p.errs[0], p.errs[1:]
	} else if p.rnd != nil && p.rnd.Float64() < p.rate {
		err = errors.New("flaky")
		if p.rnd.IntN(2) == 0 {
			_ = p.rec.Emit(ctx, evs...) // published, reply lost
		}
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return p.rec.Emit(ctx, evs...)
}

func (p *flakyPublisher) Close() error { return nil }

// TestKeysInCommitOrderAcrossRacingRelays: three relays on one table, a
// publisher that fails a fifth of its batches (half of them after
// publishing), 40 keys written by concurrent transactions: per key, the
// events come out in commit order (repeats aside) and none is missing.
func TestKeysInCommitOrderAcrossRacingRelays(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		prepareCommitLog(t, db)
		pub := &flakyPublisher{rec: pubsubtest.NewRecorder(), rate: 0.2, rnd: rand.New(rand.NewPCG(1, 2))}
		var wg sync.WaitGroup
		for i := range 3 {
			r := relay(t, db, d, pub, RelayConfig{Name: fmt.Sprint("relay-", i), BatchSize: 16, PollInterval: 2 * time.Millisecond,
				Backoff: pubsub.ConstantBackoff(5 * time.Millisecond), MaxAttempts: 1000})
			wg.Go(func() { _ = r.Run(ctx) })
		}
		n := 1200
		writeOrderedConcurrently(t, db, d, 40, n, 8)
		pub.rec.WaitForN(t, n, 60*time.Second)
		waitAllSent(t, db, 60*time.Second)
		cancel()
		wg.Wait()
		checkCommitOrder(t, db, d, pub.rec.Events())
	})
}

// waitAllSent waits until no row of the outbox is pending.
func waitAllSent(t *testing.T, db *sql.DB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for count(t, db, "status <> 'sent'") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d rows not sent after %s", count(t, db, "status <> 'sent'"), within)
		}
		time.Sleep(20 * time.Millisecond) // polling the relays' progress
	}
}

// slowPublisher takes a while over each batch and counts them.
type slowPublisher struct {
	batches chan struct{}
}

func (p *slowPublisher) Emit(ctx context.Context, evs ...pubsub.Event) error {
	select {
	case p.batches <- struct{}{}:
	default:
	}
	t := time.NewTimer(20 * time.Millisecond) // a publish that takes time
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *slowPublisher) Close() error { return nil }

// TestCloseWithABacklogReturnsAfterTheBatchInHand: Run goes from batch to
// batch while rows wait; Close stops it after the batch in hand, not once
// the backlog is through.
func TestCloseWithABacklogReturnsAfterTheBatchInHand(t *testing.T) {
	db, _, _ := openDB(t, SQLite)
	writeN(t, db, SQLite, 200)
	pub := &slowPublisher{batches: make(chan struct{}, 1)}
	r := relay(t, db, SQLite, pub, RelayConfig{BatchSize: 1})
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	<-pub.batches // publishing
	start := time.Now()
	_ = r.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run went on through the backlog after Close")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %s with 200 rows of 20ms each waiting", took)
	}
	if left := count(t, db, "status = 'pending'"); left < 100 {
		t.Errorf("only %d rows left pending: Run did not stop at Close", left)
	}
}
