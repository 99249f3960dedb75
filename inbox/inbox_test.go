package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	goredis "github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"

	"github.com/switchyard-go/switchyard/inbox"
	"github.com/switchyard-go/switchyard/internal/mysqltest"
	"github.com/switchyard-go/switchyard/internal/pgtest"
	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
)

var (
	pg    *pgtest.Server
	maria *mysqltest.Server
	rds   *redistest.Server
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		// A consumer process of TestTransactionalSurvivesSIGKILL: it
		// uses the servers of its parent.
		os.Exit(m.Run())
	}
	code := func() int {
		var err error
		if pg, err = pgtest.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pg.Stop()
		if maria, err = mysqltest.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer maria.Stop()
		dir, _ := os.MkdirTemp("", "switchyard-inbox-")
		defer os.RemoveAll(dir)
		if rds, err = redistest.Start(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer rds.Kill()
		return m.Run()
	}()
	os.Exit(code)
}

var seq atomic.Int64

// eachStore runs fn on a fresh store of each kind.
func eachStore(t *testing.T, fn func(t *testing.T, s inbox.Store)) {
	t.Run("redis", func(t *testing.T) {
		c := goredis.NewClient(&goredis.Options{Addr: rds.Addr})
		t.Cleanup(func() { _ = c.Close() })
		fn(t, inbox.RedisStore{Client: c, Prefix: fmt.Sprintf("test%d", seq.Add(1))})
	})
	for _, kind := range []string{"postgres", "sqlite", "mysql"} {
		t.Run(kind, func(t *testing.T) {
			var db *sql.DB
			var err error
			switch kind {
			case "postgres":
				db, err = sql.Open("pgx", pg.DSN)
			case "mysql":
				var dsn string
				if dsn, err = maria.NewDatabase("inbox"); err == nil {
					db, err = sql.Open("mysql", dsn)
				}
			default:
				db, err = sql.Open("sqlite", filepath.Join(t.TempDir(), "inbox.db")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			s := inbox.SQLStore{DB: db}
			for range 2 { // idempotent
				if err := s.Migrate(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			fn(t, s)
		})
	}
}

func event() pubsub.Event {
	return pubsub.NewEvent(context.Background(), "order.created", []byte(fmt.Sprintf(`{"n":%d}`, seq.Add(1))))
}

func TestDuplicateHandledOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, s inbox.Store) {
		var runs atomic.Int32
		h := inbox.Middleware(s, "billing", inbox.Options{})(func(context.Context, pubsub.Event) error {
			runs.Add(1)
			return nil
		})
		ev := event()
		for range 3 {
			if err := h(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
		}
		if runs.Load() != 1 {
			t.Errorf("handler ran %d times for one event delivered 3 times", runs.Load())
		}
		other := inbox.Middleware(s, "audit", inbox.Options{})(func(context.Context, pubsub.Event) error { runs.Add(1); return nil })
		if err := other(context.Background(), ev); err != nil || runs.Load() != 2 {
			t.Errorf("a second key did not handle the event: %v, %d runs", err, runs.Load())
		}
	})
}

func TestFailureIsNotRecorded(t *testing.T) {
	eachStore(t, func(t *testing.T, s inbox.Store) {
		var runs atomic.Int32
		boom := errors.New("boom")
		h := inbox.Middleware(s, "k", inbox.Options{})(func(context.Context, pubsub.Event) error {
			if runs.Add(1) == 1 {
				return boom
			}
			return nil
		})
		ev := event()
		if err := h(context.Background(), ev); !errors.Is(err, boom) {
			t.Fatalf("first delivery = %v, want the handler's error", err)
		}
		if err := h(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		_ = h(context.Background(), ev)
		if runs.Load() != 2 {
			t.Errorf("handler ran %d times, want 2: failed, then succeeded, then skipped", runs.Load())
		}
		panics := inbox.Middleware(s, "p", inbox.Options{})(func(context.Context, pubsub.Event) error { panic("bug") })
		var pe *pubsub.PanicError
		if err := panics(context.Background(), ev); !errors.As(err, &pe) {
			t.Errorf("a panic became %v", err)
		}
	})
}

func TestConcurrentDuplicates(t *testing.T) {
	eachStore(t, func(t *testing.T, s inbox.Store) {
		var runs atomic.Int32
		release, started := make(chan struct{}), make(chan struct{})
		h := inbox.Middleware(s, "k", inbox.Options{})(func(context.Context, pubsub.Event) error {
			if runs.Add(1) == 1 {
				close(started)
			}
			<-release
			return nil
		})
		ev := event()
		first := make(chan error, 1)
		go func() { first <- h(context.Background(), ev) }()
		select { // the first delivery holds the claim once its handler runs
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("first delivery never started")
		}
		var wg sync.WaitGroup
		var inProgress atomic.Int32
		for range 8 {
			wg.Go(func() {
				if err := h(context.Background(), ev); errors.Is(err, inbox.ErrInProgress) {
					inProgress.Add(1)
				} else {
					t.Errorf("a concurrent duplicate returned %v, want ErrInProgress", err)
				}
			})
		}
		wg.Wait()
		close(release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if err := h(context.Background(), ev); err != nil {
			t.Errorf("redelivery after the first finished = %v, want nil (skipped)", err)
		}
		if runs.Load() != 1 || inProgress.Load() != 8 {
			t.Errorf("%d runs and %d deferred duplicates, want 1 and 8", runs.Load(), inProgress.Load())
		}
	})
}

func TestLapsedClaimIsTakenOver(t *testing.T) {
	eachStore(t, func(t *testing.T, s inbox.Store) {
		ev := event()
		// A process claimed the event and died.
		if st, err := s.Claim(context.Background(), "k", ev.ID, time.Second); err != nil || st != inbox.Claimed {
			t.Fatalf("Claim = %v, %v", st, err)
		}
		if st, _ := s.Claim(context.Background(), "k", ev.ID, time.Minute); st != inbox.Busy {
			t.Fatalf("second claim within the lease = %v, want Busy", st)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := s.Claim(context.Background(), "k", ev.ID, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if st == inbox.Claimed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the lapsed claim was never taken over")
			}
			time.Sleep(10 * time.Millisecond) // the lease running out
		}
	})
}

func TestRegistry(t *testing.T) {
	eachStore(t, func(t *testing.T, s inbox.Store) {
		reg := inbox.NewRegistry(s, inbox.Options{Timeout: 50 * time.Millisecond})
		var charged, mailed atomic.Int32
		if err := reg.Register("order.created", "charge", func(context.Context, pubsub.Event) error { charged.Add(1); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := reg.Register("order.created", "mail", func(ctx context.Context, ev pubsub.Event) error {
			if mailed.Add(1) == 1 {
				<-ctx.Done() // slower than the timeout the first time
				return ctx.Err()
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := reg.Register("order.created", "charge", func(context.Context, pubsub.Event) error { return nil }); err == nil {
			t.Error("a second handler with the same key was accepted")
		}
		ev := event()
		if err := reg.Handle(context.Background(), ev); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("first delivery = %v, want the mail handler's timeout", err)
		}
		if err := reg.Handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if charged.Load() != 1 || mailed.Load() != 2 {
			t.Errorf("charged %d, mailed %d; want 1 and 2: the redelivery runs only the handler that failed", charged.Load(), mailed.Load())
		}
		if err := reg.Handle(context.Background(), pubsub.NewEvent(context.Background(), "unknown", nil)); err != nil {
			t.Errorf("an event without handlers = %v", err)
		}
	})
}
