package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// prepareCommitLog makes the tables the ordered writers keep their
// commit order in: a counter per key, and each event's place.
func prepareCommitLog(t *testing.T, db *sql.DB) {
	t.Helper()
	for _, stmt := range []string{
		`CREATE TABLE key_versions (k VARCHAR(64) PRIMARY KEY, v BIGINT NOT NULL)`,
		`CREATE TABLE commit_log (event_id VARCHAR(64) PRIMARY KEY, k VARCHAR(64) NOT NULL, v BIGINT NOT NULL, sub INTEGER NOT NULL)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
}

// writeOrderedConcurrently writes n events over keys keys from workers
// goroutines, each transaction one or two events of one key. After
// WriteOrdered each transaction takes its key's next version, pausing at
// random before it, so that without the key lock a transaction that
// wrote its rows later could commit, and take its version, first. The
// version is the key's commit order.
func writeOrderedConcurrently(t *testing.T, db *sql.DB, d Dialect, keys, n, workers int) {
	t.Helper()
	ctx := context.Background()
	w := writer(d)
	for k := range keys {
		if _, err := d.Exec(ctx, db, `INSERT INTO key_versions (k, v) VALUES ($1, 0)`, fmt.Sprint("key-", k)); err != nil {
			t.Fatal(err)
		}
	}
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		rnd := rand.New(rand.NewPCG(uint64(i), 7))
		wg.Go(func() {
			for {
				m := 1 + rnd.IntN(2)
				if left.Add(-int64(m)) < 0 {
					left.Add(int64(m))
					if m == 2 && left.Add(-1) >= 0 {
						m = 1
					} else {
						return
					}
				}
				if err := writeOne(ctx, db, d, w, fmt.Sprint("key-", rnd.IntN(keys)), m, rnd); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// writeOne writes m events of key in one transaction, and logs its
// place. It does not retry: the key lock must not deadlock writers.
func writeOne(ctx context.Context, db *sql.DB, d Dialect, w Writer, key string, m int, rnd *rand.Rand) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	evs := make([]pubsub.Event, m)
	for i := range evs {
		evs[i] = pubsub.NewEvent(ctx, "aggregate.changed", []byte(key))
	}
	if err := w.WriteOrdered(ctx, tx, key, evs...); err != nil {
		return err
	}
	if p := rnd.IntN(4); p > 0 {
		time.Sleep(time.Duration(p) * 300 * time.Microsecond) // a business step between the write and the commit
	}
	if _, err := d.Exec(ctx, tx, `UPDATE key_versions SET v = v + 1 WHERE k = $1`, key); err != nil {
		return err
	}
	var v int64
	if err := d.QueryRow(ctx, tx, `SELECT v FROM key_versions WHERE k = $1`, key).Scan(&v); err != nil {
		return err
	}
	for i, ev := range evs {
		if _, err := d.Exec(ctx, tx, `INSERT INTO commit_log (event_id, k, v, sub) VALUES ($1, $2, $3, $4)`, string(ev.ID), key, v, i); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// checkCommitOrder checks that published holds every logged event and,
// per key, first appearances in commit order.
func checkCommitOrder(t *testing.T, db *sql.DB, d Dialect, published []pubsub.Event) {
	t.Helper()
	type place struct {
		k      string
		v, sub int64
	}
	places := map[pubsub.ID]place{}
	rs, err := db.Query(`SELECT event_id, k, v, sub FROM commit_log`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var id string
		var p place
		if err := rs.Scan(&id, &p.k, &p.v, &p.sub); err != nil {
			t.Fatal(err)
		}
		places[pubsub.ID(id)] = p
	}
	rs.Close()
	seen := map[pubsub.ID]bool{}
	last := map[string]place{}
	repeats, wrong := 0, 0
	for _, ev := range published {
		p, ok := places[ev.ID]
		if !ok {
			t.Fatalf("published %s, which no committed transaction wrote", ev.ID)
		}
		if seen[ev.ID] {
			repeats++
			continue
		}
		seen[ev.ID] = true
		if l, ok := last[p.k]; ok && (p.v < l.v || (p.v == l.v && p.sub < l.sub)) {
			if wrong < 5 {
				t.Errorf("key %s: version %d.%d published after %d.%d", p.k, p.v, p.sub, l.v, l.sub)
			}
			wrong++
		}
		last[p.k] = p
	}
	if len(seen) != len(places) {
		t.Errorf("%d of %d committed events published", len(seen), len(places))
	}
	if wrong > 0 {
		t.Errorf("%d events out of commit order", wrong)
	}
	t.Logf("%s: %d events over %d keys in commit order, %d published again", d, len(places), len(last), repeats)
}
