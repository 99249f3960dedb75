// Package chaos is the fault-injection suite of the redis backend: each
// scenario starts its own redis-server (internal/redistest), three
// consumer processes (this test binary run again, see TestChaosConsumer)
// and a publisher, breaks something — connections through
// internal/faultproxy, redis-server itself, the consumer group, the
// delayed set, the handlers, the consumer processes — and then checks
// that every event whose Emit returned nil was handled or dead-lettered,
// and that handling never stopped while events were outstanding.
//
// Consumers count in files, not in Redis: each appends a line per handled
// event (ID, Meta.Attempts, pid) with O_APPEND before its handler returns
// nil, so the counts survive SIGKILL and Redis restarts. A duplicate is a
// second line for an ID.
//
// It uses only the public API of package redis. Runs are CI-sized by
// default (the whole suite in about 3 minutes with -race on 2 cores);
// -full runs them larger:
//
//	go test -race -run TestChaos -v ./internal/chaos
//	go test -run TestChaos -timeout 60m -v ./internal/chaos -args -full
//
// Every loop is bounded in count and time, and everything is on
// loopback. The few sleeps are fault lengths (how long Redis stays down,
// how long a consumer stays stopped), pacing of the publisher, or pauses
// in bounded polling loops; none stands in for a synchronisation.
package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/faultproxy"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// full runs the scenarios at their full size (see docs/reliability.md).
var full = flag.Bool("full", false, "run fault and load tests at full size")

// size returns the CI count, or the full one with -full.
func size(ci, large int) int {
	if *full {
		return large
	}
	return ci
}

// quiet drops go-redis's own log lines (dial failures are the point
// here); the suite looks at outcomes, not logs.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	goredis.SetLogger(quiet{})
	os.Exit(m.Run())
}

var (
	rowsMu sync.Mutex
	rows   []string
)

// record keeps a scenario's table row for the suite's table.
func record(row string) {
	rowsMu.Lock()
	rows = append(rows, row)
	rowsMu.Unlock()
}

// TestChaos runs every scenario, one after another (each has its own
// redis-server and consumer processes), and logs their table.
func TestChaos(t *testing.T) {
	if os.Getenv(consumerEnv) != "" {
		return
	}
	t.Cleanup(func() {
		rowsMu.Lock()
		defer rowsMu.Unlock()
		t.Logf("\n%s\n%s", header, strings.Join(rows, "\n"))
	})
	t.Run("a-proxy-faults", proxyFaults)
	t.Run("b-redis-killed-aof", redisKilled)
	t.Run("c-redis-killed-no-persistence", redisKilledNoPersistence)
	t.Run("d-group-destroyed", groupDestroyed)
	t.Run("e-garbage-in-delayed-set", garbageInDelayedSet)
	t.Run("f-poison", poison)
	t.Run("g-consumers-stopped", consumersStopped)
	t.Run("h-healthy", healthy)
}

// proxyFaults (a): consumers and publisher each reach Redis through a
// fault proxy that resets connections at random, adds latency, cuts
// replies in the middle (XREADGROUP batches on the consumers' side, XADD
// pipelines on the publisher's), blackholes traffic and stops listening
// for a while, all under load; then the faults stop and everything must
// settle.
func proxyFaults(t *testing.T) {
	s := newScenario(t, "a. proxy faults under load")
	cp, err := faultproxy.New(s.srv.Addr) // the consumers'
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Close() })
	pp, err := faultproxy.New(s.srv.Addr) // the publisher's
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pp.Close() })

	s.makeGroup()
	s.publishVia(pp.Addr())
	spec := s.spec(cp.Addr())
	s.consume(spec, 3)

	n := size(2000, 100000)
	faultTime := time.Duration(size(6, 60)) * time.Second
	const perRound = 30 // one Emit of 20 events, and 10 single-event Emits at once
	rounds := n / perRound
	pace := faultTime / time.Duration(rounds)

	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for range rounds {
			s.em.emit(s.em.events(20)...)
			s.em.emitSingles(s.em.events(10))
			time.Sleep(pace) // pacing the publisher over the fault window
		}
	}()

	rng := rand.New(rand.NewPCG(7, 11))
	cp.ResetRandomly(1, 200*time.Millisecond, 800*time.Millisecond)
	pp.ResetRandomly(2, 300*time.Millisecond, time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	ticks := int(faultTime / (100 * time.Millisecond))
	cuts := 0
	for i := range ticks {
		<-tick.C
		if i%3 == 0 {
			if conns := cp.Conns(); len(conns) > 0 {
				conns[rng.IntN(len(conns))].CutNextReply(1 + rng.IntN(400))
				cuts++
			}
		}
		if i%4 == 0 {
			if conns := pp.Conns(); len(conns) > 0 {
				conns[rng.IntN(len(conns))].CutNextReply(1 + rng.IntN(120))
				cuts++
			}
		}
		if i%10 == 0 {
			lat := []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond}[rng.IntN(3)]
			cp.SetLatency(lat)
			pp.SetLatency(lat)
		}
		switch i {
		case ticks / 4:
			cp.Blackhole(600 * time.Millisecond)
		case ticks / 2:
			pp.Blackhole(400 * time.Millisecond)
		case 3 * ticks / 4:
			// Redis "down" for the consumers: refused dials, open
			// connections reset, for 300ms.
			cp.StopListening()
			cp.ResetAll()
			time.Sleep(300 * time.Millisecond) // the length of the outage
			if err := cp.StartListening(); err != nil {
				t.Fatal(err)
			}
		}
	}
	tick.Stop()
	cp.StopRandomResets()
	pp.StopRandomResets()
	cp.SetLatency(0)
	pp.SetLatency(0)
	<-emitted
	t.Logf("faults over: %d cuts armed; emitting done", cuts)

	s.report(s.settle(defaultSettle(spec.ClaimIdle)))
}

// redisKilled (b): redis-server is SIGKILLed while events are emitted and
// consumed, and started again on its files; with appendfsync always no
// event whose Emit returned nil may be lost.
func redisKilled(t *testing.T) {
	s := newScenario(t, "b. redis SIGKILL + restart, AOF always", "--appendonly", "yes", "--appendfsync", "always")
	s.makeGroup()
	s.publishVia(s.srv.Addr)
	spec := s.spec(s.srv.Addr)
	s.consume(spec, 3)

	n := size(1500, 100000)
	const perRound = 15
	rounds := n / perRound
	pace := time.Duration(size(4, 60)) * time.Second / time.Duration(rounds)
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for range rounds {
			s.em.emit(s.em.events(10)...)
			s.em.emitSingles(s.em.events(5))
			time.Sleep(pace) // pacing the publisher
		}
	}()

	limit := time.Duration(size(30, 180)) * time.Second
	for deadline := time.Now().Add(limit); s.em.count() < n/3; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d events emitted after %s", s.em.count(), limit)
		}
		time.Sleep(10 * time.Millisecond) // polling the emitter, bounded above
	}
	handledAtKill := s.handledCount()
	s.srv.Kill()
	time.Sleep(500 * time.Millisecond) // the length of the outage
	if err := s.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed redis-server at %d emitted, %d handled; restarted after 500ms", s.em.count(), handledAtKill)
	<-emitted

	s.report(s.settle(defaultSettle(spec.ClaimIdle)))
}

// redisKilledNoPersistence (c): the same without persistence. Redis
// itself loses what it held, so events emitted just before a kill and not
// handled by then are counted apart, as lost by Redis; every other event
// must be handled. Three kills: with the consumers idle on an empty
// stream they have read nothing from, then idle on a stream they had read
// to the end (after each, 100 events are emitted and must be handled),
// and last right after a burst of events.
func redisKilledNoPersistence(t *testing.T) {
	s := newScenario(t, "c. redis SIGKILL + restart, no persistence")
	s.makeGroup()
	s.publishVia(s.srv.Addr)
	spec := s.spec(s.srv.Addr)
	s.consume(spec, 3)
	opts := defaultSettle(spec.ClaimIdle)
	ctx := context.Background()

	restart := func() {
		s.srv.Kill()
		if err := s.srv.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	// after restarts Redis, emits 100 events as a producer would (each
	// batch retried as new events until written) and waits, bounded, for
	// them to be handled.
	after := func(what string) {
		restart()
		before := s.em.count()
		if got := s.em.emitOK(100, 10, 20*time.Second); got != 100 {
			t.Fatalf("emitted %d of 100 events after the restart", got)
		}
		ids, _ := s.em.emitted()
		got := s.waitIDsHandled(ids[before:], opts.stallAfter)
		groups, _ := s.admin.XInfoGroups(ctx, s.stream).Result()
		t.Logf("%s, Redis killed without persistence and restarted, 100 events emitted: %d handled within %v (group now: %+v)", what, got, opts.stallAfter, groups)
	}

	// Phase 1: the consumers idle on the empty stream, in the group.
	for deadline := time.Now().Add(20 * time.Second); ; {
		cs, _ := s.admin.XInfoConsumers(ctx, s.stream, s.group).Result()
		if len(cs) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d consumers in the group after 20s", len(cs))
		}
		time.Sleep(20 * time.Millisecond) // polling Redis, bounded above
	}
	after("consumers idle on an empty stream")

	// Phase 2: events handled to the last; the consumers go idle again,
	// having read entries this time.
	n := size(200, 5000)
	before := s.em.count()
	if got := s.em.emitOK(n, 50, 20*time.Second); got != n {
		t.Fatalf("emitted %d of %d events with Redis up", got, n)
	}
	ids, _ := s.em.emitted()
	if got := s.waitIDsHandled(ids[before:], opts.stallAfter); got != n {
		t.Logf("only %d of %d events handled before the second kill", got, n)
	}
	after("consumers idle after reading the stream to its end")

	// Phase 3: a burst, and the kill right after it: what was not
	// handled yet is Redis's own loss.
	burst := s.em.events(size(100, 2000))
	if !s.em.emit(burst...) {
		t.Fatal("the burst before the last kill failed")
	}
	restart()
	mayLose := map[pubsub.ID]bool{}
	for _, ev := range burst {
		mayLose[ev.ID] = true
	}

	// Phase 4: events after the last restart must all be handled.
	if got := s.em.emitOK(100, 10, 20*time.Second); got != 100 {
		t.Fatalf("emitted %d of 100 events after the last restart", got)
	}
	opts.mayLose = mayLose
	s.report(s.settle(opts))
}

// groupDestroyed (d): the consumer group is destroyed (XGROUP DESTROY)
// twice while events are being handled, with handlers failing 30% of the
// time (MaxAttempts high enough that nothing should be dead-lettered):
// entries in hand and waiting to retry must not be lost.
func groupDestroyed(t *testing.T) {
	s := newScenario(t, "d. XGROUP DESTROY mid-run, 30% handler failures")
	s.makeGroup()
	s.publishVia(s.srv.Addr)
	spec := s.spec(s.srv.Addr)
	spec.FailRate, spec.MaxAttempts, spec.Backoff = 0.3, 30, 50*time.Millisecond
	s.consume(spec, 3)

	n := size(600, 20000)
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		rounds := n / 20
		pace := time.Duration(size(3, 40)) * time.Second / time.Duration(rounds)
		for range rounds {
			s.em.emit(s.em.events(20)...)
			time.Sleep(pace) // pacing the publisher
		}
	}()
	ctx := context.Background()
	for _, at := range []int{n / 4, n / 2} {
		if !s.waitHandled(at, 30*time.Second) {
			t.Logf("only %d events handled, waiting for %d; destroying the group anyway", s.handledCount(), at)
		}
		pending, _ := s.pending(ctx)
		if err := s.admin.XGroupDestroy(ctx, s.stream, s.group).Err(); err != nil {
			t.Fatal(err)
		}
		t.Logf("group destroyed at %d handled, %d entries pending", s.handledCount(), pending)
	}
	<-emitted

	o := s.settle(defaultSettle(spec.ClaimIdle))
	s.report(o)
	if o.dead > 0 {
		t.Logf("note: %d events dead-lettered although MaxAttempts is %d", o.dead, spec.MaxAttempts)
	}
}

// garbageInDelayedSet (e): members that are not delayed events sit in
// the delayed set among real ones (Publisher.EmitAt): every delayed event
// must be handled, and the garbage dead-lettered.
func garbageInDelayedSet(t *testing.T) {
	s := newScenario(t, "e. garbage in the delayed set")
	s.makeGroup()
	s.publishVia(s.srv.Addr)
	spec := s.spec(s.srv.Addr)
	s.consume(spec, 3)
	ctx := context.Background()

	garbage := []string{
		"garbage",                 // no netstring at all
		"abc:def,",                // a length that is not a number
		"5:ab",                    // cut short
		"4:name,",                 // a field without its value
		"\xff\xfe\x00\x01",        // binary junk
		"2:id,3:xyz,4:name,",      // an odd number of fields
		"99999999999999999999:x,", // a length past the member
	}
	start := time.Now()
	batches := size(10, 100)
	per := size(15, 50)
	for i := range batches {
		at := start.Add(300*time.Millisecond + time.Duration(i)*150*time.Millisecond)
		if !s.em.emitAt(at, s.em.events(per)...) {
			t.Fatalf("EmitAt batch %d failed", i)
		}
		if i < len(garbage) {
			// Due just before this batch, so that it stands in front.
			score := float64(at.Add(-10 * time.Millisecond).UnixMilli())
			if err := s.admin.ZAdd(ctx, redis.DelayedKey(s.stream), goredis.Z{Score: score, Member: garbage[i]}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := s.em.emitOK(size(50, 1000), 25, 10*time.Second); got != size(50, 1000) {
		t.Fatalf("emitted %d immediate events", got)
	}

	o := s.settle(defaultSettle(spec.ClaimIdle))
	left, _ := s.admin.ZCard(ctx, redis.DelayedKey(s.stream)).Result()
	s.report(o)
	t.Logf("delayed set holds %d members at the end; %d dead letters for no emitted event (garbage members: %d)", left, o.deadOthers, len(garbage))
	if o.deadOthers < len(garbage) {
		t.Errorf("%d of %d garbage members dead-lettered", o.deadOthers, len(garbage))
	}
}

// poison (f): one event's handler ends the process (os.Exit(3); the
// supervisor starts it again under its name), another's blocks forever
// ignoring its context. With MaxAttempts 3 and a short HandlerTimeout,
// both must be dead-lettered, every other event handled, and handling
// must never stall.
func poison(t *testing.T) {
	s := newScenario(t, "f. poison: os.Exit and a hung handler")
	s.makeGroup()
	s.publishVia(s.srv.Addr)
	spec := s.spec(s.srv.Addr)
	spec.MaxAttempts, spec.HandlerTimeout = 3, 300*time.Millisecond
	spec.Concurrency, spec.BatchSize, spec.HandleTime = 2, 20, 2*time.Millisecond
	s.consume(spec, 3)

	n := size(200, 5000)
	exit := pubsub.NewEvent(context.Background(), "chaos", []byte(payloadExit))
	hang := pubsub.NewEvent(context.Background(), "chaos", []byte(payloadHang))
	for i := 0; i < n; i += 20 {
		evs := s.em.events(20)
		switch i {
		case n / 4 / 20 * 20:
			evs = append(evs, exit)
		case n / 2 / 20 * 20:
			evs = append(evs, hang)
		}
		if !s.em.emit(evs...) {
			t.Fatalf("Emit of batch %d failed", i/20)
		}
	}

	o := s.settle(defaultSettle(spec.ClaimIdle))
	s.report(o)
	d, err := readDead(context.Background(), s.admin, s.stream)
	if err != nil {
		t.Fatal(err)
	}
	for what, id := range map[string]pubsub.ID{"the event whose handler exits": exit.ID, "the event whose handler hangs": hang.ID} {
		if !d.ids[id] {
			t.Errorf("%s (%s) is not dead-lettered", what, id)
		}
	}
	// Entries recovered after a crash run alone, so no innocent event
	// is charged for the poison's crashes.
	if o.dead != 2 {
		t.Errorf("%d entries dead-lettered, want only the 2 poison events", o.dead)
	}
}

// consumersStopped (g): two of the three consumers are SIGSTOPped with
// entries in hand for longer than ClaimIdle, then SIGCONTed: the third
// takes their entries over, nothing is lost, and the duplicates this
// must cause are counted.
func consumersStopped(t *testing.T) {
	s := newScenario(t, "g. consumers SIGSTOPped past ClaimIdle")
	s.makeGroup()
	s.publishVia(s.srv.Addr)
	spec := s.spec(s.srv.Addr)
	spec.HandleTime = 10 * time.Millisecond
	s.consume(spec, 3)

	n := size(1500, 50000)
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		rounds := n / 25
		pace := time.Duration(size(4, 60)) * time.Second / time.Duration(rounds)
		for range rounds {
			s.em.emit(s.em.events(25)...)
			time.Sleep(pace) // pacing the publisher
		}
	}()
	if !s.waitHandled(n/4, 30*time.Second) {
		t.Logf("only %d events handled before the stop", s.handledCount())
	}
	// A burst, so that the consumers hold entries (read, in hand) when
	// they are stopped.
	s.em.emit(s.em.events(150)...)
	held := func(name string) int {
		p, _ := s.admin.XPendingExt(context.Background(), &goredis.XPendingExtArgs{
			Stream: s.stream, Group: s.group, Start: "-", End: "+", Count: 1000, Consumer: name,
		}).Result()
		return len(p)
	}
	for deadline := time.Now().Add(5 * time.Second); held("consumer-0") == 0 || held("consumer-1") == 0; {
		if time.Now().After(deadline) {
			t.Log("consumer-0 or consumer-1 holds no entry; stopping them anyway")
			break
		}
		time.Sleep(time.Millisecond) // polling Redis, bounded above
	}
	s.fleet.signal("consumer-0", syscall.SIGSTOP)
	s.fleet.signal("consumer-1", syscall.SIGSTOP)
	pending := fmt.Sprintf("consumer-0 %d, consumer-1 %d", held("consumer-0"), held("consumer-1"))
	stopped := spec.ClaimIdle*5/2 + spec.ClaimInterval
	time.Sleep(stopped) // the length of the stop
	s.fleet.signal("consumer-0", syscall.SIGCONT)
	s.fleet.signal("consumer-1", syscall.SIGCONT)
	t.Logf("consumer-0 and consumer-1 stopped for %v (ClaimIdle %v), holding pending entries: %s", stopped, spec.ClaimIdle, pending)
	<-emitted

	s.report(s.settle(defaultSettle(spec.ClaimIdle)))
}

// healthy (h): no fault at all; two consumers with handlers of about
// 20ms, ClaimIdle ten times that, the default BatchSize and Concurrency,
// a backlog emitted at once. No event may be handled twice, and none
// with Meta.Attempts above 0.
func healthy(t *testing.T) {
	s := newScenario(t, "h. healthy (no fault)")
	s.makeGroup()
	s.publishVia(s.srv.Addr)
	spec := s.spec(s.srv.Addr)
	spec.HandleTime = 20 * time.Millisecond
	spec.ClaimIdle, spec.ClaimInterval = 10*spec.HandleTime, 0
	spec.BatchSize, spec.Concurrency, spec.MaxAttempts, spec.Backoff = 0, 0, 0, 0
	s.consume(spec, 2)

	n := size(200, 2000)
	if got := s.em.emitOK(n, 50, 10*time.Second); got != n {
		t.Fatalf("emitted %d of %d events", got, n)
	}
	opts := defaultSettle(time.Second)
	o := s.settle(opts)
	s.report(o)
	if o.duplicates > 0 {
		t.Errorf("%d duplicate handlings without any fault", o.duplicates)
	}
	if o.retried > 0 {
		t.Errorf("%d handlings with Meta.Attempts > 0 without any fault", o.retried)
	}
}
