package redis_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// The tests in this file attack the promises of the package doc
// ("Delivery semantics") from outside. Each one fails while the defect it
// names is present.

// attemptsLog records Meta.Attempts of every handler run.
type attemptsLog struct {
	mu  sync.Mutex
	got []int
}

func (a *attemptsLog) add(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, n)
}

func (a *attemptsLog) snapshot() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.got...)
}

// An entry taken over from a dead consumer (or recovered from this
// consumer's own pending list) whose handler keeps failing must get
// MaxAttempts deliveries, Attempts growing by one per redelivery, and be
// dead-lettered with the handler's error. A retry of such a "claimed"
// entry is counted twice (the retry's XCLAIM and then startScript), so
// Attempts jumps by 2 and the entry is dead-lettered early with the
// crash-or-hang reason although every run had an outcome.
func TestAdversaryRetryOfClaimedEntryCountsOnce(t *testing.T) {
	for _, how := range []string{"taken over", "own pending list"} {
		t.Run(how, func(t *testing.T) {
			client := newClient(t, server.Addr)
			stream, group := uniqueName("claimedretry"), "g"
			makeGroup(t, client, stream, group)
			emitN(t, newPublisher(t, client, stream), "job", 1)
			holder := "dead-consumer"
			if how == "own pending list" {
				holder = "worker"
			}
			if n := len(takePending(t, client, stream, group, holder)); n != 1 {
				t.Fatalf("took %d", n)
			}
			// One delivery without an outcome (a crash), then a live
			// consumer whose handler fails every time.
			runs := &attemptsLog{}
			dead := make(chan error, 1)
			subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: group, Consumer: "worker",
				MaxAttempts: 5, Backoff: pubsub.ConstantBackoff(10 * time.Millisecond),
				ClaimIdle: 100 * time.Millisecond, ClaimInterval: 20 * time.Millisecond},
				func(_ context.Context, ev pubsub.Event) error {
					runs.add(ev.Meta.Attempts)
					return errors.New("transient failure")
				},
				func(_ context.Context, err error, _ *pubsub.Event) {
					if errors.Is(err, pubsub.ErrDeadLetter) {
						select {
						case dead <- err:
						default:
						}
					}
				})
			var err error
			select {
			case err = <-dead:
			case <-time.After(wait):
				t.Fatalf("not dead-lettered; handler runs with Attempts %v", runs.snapshot())
			}
			got := runs.snapshot()
			// Delivery 1 was the crash; deliveries 2..5 reach the handler
			// with Attempts 1..4.
			want := []int{1, 2, 3, 4}
			if !equalInts(got, want) {
				t.Errorf("handler runs saw Attempts %v, want %v", got, want)
			}
			if strings.Contains(err.Error(), "without an outcome") {
				t.Errorf("dead-lettered as crash/hang although every run returned an error: %v", err)
			}
			var entries []goredis.XMessage
			eventually(t, "the dead letter", func() bool {
				entries, _ = client.XRange(context.Background(), redis.DeadKey(stream), "-", "+").Result()
				return len(entries) == 1
			})
			t.Logf("dead_reason=%q dead_attempts=%v", entries[0].Values["dead_reason"], entries[0].Values["dead_attempts"])
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// DESIGN: "a group deleted or lost (restart without persistence) is made
// again ...; entries in hand or waiting to retry are not lost". Events
// whose first handling failed wait for their retry; redis-server restarts
// without persistence (the stream and group are gone). The run still
// holds every waiting event's fields, but the retry's claim finds the
// entry "gone" and gives it up: Emit returned nil, the event was never
// handled and is not dead-lettered.
func TestAdversaryRetryWaitingAcrossRestartWithoutPersistence(t *testing.T) {
	for _, fault := range []string{"restart", "FLUSHALL", "DEL stream"} {
		t.Run(fault, func(t *testing.T) {
			srv, client := privateServer(t)
			stream := uniqueName("retryamnesia")
			pub := newPublisher(t, client, stream)
			c := newCounter()
			var failedMu sync.Mutex
			failed := map[pubsub.ID]bool{}
			log := &errorLog{}
			subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "worker",
				Concurrency: 4, Backoff: pubsub.ConstantBackoff(1500 * time.Millisecond)},
				func(_ context.Context, ev pubsub.Event) error {
					failedMu.Lock()
					first := !failed[ev.ID]
					failed[ev.ID] = true
					failedMu.Unlock()
					if first {
						return errors.New("transient")
					}
					c.add(ev)
					return nil
				}, log.handle)
			evs := emitN(t, pub, "job", 20)
			eventually(t, "every event to fail once", func() bool {
				failedMu.Lock()
				defer failedMu.Unlock()
				return len(failed) == len(evs)
			})
			switch fault {
			case "restart":
				srv.Kill()
				if err := srv.Restart(); err != nil {
					t.Fatal(err)
				}
			case "FLUSHALL":
				if err := client.FlushAll(context.Background()).Err(); err != nil {
					t.Fatal(err)
				}
			case "DEL stream":
				if err := client.Del(context.Background(), stream).Err(); err != nil {
					t.Fatal(err)
				}
			}
			// Retries are due 1.5s after the failures; give them ample time.
			deadline := time.Now().Add(8 * time.Second)
			for time.Now().Before(deadline) {
				c.mu.Lock()
				n := len(c.n)
				c.mu.Unlock()
				errs, _ := log.snapshot()
				if n+strings.Count(fmt.Sprint(errs), "before its retry") >= len(evs) {
					break
				}
				time.Sleep(20 * time.Millisecond) // bounded polling
			}
			c.mu.Lock()
			handled := len(c.n)
			c.mu.Unlock()
			deadN, _ := client.XLen(context.Background(), redis.DeadKey(stream)).Result()
			gaveUp := 0
			errs, _ := log.snapshot()
			for _, err := range errs {
				if strings.Contains(err.Error(), "before its retry") {
					gaveUp++
				}
			}
			if handled+int(deadN) != len(evs) {
				t.Errorf("%d of %d emitted events lost: %d handled, %d dead-lettered, %d retries given up (ErrorHandler: %q)",
					len(evs)-handled-int(deadN), len(evs), handled, deadN, gaveUp, firstWith(errs, "before its retry"))
			}
		})
	}
}

func firstWith(errs []error, part string) string {
	for _, err := range errs {
		if strings.Contains(err.Error(), part) {
			return err.Error()
		}
	}
	return ""
}

// "Close stops reading, waits for the handlers and their
// acknowledgements ... returns within about Block + HandlerTimeout +
// grace + the acknowledgement flush". Entries already queued for the
// workers (up to Concurrency of them) are still handed to handlers after
// Close: new handler runs start after Close was called, and Close waits
// for two handler runs in a row.
func TestAdversaryCloseStartsNoNewHandlers(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("closequeued")
	pub := newPublisher(t, client, stream)
	const conc = 2
	timeout := 3 * time.Second
	cfg := redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "worker", Concurrency: conc,
		HandlerTimeout: timeout, Block: 50 * time.Millisecond}
	s, err := redis.NewSubscriber(context.Background(), client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var starts []time.Time
	started := make(chan struct{}, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Consume(context.Background(), func(ctx context.Context, _ pubsub.Event) error {
			mu.Lock()
			starts = append(starts, time.Now())
			mu.Unlock()
			started <- struct{}{}
			select { // the handler's work, which honours its deadline
			case <-time.After(timeout - 200*time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		}, nil)
	}()
	emitN(t, pub, "job", 20)
	for range conc {
		select {
		case <-started:
		case <-time.After(wait):
			t.Fatal("handlers did not start")
		}
	}
	closeAt := time.Now()
	_ = s.Close()
	took := time.Since(closeAt)
	<-done
	mu.Lock()
	after := 0
	for _, st := range starts {
		if st.After(closeAt) {
			after++
		}
	}
	mu.Unlock()
	bound := cfg.Block + timeout + timeout/4 + 2*time.Second
	if after > 0 || took > bound {
		t.Errorf("Close took %s (bound about %s); %d handler runs started after Close was called", took.Round(time.Millisecond), bound, after)
	}
}

// "Close ... returns within about Block + HandlerTimeout + grace + the
// acknowledgement flush (a few seconds while Redis is unreachable),
// whatever the handlers do." A redis-server that hangs (SIGSTOP: the
// connections stay open, nothing answers) while handled entries wait for
// their XACK holds Close far longer: each flush is tried 5 times, each
// try up to its 5s timeout, per batch still queued, and then Close's own
// XPENDING waits another 5s.
func TestAdversaryCloseIsBoundedWhileRedisHangs(t *testing.T) {
	client, freeze, thaw := freezable(t, goredis.Options{}) // go-redis defaults: ReadTimeout 3s
	stream := uniqueName("sigstop")
	pub := newPublisher(t, client, stream)
	cfg := redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "worker", Concurrency: 4,
		HandlerTimeout: time.Second, Block: 50 * time.Millisecond}
	s, err := redis.NewSubscriber(context.Background(), client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := newCounter()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Consume(context.Background(), func(_ context.Context, ev pubsub.Event) error {
			time.Sleep(2 * time.Millisecond) // the handler's work
			c.add(ev)
			return nil
		}, func(context.Context, error, *pubsub.Event) {})
	}()
	evs := emitN(t, pub, "job", 2000)
	eventually(t, "some events handled", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.n) >= 100
	})
	freeze()
	closeAt := time.Now()
	closed := make(chan time.Duration, 1)
	go func() { _ = s.Close(); closed <- time.Since(closeAt) }()
	bound := cfg.Block + cfg.HandlerTimeout + cfg.HandlerTimeout/4 + 5*time.Second
	select {
	case took := <-closed:
		if took > bound {
			t.Errorf("Close took %s with redis-server stopped; promised about %s", took.Round(time.Millisecond), bound)
		} else {
			t.Logf("Close took %s", took)
		}
	case <-time.After(120 * time.Second):
		t.Errorf("Close did not return within 120s with redis-server stopped; promised about %s", bound)
	}
	thaw()
	<-done
	_ = evs
}

// serverPid is the process ID of the redis-server client talks to.
func serverPid(t *testing.T, client goredis.UniversalClient) int {
	t.Helper()
	info, err := client.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatal("no process_id in INFO server")
	return 0
}

// No duplicate without a fault, with many partitions: every partition
// has a reader that holds a pooled connection in XREADGROUP BLOCK, so
// with more partitions than the go-redis pool (10 per CPU by default)
// the keeper waits for a connection on every one of its serial,
// per-stream calls (renew, sweep, XINFO GROUPS), its pass takes longer
// than ClaimIdle, held entries go unrenewed, and another healthy
// consumer takes over entries a live handler is still working on.
func TestAdversaryManyPartitionsHealthyGroupHandlesOnce(t *testing.T) {
	stream := uniqueName("manyparts")
	parts := 12 * runtime.GOMAXPROCS(0) // more partitions than pool connections
	pubClient := newClient(t, server.Addr)
	pub, err := redis.NewPublisher(pubClient, redis.PublisherConfig{Stream: stream, Partitions: parts})
	if err != nil {
		t.Fatal(err)
	}
	c := newCounter()
	var cfgs []redis.SubscriberConfig
	for i := range 2 {
		cfgs = append(cfgs, redis.SubscriberConfig{Streams: []string{stream}, Partitions: parts, Group: "g",
			Consumer: "worker-" + strconv.Itoa(i), Concurrency: 2, ClaimIdle: 2 * time.Second, HandlerTimeout: 10 * time.Second,
			Block: time.Second})
	}
	handler := func(_ context.Context, ev pubsub.Event) error {
		time.Sleep(600 * time.Millisecond) // the handler's work: entries wait in the queue far past ClaimIdle
		c.add(ev)
		return nil
	}
	// Each subscriber has a client (and so a pool) of its own, with
	// go-redis's default options.
	log := &errorLog{}
	subscribe(t, newClient(t, server.Addr), cfgs[0], handler, log.handle)
	subscribe(t, newClient(t, server.Addr), cfgs[1], handler, log.handle)
	evs := make([]pubsub.Event, 2*parts)
	for i := range evs {
		evs[i] = pubsub.NewEvent(context.Background(), "job", []byte(strconv.Itoa(i)))
	}
	if err := pub.Emit(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, ids(evs), 60*time.Second)
	if dups, retried := c.duplicates(); dups != 0 || retried != 0 {
		errs, _ := log.snapshot()
		t.Errorf("%d of %d events handled twice, %d first handled with Attempts > 0 (%d partitions, no fault); ErrorHandler got %d errors, first: %q",
			dups, len(evs), retried, parts, len(errs), firstWith(errs, ""))
	}
}

// Two subscribers configured with the same Consumer name (a
// misconfiguration the Consumer field's doc forbids: "it must be
// unique"): each run's sweep and pending-list read take the other's
// queued and in-flight entries for its own lost replies and claim them
// back, so events are handled twice with no fault at all, and nothing
// reports the clash.
func TestAdversarySameConsumerNameIsDetected(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("samename")
	pub := newPublisher(t, client, stream)
	c := newCounter()
	log := &errorLog{}
	start := func() {
		subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "worker",
			ClaimIdle: 400 * time.Millisecond, BatchSize: 50}, func(_ context.Context, ev pubsub.Event) error {
			time.Sleep(20 * time.Millisecond) // the handler's work
			c.add(ev)
			return nil
		}, log.handle)
	}
	start()
	evs := emitN(t, pub, "job", 100)
	eventually(t, "the first subscriber under way", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.n) >= 5
	})
	start() // a second process deployed with the same name
	c.waitFor(t, ids(evs), 30*time.Second)
	eventually(t, "nothing pending", func() bool { return pendingCount(t, client, stream, "g") == 0 })
	dups, retried := c.duplicates()
	errs, _ := log.snapshot()
	if dups != 0 || retried != 0 {
		t.Errorf("same consumer name twice: %d of %d handled twice, %d first handled with Attempts > 0; ErrorHandler got %d errors %q",
			dups, len(evs), retried, len(errs), firstWith(errs, ""))
	}
}

// Close (and a cancelled Consume) leave no goroutine of the run behind:
// readers, claimer, keeper, mover, workers, acknowledger, retry timers
// and watchdogs, with retries waiting and delayed events pending.
func TestAdversaryNoGoroutineLeftAfterClose(t *testing.T) {
	for _, how := range []string{"Close", "cancel"} {
		t.Run(how, func(t *testing.T) {
			client := newClient(t, server.Addr)
			stream := uniqueName("leak")
			pub := newPublisher(t, client, stream)
			_ = client.Ping(context.Background()).Err()
			before := goleak.IgnoreCurrent()
			s, err := redis.NewSubscriber(context.Background(), client, redis.SubscriberConfig{Streams: []string{stream, stream + "-b"},
				Group: "g", Consumer: "worker", Concurrency: 4, Block: 50 * time.Millisecond,
				Backoff: pubsub.ConstantBackoff(time.Minute), ClaimIdle: 200 * time.Millisecond, HandlerTimeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			var n sync.WaitGroup
			n.Add(20)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.Consume(ctx, func(_ context.Context, ev pubsub.Event) error {
					defer n.Done()
					if ev.Payload[0]%2 == 0 {
						return errors.New("retry in a minute")
					}
					return nil
				}, func(context.Context, error, *pubsub.Event) {})
			}()
			emitN(t, pub, "job", 20)
			if err := pub.EmitAt(context.Background(), time.Now().Add(time.Hour), pubsub.NewEvent(context.Background(), "later", nil)); err != nil {
				t.Fatal(err)
			}
			n.Wait()
			if how == "cancel" {
				cancel()
				<-done
			}
			_ = s.Close()
			<-done
			cancel()
			var leak error
			deadline := time.Now().Add(5 * time.Second)
			for {
				if leak = goleak.Find(before); leak == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond) // bounded polling
			}
			if leak != nil {
				t.Error(leak)
			}
		})
	}
}

// "Poison that kills ...: no innocent entry is dead-lettered for it."
// An entry recovered from a crash runs alone, but its delivery is counted
// (startScript) before its worker waits for the exclusive lock. With
// Concurrency > 1, the other workers count their recovered entries, then
// wait while the poison runs; when the poison kills the process, each of
// them has been charged a delivery it never had. After MaxAttempts such
// crashes they are dead-lettered as "delivered N times without an
// outcome" although no handler ever failed on them.
//
// A crash is simulated without a process: when the poison's handler
// starts, the incarnation's client is closed, so nothing more it does
// reaches Redis (what SIGKILL leaves behind), then its Consume is
// stopped and a new incarnation starts under the same consumer name.
func TestAdversaryCrashingPoisonChargesNoInnocent(t *testing.T) {
	// Which workers count their entries before the poison takes the lock
	// varies from run to run; three independent trials make the outcome
	// stable.
	for trial := range 3 {
		if crashLoopTrial(t, trial) {
			return
		}
	}
}

// crashLoopTrial runs one crash loop; it reports whether innocent events
// were dead-lettered (and then t has failed).
func crashLoopTrial(t *testing.T, trial int) bool {
	admin := newClient(t, server.Addr)
	stream, group := uniqueName("crashloop"), "g"
	makeGroup(t, admin, stream, group)
	pub := newPublisher(t, admin, stream)
	poison := emitN(t, pub, "poison", 1)[0]
	good := emitN(t, pub, "good", 30)
	// The first incarnation read everything and crashed: all pending,
	// delivered once.
	if n := len(takePending(t, admin, stream, group, "worker")); n != 31 {
		t.Fatalf("took %d", n)
	}
	const maxAttempts = 3
	c := newCounter()
	cycles := 0
	for ; cycles < 8; cycles++ {
		if n, _ := admin.XLen(context.Background(), redis.DeadKey(stream)).Result(); n > 0 {
			if p, _ := admin.XPending(context.Background(), stream, group).Result(); p != nil && p.Count == 0 {
				break
			}
		}
		client := goredis.NewClient(&goredis.Options{Addr: server.Addr})
		s, err := redis.NewSubscriber(context.Background(), client, redis.SubscriberConfig{Streams: []string{stream}, Group: group,
			Consumer: "worker", Concurrency: 8, MaxAttempts: maxAttempts, ClaimIdle: time.Second, HandlerTimeout: time.Second,
			Block: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		var crashed sync.Once
		dead := make(chan struct{})
		poisoned := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Consume(ctx, func(_ context.Context, ev pubsub.Event) error {
				select {
				case <-dead:
					return errors.New("this process is dead")
				default:
				}
				if ev.ID == poison.ID {
					time.Sleep(200 * time.Millisecond)                     // the poison works a while before it kills the process
					crashed.Do(func() { _ = client.Close(); close(dead) }) // SIGKILL
					close(poisoned)
					return errors.New("this process is dead")
				}
				c.add(ev)
				return nil
			}, func(context.Context, error, *pubsub.Event) {})
		}()
		select {
		case <-poisoned:
		case <-time.After(3 * time.Second):
			// No crash this time: the poison was dead-lettered, and this
			// incarnation handles the rest.
		}
		cancel()
		<-done
		_ = s.Close()
		_ = client.Close()
	}
	// A last, healthy incarnation finishes whatever is left.
	subscribe(t, newClient(t, server.Addr), redis.SubscriberConfig{Streams: []string{stream}, Group: group,
		Consumer: "worker", Concurrency: 8, MaxAttempts: maxAttempts, Block: 50 * time.Millisecond},
		func(_ context.Context, ev pubsub.Event) error {
			if ev.ID == poison.ID {
				t.Error("the poison reached a handler after the crashes")
				return nil
			}
			c.add(ev)
			return nil
		}, nil)
	eventually(t, "nothing pending", func() bool { return pendingCount(t, admin, stream, group) == 0 })
	dead, _ := admin.XRange(context.Background(), redis.DeadKey(stream), "-", "+").Result()
	innocent := 0
	var reason string
	for _, d := range dead {
		if d.Values["name"] != "poison" {
			innocent++
			reason, _ = d.Values["dead_reason"].(string)
		}
	}
	c.mu.Lock()
	handled := 0
	for _, ev := range good {
		if c.n[ev.ID] > 0 {
			handled++
		}
	}
	c.mu.Unlock()
	t.Logf("trial %d: %d crashes; %d dead letters; %d of %d innocent events handled", trial, cycles, len(dead), handled, len(good))
	if innocent > 0 {
		t.Errorf("%d innocent events dead-lettered for the poison (e.g. %q); %d of %d handled", innocent, reason, handled, len(good))
		return true
	}
	return false
}

// "Every helper key ... tolerates garbage", and at-least-once: an event
// is acknowledged only after its handler returned nil or after it was
// dead-lettered. The dead-letter XADD and the XACK run in one MULTI/EXEC;
// when the dead-letter key holds another type, the XADD fails at EXEC
// time (WRONGTYPE), which does not abort the transaction: the XACK still
// runs. The entry is acknowledged without a dead letter, and the
// ErrorHandler was told it was "left pending". The events were lost.
// Now the dead letter and the acknowledgement are one script that
// acknowledges only a written dead letter, tried again while refused.
func TestAdversaryDeadLetterKeyOfWrongTypeLosesNothing(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("deadwrongtype")
	pub := newPublisher(t, client, stream)
	if err := client.Set(context.Background(), redis.DeadKey(stream), "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	log := &errorLog{}
	var runs sync.Map
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "worker",
		ClaimIdle: 200 * time.Millisecond}, func(_ context.Context, ev pubsub.Event) error {
		runs.Store(ev.ID, true)
		return fmt.Errorf("refused: %w", pubsub.ErrPermanent)
	}, log.handle)
	evs := emitN(t, pub, "doomed", 10)
	eventually(t, "every event handled once", func() bool {
		n := 0
		runs.Range(func(any, any) bool { n++; return true })
		return n == len(evs)
	})
	eventually(t, "ErrorHandler told of every failed dead letter", func() bool {
		errs, _ := log.snapshot()
		return strings.Count(fmt.Sprint(errs), "stays pending") >= len(evs)
	})
	pending := pendingCount(t, client, stream, "g")
	errs, _ := log.snapshot()
	if pending != int64(len(evs)) {
		t.Errorf("%d of %d events neither handled nor dead-lettered nor pending: acknowledged although their dead letter was refused (ErrorHandler: %q)",
			int64(len(evs))-pending, len(evs), firstWith(errs, "stays pending"))
	}
}

// DESIGN, self-healing: "a group deleted or lost (restart without
// persistence) is made again without skipping any event emitted after it
// existed". When the group is lost while its consumer is between
// restarts (a deploy, a crash loop), the events emitted meanwhile are
// skipped: NewSubscriber makes the missing group at "$" (StartNew),
// after them, and nothing reports it.
func TestAdversaryGroupLostWhileConsumerRestartsSkipsNothing(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("lostbetween")
	pub := newPublisher(t, client, stream)
	cfg := redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "worker"}
	s, err := redis.NewSubscriber(context.Background(), client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	emitN(t, pub, "before", 5) // the group existed and had work
	_ = s.Close()              // the consumer restarts (deploy)
	// Meanwhile the group is lost (XGROUP DESTROY here; a restart
	// without persistence or a failover to a stale replica does the
	// same) and the producer goes on.
	if err := client.XGroupDestroy(context.Background(), stream, "g").Err(); err != nil {
		t.Fatal(err)
	}
	after := emitN(t, pub, "after", 5)
	c := newCounter()
	subscribe(t, client, cfg, func(_ context.Context, ev pubsub.Event) error {
		c.add(ev)
		return nil
	}, nil)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		n := len(c.n)
		c.mu.Unlock()
		if n >= len(after) {
			break
		}
		time.Sleep(20 * time.Millisecond) // bounded polling
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	handled := 0
	for _, ev := range after {
		if c.n[ev.ID] > 0 {
			handled++
		}
	}
	if handled != len(after) {
		t.Errorf("%d of %d events emitted after the group was lost were skipped", len(after)-handled, len(after))
	}
}

// A healthy group under a mix of everything that must not produce a
// duplicate: three consumers, Concurrency 4, small batches, two streams
// of two partitions each, handlers slow relative to ClaimIdle, and a
// third of the events failing once with a backoff longer than ClaimIdle.
// Every event is handled exactly once successfully, first with Attempts
// 0, its retry (if any) with Attempts 1, and nothing is dead-lettered.
func TestAdversaryHealthyMixHandlesOnce(t *testing.T) {
	client := newClient(t, server.Addr)
	base := uniqueName("mix")
	streams := []string{base + "-a", base + "-b"}
	var mu sync.Mutex
	runs := map[pubsub.ID][]int{}
	ok := map[pubsub.ID]int{}
	changed := make(chan struct{}, 1)
	handler := func(ctx context.Context, ev pubsub.Event) error {
		mu.Lock()
		runs[ev.ID] = append(runs[ev.ID], ev.Meta.Attempts)
		first := len(runs[ev.ID]) == 1
		mu.Unlock()
		d := time.Duration(ev.Payload[0]%8) * 40 * time.Millisecond // 0..280ms, ClaimIdle is 300ms
		select {
		case <-time.After(d): // the handler's work
		case <-ctx.Done():
			return ctx.Err()
		}
		if first && ev.Payload[0]%3 == 0 {
			return errors.New("transient")
		}
		mu.Lock()
		ok[ev.ID]++
		mu.Unlock()
		select {
		case changed <- struct{}{}:
		default:
		}
		return nil
	}
	log := &errorLog{}
	for i := range 3 {
		subscribe(t, client, redis.SubscriberConfig{Streams: streams, Partitions: 2, Group: "g", Consumer: "worker-" + strconv.Itoa(i),
			Concurrency: 4, BatchSize: 5, ClaimIdle: 300 * time.Millisecond, MaxAttempts: 3,
			Backoff: pubsub.ConstantBackoff(time.Second), HandlerTimeout: 5 * time.Second}, handler, log.handle)
	}
	var all []pubsub.Event
	for _, st := range streams {
		pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: st, Partitions: 2})
		if err != nil {
			t.Fatal(err)
		}
		evs := make([]pubsub.Event, 100)
		for i := range evs {
			evs[i] = pubsub.NewEvent(context.Background(), "job", []byte{byte(i)})
		}
		if err := pub.Emit(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
		all = append(all, evs...)
	}
	deadline := time.After(60 * time.Second)
	for {
		mu.Lock()
		n := len(ok)
		mu.Unlock()
		if n == len(all) {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%d of %d handled after 60s", n, len(all))
		}
	}
	for _, st := range streams {
		for _, p := range redis.PartitionStreams(st, 2) {
			eventually(t, "nothing pending", func() bool { return pendingCount(t, client, p, "g") == 0 })
		}
	}
	mu.Lock()
	defer mu.Unlock()
	bad := 0
	var example string
	for _, ev := range all {
		want := []int{0}
		if ev.Payload[0]%3 == 0 {
			want = []int{0, 1}
		}
		if ok[ev.ID] != 1 || !equalInts(runs[ev.ID], want) {
			bad++
			example = fmt.Sprintf("event %d: runs with Attempts %v, %d successes", ev.Payload[0], runs[ev.ID], ok[ev.ID])
		}
	}
	if bad > 0 {
		errs, _ := log.snapshot()
		t.Errorf("%d of %d events not handled exactly as promised, e.g. %s; ErrorHandler: %d errors, first %q", bad, len(all), example, len(errs), firstWith(errs, ""))
	}
}

// "No stalled consumer": with Concurrency 4, one event whose handler
// hangs (ignores its deadline) must not stop the other three workers. Its
// first run does not; but once abandoned it is claimed back from this
// consumer's pending list, and a claimed entry runs under the exclusive
// lock, so every later run of the hanging handler stops all handling on
// the consumer for HandlerTimeout + grace, MaxAttempts-1 times.
func TestAdversaryHangingHandlerDoesNotStallOthers(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("stall")
	pub := newPublisher(t, client, stream)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := pubsub.NewEvent(context.Background(), "hang", nil)
	var mu sync.Mutex
	var starts []time.Time
	c := newCounter()
	timeout := 400 * time.Millisecond
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "worker", Concurrency: 4,
		MaxAttempts: 3, HandlerTimeout: timeout, ClaimIdle: 400 * time.Millisecond, BatchSize: 10},
		func(_ context.Context, ev pubsub.Event) error {
			if ev.ID == hang.ID {
				<-release // ignores its deadline
				return nil
			}
			mu.Lock()
			starts = append(starts, time.Now())
			mu.Unlock()
			time.Sleep(20 * time.Millisecond) // the handler's work
			c.add(ev)
			return nil
		}, func(context.Context, error, *pubsub.Event) {})
	if err := pub.Emit(context.Background(), hang); err != nil {
		t.Fatal(err)
	}
	evs := emitN(t, pub, "job", 300)
	c.waitFor(t, ids(evs), 60*time.Second)
	mu.Lock()
	defer mu.Unlock()
	var worst time.Duration
	for i := 1; i < len(starts); i++ {
		worst = max(worst, starts[i].Sub(starts[i-1]))
	}
	// 300 events of 20ms on 3 free workers take about 2s; a stall is a
	// gap in which no handler started although events were waiting.
	if worst >= timeout {
		t.Errorf("no handler started for %s while %d events waited (Concurrency 4, one hanging handler); total %s",
			worst.Round(time.Millisecond), len(evs), starts[len(starts)-1].Sub(starts[0]).Round(time.Millisecond))
	}
}

// A handler fails with pubsub.ErrPermanent while redis-server is out of
// memory (maxmemory, noeviction): the dead-letter transaction is refused
// (EXECABORT), so the entry is left pending, which is right. But it is
// then claimed back as if its handler had crashed: the handler runs again
// for an event it refused permanently, the deliveries are counted as
// "without an outcome", and once memory is back the dead letter says
// "delivered N times without an outcome (crash or hang?)" instead of the
// handler's error.
func TestAdversaryDeadLetterRefusedByOOMKeepsReason(t *testing.T) {
	srv, err := redistest.Start(t.TempDir(), "--maxmemory", "8mb", "--maxmemory-policy", "noeviction")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	client := newClient(t, srv.Addr)
	stream := uniqueName("oom")
	pub := newPublisher(t, client, stream)
	gate := make(chan struct{})
	var mu sync.Mutex
	runs := map[pubsub.ID]int{}
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "worker",
		ClaimIdle: 200 * time.Millisecond, MaxAttempts: 3}, func(_ context.Context, ev pubsub.Event) error {
		<-gate
		mu.Lock()
		runs[ev.ID]++
		mu.Unlock()
		return fmt.Errorf("refused for good: %w", pubsub.ErrPermanent)
	}, func(context.Context, error, *pubsub.Event) {})
	ev := emitN(t, pub, "doomed", 1)[0]
	// Fill memory until Redis refuses writes.
	big := strings.Repeat("x", 16<<10)
	for i := 0; ; i++ {
		if i > 4096 {
			t.Fatal("redis-server never refused a write")
		}
		if err := client.Set(context.Background(), "filler:"+strconv.Itoa(i), big, 0).Err(); err != nil {
			if !strings.Contains(err.Error(), "OOM") {
				t.Fatal(err)
			}
			break
		}
	}
	close(gate)
	// Out of memory for a while (3 × ClaimIdle), then memory is back.
	time.Sleep(600 * time.Millisecond) // the length of the memory shortage
	keys, _ := client.Keys(context.Background(), "filler:*").Result()
	if err := client.Del(context.Background(), keys...).Err(); err != nil {
		t.Fatal(err)
	}
	var dead []goredis.XMessage
	eventually(t, "the dead letter", func() bool {
		dead, _ = client.XRange(context.Background(), redis.DeadKey(stream), "-", "+").Result()
		return len(dead) == 1
	})
	mu.Lock()
	n := runs[ev.ID]
	mu.Unlock()
	reason, _ := dead[0].Values["dead_reason"].(string)
	if n != 1 || !strings.Contains(reason, "refused for good") {
		t.Errorf("handler refused the event permanently; it ran %d times, dead_reason %q", n, reason)
	}
}

// freezable starts a redis-server of the test's own and a client of it
// with opts (Addr set here); freeze SIGSTOPs the server (connections stay
// open, nothing answers) and thaw resumes it, as does the test's end.
func freezable(t *testing.T, opts goredis.Options) (client goredis.UniversalClient, freeze, thaw func()) {
	t.Helper()
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	opts.Addr = srv.Addr
	c := goredis.NewClient(&opts)
	t.Cleanup(func() { _ = c.Close() })
	pid := serverPid(t, c)
	var mu sync.Mutex
	stopped := false
	thaw = func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			stopped = false
		}
	}
	t.Cleanup(thaw)
	freeze = func() {
		mu.Lock()
		defer mu.Unlock()
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped = true
	}
	return c, freeze, thaw
}
