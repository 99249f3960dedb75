package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// stopwatch is a publisher that notes when each event reached Emit.
type stopwatch struct {
	mu       sync.Mutex
	received map[pubsub.ID]time.Time
	want     int
	all      chan struct{} // closed once want events were received
}

func (s *stopwatch) expect(n int) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.want, s.all = n, make(chan struct{})
	if len(s.received) >= n {
		close(s.all)
	}
	return s.all
}

func (s *stopwatch) Emit(_ context.Context, events ...pubsub.Event) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	before := len(s.received)
	for _, ev := range events {
		if _, dup := s.received[ev.ID]; !dup {
			s.received[ev.ID] = now
		}
	}
	if before < s.want && len(s.received) >= s.want {
		close(s.all)
	}
	return nil
}

func (s *stopwatch) Close() error { return nil }

func (s *stopwatch) at(id pubsub.ID) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.received[id]
	return t, ok
}

// benchWriters is the size of the writer pool; enough that commits of
// 1,000 transactions a second do not queue behind each other.
const benchWriters = 8

// benchSeconds is how long one iteration writes at its rate.
const benchSeconds = 2

// BenchmarkCommitToPublish measures, per event, the time from tx.Commit
// returning to the relay's publisher receiving the event, while a pool of
// writers commits transactions of one event each at a steady rate. Each
// iteration writes for benchSeconds; p50-ms and p99-ms are over every
// event of every iteration, tx/s is the rate the writers achieved and
// commit-p99-ms the 99th percentile of tx.Commit itself (on PostgreSQL
// it includes the wait for the lock NOTIFY takes at commit).
func BenchmarkCommitToPublish(b *testing.B) {
	for _, c := range []struct {
		name string
		d    Dialect
		cfg  RelayConfig
	}{
		{"postgres", Postgres, RelayConfig{PollInterval: time.Second}},
		{"postgres-poll", Postgres, RelayConfig{NoNotify: true}},
		{"sqlite", SQLite, RelayConfig{}},
		{"mysql", MySQL, RelayConfig{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for _, rate := range []int{100, 1000} {
				b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
					benchCommitToPublish(b, c.d, c.cfg, rate)
				})
			}
		})
	}
}

func benchCommitToPublish(b *testing.B, d Dialect, cfg RelayConfig, rate int) {
	db, _, _ := openDB(b, d)
	db.SetMaxIdleConns(benchWriters + 4) // no reconnecting between transactions
	sw := &stopwatch{received: map[pubsub.ID]time.Time{}}
	r := relay(b, db, d, sw, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = r.Run(ctx)
	}()
	defer func() {
		cancel()
		<-ran
	}()

	total := 0
	// A warm-up of a tenth of a second, not measured, opens the pool's
	// connections and lets the relay's listener start.
	pace(b, db, d, sw, rate, rate/10, &total)

	var lat, commits []time.Duration
	var writing time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		l, c := pace(b, db, d, sw, rate, rate*benchSeconds, &total)
		writing += time.Since(start)
		lat, commits = append(lat, l...), append(commits, c...)
	}
	b.StopTimer()
	ms := func(ds []time.Duration, q float64) float64 {
		slices.Sort(ds)
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(lat, 0.50), "p50-ms")
	b.ReportMetric(ms(lat, 0.99), "p99-ms")
	b.ReportMetric(ms(commits, 0.99), "commit-p99-ms")
	b.ReportMetric(float64(len(lat))/writing.Seconds(), "tx/s")
}

// pace commits n transactions of one event each at rate a second, from
// a pool of writers, waits until the relay published them all, and
// returns each event's time from commit to publish and the time each
// Commit took. total counts the events written so far.
func pace(b *testing.B, db *sql.DB, d Dialect, sw *stopwatch, rate, n int, total *int) (lat, commits []time.Duration) {
	*total += n
	all := sw.expect(*total)
	ids := make([]pubsub.ID, n)
	committed := make([]time.Time, n)
	commits = make([]time.Duration, n)
	jobs := make(chan int, n)
	var wg sync.WaitGroup
	var failed sync.Once
	var werr error
	for range benchWriters {
		wg.Go(func() {
			for i := range jobs {
				ev := pubsub.NewEvent(context.Background(), "order.created", []byte(`{"order_id":7}`))
				ids[i] = ev.ID
				err := func() error {
					tx, err := db.Begin()
					if err != nil {
						return err
					}
					if err := writer(d).Write(context.Background(), tx, ev); err != nil {
						_ = tx.Rollback()
						return err
					}
					c := time.Now()
					err = tx.Commit()
					commits[i] = time.Since(c)
					return err
				}()
				committed[i] = time.Now()
				if err != nil {
					failed.Do(func() { werr = err })
				}
			}
		})
	}
	start := time.Now()
	every := time.Second / time.Duration(rate)
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * every)); wait > 0 {
			time.Sleep(wait) // pacing the writers, not synchronising
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if werr != nil {
		b.Fatal(werr)
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		b.Fatalf("the relay did not publish %d events within 30s", n)
	}
	lat = make([]time.Duration, n)
	for i, id := range ids {
		got, _ := sw.at(id)
		// The relay may see the row before Commit returns to the writer.
		lat[i] = max(0, got.Sub(committed[i]))
	}
	return lat, commits
}
