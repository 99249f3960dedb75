package inbox_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/inbox"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// helperEnv, set to a Redis address, makes the test binary a consumer
// process of TestTransactionalSurvivesSIGKILL (TestHelperInboxConsumer);
// the other SWITCHYARD_INBOX_* variables tell it what to consume and
// where to die.
const helperEnv = "SWITCHYARD_INBOX_HELPER"

// The points where a consumer process kills itself.
const (
	killBeforeWrite  = "before-write"  // in the handler, before its insert
	killBeforeCommit = "before-commit" // in the handler, after its insert
	killBeforeAck    = "before-ack"    // after Transactional committed, before the subscriber acknowledges
	killNever        = "never"
)

type ranKey struct{}

// TestHelperInboxConsumer is not a test of its own: it returns at once
// unless TestTransactionalSurvivesSIGKILL started the test binary as a
// consumer process. It then consumes the stream with a Transactional
// handler that inserts one row into effects per event, and SIGKILLs
// itself at the configured point of its killAt-th handler run.
func TestHelperInboxConsumer(t *testing.T) {
	addr := os.Getenv(helperEnv)
	if addr == "" {
		return
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(2)
	}
	stream, driver, dsn, point := os.Getenv("SWITCHYARD_INBOX_STREAM"), os.Getenv("SWITCHYARD_INBOX_DRIVER"),
		os.Getenv("SWITCHYARD_INBOX_DSN"), os.Getenv("SWITCHYARD_INBOX_POINT")
	killAt, err := strconv.ParseInt(os.Getenv("SWITCHYARD_INBOX_KILL_AT"), 10, 64)
	if err != nil {
		fail(err)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		fail(err)
	}
	store := inbox.SQLStore{DB: db}
	d := sqlDB{db: db}
	concurrency := 4
	switch driver {
	case "pgx":
		d.dialect = inbox.Postgres
	case "mysql":
		d.dialect = inbox.MySQL
	default:
		// One writer at a time is all SQLite has; more handlers would
		// only take turns in its busy handler's sleeps.
		d.dialect, concurrency = inbox.SQLite, 1
	}
	die := func() {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
	var runs, committed atomic.Int64
	h := inbox.Transactional(store, "effects", inbox.Options{}, func(ctx context.Context, tx *sql.Tx, ev pubsub.Event) error {
		n := runs.Add(1)
		if point == killBeforeWrite && n == killAt {
			die()
		}
		if err := d.insertEffect(ctx, tx, ev.ID); err != nil {
			return err
		}
		if point == killBeforeCommit && n == killAt {
			die()
		}
		*ctx.Value(ranKey{}).(*bool) = true
		return nil
	})
	handle := func(ctx context.Context, ev pubsub.Event) error {
		ran := new(bool)
		err := h(context.WithValue(ctx, ranKey{}, ran), ev)
		if err == nil && *ran && point == killBeforeAck && committed.Add(1) == killAt {
			die() // the effect and the done mark are committed; the entry is not acknowledged
		}
		return err
	}
	client := goredis.NewClient(&goredis.Options{Addr: addr})
	sub, err := redis.NewSubscriber(context.Background(), client, redis.SubscriberConfig{
		Streams: []string{stream}, Group: "g", Consumer: "consumer", Concurrency: concurrency, BatchSize: 50,
		MaxAttempts: 1000, Backoff: pubsub.ConstantBackoff(20 * time.Millisecond),
		Block: 100 * time.Millisecond, ClaimIdle: 500 * time.Millisecond, ClaimInterval: 100 * time.Millisecond,
		ForgetIdleConsumers: -1,
	})
	if err != nil {
		fail(err)
	}
	sub.Consume(context.Background(), handle, func(_ context.Context, err error, _ *pubsub.Event) {
		fmt.Fprintln(os.Stderr, "consumer error:", err)
	})
}

// TestTransactionalSurvivesSIGKILL consumes 1,000 events, 200 of them
// published twice, from a Redis stream in consumer processes that SIGKILL
// themselves at one of three points of a handler run: before the
// handler's write, after it but before the commit, after the commit but
// before the acknowledgement. Each dialect sees every point killed at
// least three times, then a consumer that lives to the end. Every event
// must have exactly one effect row: never none, never two.
func TestTransactionalSurvivesSIGKILL(t *testing.T) {
	for _, kind := range []string{"postgres", "sqlite", "mysql"} {
		t.Run(kind, func(t *testing.T) { survivesKills(t, kind) })
	}
}

func survivesKills(t *testing.T, kind string) {
	const events, dups, killsPerPoint = 1000, 200, 3
	began := time.Now()
	ctx := context.Background()
	d := newSQLDB(t, kind)
	d.createEffects(t)
	client := goredis.NewClient(&goredis.Options{Addr: rds.Addr})
	t.Cleanup(func() { _ = client.Close() })
	stream := fmt.Sprintf("inbox-kill-%s-%d", kind, time.Now().UnixNano())
	if err := client.XGroupCreateMkStream(ctx, stream, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}

	// The events, every fifth one published again up to 100 entries later.
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	evs := make([]pubsub.Event, events)
	later := map[int][]pubsub.Event{}
	for i := range evs {
		evs[i] = pubsub.NewEvent(ctx, "job", []byte(strconv.Itoa(i)))
		if i%(events/dups) == 2 {
			at := min(i+1+rng.IntN(100), events-1)
			later[at] = append(later[at], evs[i])
		}
	}
	var entries []pubsub.Event
	for i, ev := range evs {
		entries = append(entries, ev)
		entries = append(entries, later[i]...)
	}
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(entries); i += 100 {
		if err := pub.Emit(ctx, entries[i:min(i+100, len(entries))]...); err != nil {
			t.Fatal(err)
		}
	}

	duplicates := func() int {
		return d.count(t, `SELECT COUNT(*) FROM (SELECT event_id FROM effects GROUP BY event_id HAVING COUNT(*) > 1) dup`)
	}
	handled := func() int { return d.count(t, `SELECT COUNT(DISTINCT event_id) FROM effects`) }
	// complete: every event has its effect, the group has read the whole
	// stream (the second copies included) and holds nothing pending.
	complete := func() bool {
		if handled() < events {
			return false
		}
		p, err := client.XPending(ctx, stream, "g").Result()
		if err != nil {
			t.Fatal(err)
		}
		if p.Count > 0 {
			return false
		}
		groups, err := client.XInfoGroups(ctx, stream).Result()
		if err != nil {
			t.Fatal(err)
		}
		info, err := client.XInfoStream(ctx, stream).Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(groups) == 1 && groups[0].LastDeliveredID == info.LastGeneratedID
	}

	start := func(point string, killAt int) (*exec.Cmd, *bytes.Buffer, chan error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperInboxConsumer$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+rds.Addr, "SWITCHYARD_INBOX_STREAM="+stream,
			"SWITCHYARD_INBOX_DRIVER="+d.driver, "SWITCHYARD_INBOX_DSN="+d.dsn,
			"SWITCHYARD_INBOX_POINT="+point, "SWITCHYARD_INBOX_KILL_AT="+strconv.Itoa(killAt))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		return cmd, &stderr, exited
	}

	points := []string{killBeforeWrite, killBeforeCommit, killBeforeAck}
	kills := map[string]int{}
	deadline := time.Now().Add(50 * time.Second)
	tick := time.NewTicker(25 * time.Millisecond) // polling the database and Redis for progress
	defer tick.Stop()
	children := 0
	for finished := false; !finished; {
		point := killNever
		for _, p := range points {
			if kills[p] < killsPerPoint && (point == killNever || kills[p] < kills[point]) {
				point = p
			}
		}
		killAt := 1 + rng.IntN(30)
		cmd, stderr, exited := start(point, killAt)
		children++
	wait:
		for {
			select {
			case err := <-exited:
				var ee *exec.ExitError
				if point == killNever || !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("consumer (kill point %s at run %d) ended with %v, not its own SIGKILL:\n%s", point, killAt, err, stderr)
				}
				kills[point]++
				if n := duplicates(); n != 0 {
					t.Fatalf("after a kill %s: %d events have more than one effect row", point, n)
				}
				break wait
			case <-tick.C:
				over := time.Now().After(deadline)
				if !over && !complete() {
					continue
				}
				_ = cmd.Process.Kill()
				<-exited
				if over {
					t.Fatalf("after %v: %d of %d events have their effect, %d with more than one; kills %v; %d consumers started; last consumer's stderr:\n%s",
						time.Since(began), handled(), events, duplicates(), kills, children, stderr)
				}
				if point != killNever {
					t.Fatalf("every event was handled before the consumer reached its kill point %s at run %d; kills %v", point, killAt, kills)
				}
				finished = true
				break wait
			}
		}
	}

	if n := duplicates(); n != 0 {
		t.Errorf("%d events have more than one effect row", n)
	}
	rows, err := d.db.Query(`SELECT event_id FROM effects`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[pubsub.ID]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		seen[pubsub.ID(id)]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if seen[ev.ID] != 1 {
			t.Errorf("event %s has %d effect rows, want 1", ev.ID, seen[ev.ID])
		}
	}
	if len(seen) != events {
		t.Errorf("%d distinct event IDs in effects, want %d", len(seen), events)
	}
	if n := d.count(t, `SELECT COUNT(*) FROM `+inbox.Table+` WHERE handler_key = 'effects' AND state = 'done'`); n != events {
		t.Errorf("%d done rows, want %d", n, events)
	}
	if n, err := client.XLen(ctx, redis.DeadKey(stream)).Result(); err != nil || n != 0 {
		t.Errorf("dead-letter stream: %d entries, %v", n, err)
	}
	for _, p := range points {
		if kills[p] < killsPerPoint {
			t.Errorf("kill point %s exercised %d times, want %d", p, kills[p], killsPerPoint)
		}
	}
	t.Logf("%d events in %d entries, %d consumer processes, kills %v: one effect row per event, in %v",
		events, len(entries), children, kills, time.Since(began).Round(time.Millisecond))
}
