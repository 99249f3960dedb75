package redis_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// The tests in this file attack, from outside and with real redis-server
// processes, the single-reader multi-stream read, the consumer-name
// lease, the group position key, the dead-letter script and the stop
// path. Each one fails while the defect it names is present.

// emitTo writes n events of name straight into stream (one partition).
func emitTo(t *testing.T, client goredis.UniversalClient, stream, name string, n int) []pubsub.Event {
	t.Helper()
	return emitN(t, newPublisher(t, client, stream), name, n)
}

// handledCount is how many distinct events c has seen among want.
func handledCount(c *counter, want []pubsub.ID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, id := range want {
		if c.n[id] > 0 {
			n++
		}
	}
	return n
}

// waitHandled polls until every id was handled or d passed, and returns
// how many were.
func waitHandled(c *counter, want []pubsub.ID, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		n := handledCount(c, want)
		if n == len(want) || time.Now().After(deadline) {
			return n
		}
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond): // bounded polling
		}
	}
}

// "Nothing stalls" / self-healing, on one server: one partition whose
// key was replaced by a key of another type (an operator's mistake, a
// colliding key written by another application) must not stop the other
// partitions. Every partition is read by one multi-stream XREADGROUP,
// which Redis refuses whole with WRONGTYPE, and the reader then insists
// on re-reading each pending list in turn, failing at the bad one and
// starting over: no partition is read again. On a Cluster, where each
// stream has a reader of its own, the same fault stalls only that one.
func TestAdversary2WrongTypePartitionStallsNoOther(t *testing.T) {
	for _, fault := range []string{"string", "list"} {
		t.Run(fault, func(t *testing.T) {
			client := newClient(t, server.Addr)
			stream := uniqueName("wrongpart")
			const parts = 4
			c := newCounter()
			log := &errorLog{}
			subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Partitions: parts, Group: "g",
				Consumer: "worker", Concurrency: 2, ClaimIdle: 2 * time.Second},
				func(_ context.Context, ev pubsub.Event) error { c.add(ev); return nil }, log.handle)
			first := emitTo(t, client, stream+":0", "warmup", 3)
			c.waitFor(t, ids(first), wait)

			bad := stream + ":2"
			ctx := context.Background()
			if err := client.Del(ctx, bad).Err(); err != nil {
				t.Fatal(err)
			}
			var err error
			if fault == "string" {
				err = client.Set(ctx, bad, "not a stream", 0).Err()
			} else {
				err = client.RPush(ctx, bad, "not", "a", "stream").Err()
			}
			if err != nil {
				t.Fatal(err)
			}
			var want []pubsub.ID
			for _, p := range []int{0, 1, 3} {
				want = append(want, ids(emitTo(t, client, stream+":"+strconv.Itoa(p), "job", 10))...)
			}
			got := waitHandled(c, want, 10*time.Second)
			if got != len(want) {
				errs, _ := log.snapshot()
				t.Errorf("partition %s holds a %s: %d of %d events of the three healthy partitions handled within 10s; ErrorHandler got %d errors, first: %q",
					bad, fault, got, len(want), len(errs), firstWith(errs, "WRONGTYPE"))
			}
		})
	}
}

// Self-healing, held: one partition's key deleted (DEL, which takes its
// group with it) or its group destroyed while the single reader blocks
// on every partition; the group is made again there, and events on every
// partition, the damaged one included, are handled once.
func TestAdversary2OnePartitionDamagedWhileBlocked(t *testing.T) {
	for _, fault := range []string{"DEL", "XGROUP DESTROY"} {
		t.Run(fault, func(t *testing.T) {
			client := newClient(t, server.Addr)
			stream := uniqueName("dampart")
			const parts = 4
			c := newCounter()
			subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Partitions: parts, Group: "g",
				Consumer: "worker", Block: 500 * time.Millisecond, ClaimIdle: 2 * time.Second},
				func(_ context.Context, ev pubsub.Event) error { c.add(ev); return nil }, nil)
			warm := emitTo(t, client, stream+":1", "warmup", 2)
			c.waitFor(t, ids(warm), wait)
			ctx := context.Background()
			bad := stream + ":1"
			var err error
			if fault == "DEL" {
				err = client.Del(ctx, bad).Err()
			} else {
				err = client.XGroupDestroy(ctx, bad, "g").Err()
			}
			if err != nil {
				t.Fatal(err)
			}
			var want []pubsub.ID
			for p := range parts {
				want = append(want, ids(emitTo(t, client, stream+":"+strconv.Itoa(p), "job", 5))...)
			}
			c.waitFor(t, want, 15*time.Second)
			if dups, retried := c.duplicates(); dups != 0 || retried != 0 {
				t.Errorf("%d duplicates, %d first handled with Attempts > 0", dups, retried)
			}
		})
	}
}

// "Helper keys bounded and garbage-tolerant": the group position key
// "{s}:group:<g>:delivered" holding something that is not an entry ID,
// or a key of another type, makes NewSubscriber fail for good, even
// though the group exists and the key is not needed: createGroup reads
// it and passes its value to XGROUP CREATE, which checks the ID before
// it finds the group exists. A restarting service cannot come back up.
func TestAdversary2GarbagePositionKeyDoesNotBlockStart(t *testing.T) {
	for _, garbage := range []string{"not-an-id", "wrong type", "empty string"} {
		t.Run(garbage, func(t *testing.T) {
			client := newClient(t, server.Addr)
			stream := uniqueName("garbagepos")
			ctx := context.Background()
			cfg := redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "worker"}
			s, err := redis.NewSubscriber(ctx, client, cfg) // the group exists from here on
			if err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
			key := redis.HelperKey(stream, "group:g:delivered")
			if err := client.Del(ctx, key).Err(); err != nil {
				t.Fatal(err)
			}
			switch garbage {
			case "not-an-id":
				err = client.Set(ctx, key, "yesterday", 0).Err()
			case "wrong type":
				err = client.HSet(ctx, key, "f", "v").Err()
			case "empty string":
				err = client.Set(ctx, key, "", 0).Err()
			}
			if err != nil {
				t.Fatal(err)
			}
			s, err = redis.NewSubscriber(ctx, client, cfg)
			if err != nil {
				t.Errorf("NewSubscriber with the group in place and a garbage position key (%s): %v", garbage, err)
				return
			}
			_ = s.Close()
		})
	}
}

// At-least-once against a garbage position key: a position far in the
// future (a value written by hand, or copied from another stream) while
// the group is missing makes NewSubscriber create the group past every
// entry the publisher will write for years; no event is ever handled and
// nothing is reported. A position beyond the stream's last entry cannot
// be one the group delivered.
func TestAdversary2FuturePositionKeySkipsNothing(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("futurepos")
	ctx := context.Background()
	pub := newPublisher(t, client, stream)
	emitN(t, pub, "before", 3)
	key := redis.HelperKey(stream, "group:g:delivered")
	if err := client.Set(ctx, key, "99999999999999-0", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c := newCounter()
	log := &errorLog{}
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "worker"},
		func(_ context.Context, ev pubsub.Event) error { c.add(ev); return nil }, log.handle)
	evs := emitN(t, pub, "after", 10)
	got := waitHandled(c, ids(evs), 5*time.Second)
	if got != len(evs) {
		errs, _ := log.snapshot()
		t.Errorf("position key beyond the stream's end: %d of %d events emitted after the subscriber started were handled; ErrorHandler got %d errors",
			got, len(evs), len(errs))
	}
}

// "Helper keys garbage-tolerant" and "nothing stalls": the lease on the
// consumer name is a plain string with an expiry. A lease key without
// an expiry (written by hand, restored by a tool that drops TTLs) or of
// another type is never taken over: Consume waits for it for ever,
// reporting that another subscriber holds the name, and handles nothing.
func TestAdversary2GarbageLeaseDoesNotStallForever(t *testing.T) {
	for _, garbage := range []string{"string without expiry", "wrong type"} {
		t.Run(garbage, func(t *testing.T) {
			client := newClient(t, server.Addr)
			stream := uniqueName("garbagelease")
			ctx := context.Background()
			key := redis.HelperKey(stream, "consumer:g:worker")
			var err error
			if garbage == "wrong type" {
				err = client.SAdd(ctx, key, "x").Err()
			} else {
				err = client.Set(ctx, key, "left over", 0).Err()
			}
			if err != nil {
				t.Fatal(err)
			}
			c := newCounter()
			log := &errorLog{}
			claimIdle := 400 * time.Millisecond // the lease lapses min(ClaimIdle, 10s) after its holder stops
			subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "worker", ClaimIdle: claimIdle},
				func(_ context.Context, ev pubsub.Event) error { c.add(ev); return nil }, log.handle)
			evs := emitN(t, newPublisher(t, client, stream), "job", 5)
			bound := 10 * claimIdle
			got := waitHandled(c, ids(evs), bound)
			if got != len(evs) {
				errs, _ := log.snapshot()
				t.Errorf("lease key %q is a %s: %d of %d events handled within %s (10×ClaimIdle); ErrorHandler got %d errors, first: %q",
					key, garbage, got, len(evs), bound, len(errs), firstWith(errs, ""))
			}
		})
	}
}

// "Once the run is stopping it starts no handler: what is still queued
// stays pending for the next start." A worker that took its job before
// the stop but waits for the run's exclusive lock (held by a claimed
// entry, which runs alone) starts its handler after Consume's context
// was cancelled: handle() does not look at the run again once it has the
// lock, and for a claimed entry start() runs on the cancelled context,
// fails at once, and takes the failure for "unknown: hand it out".
func TestAdversary2NoHandlerStartsAfterStop(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("lateStart")
	makeGroup(t, client, stream, "g")
	emitN(t, newPublisher(t, client, stream), "job", 2)
	takePending(t, client, stream, "g", "worker") // a crashed process under this name left both pending

	var started, late atomic.Int32
	firstIn := make(chan struct{})
	release := make(chan struct{})
	s, err := redis.NewSubscriber(context.Background(), client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g",
		Consumer: "worker", Concurrency: 2, Block: 50 * time.Millisecond, ClaimIdle: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Consume(ctx, func(hctx context.Context, ev pubsub.Event) error {
			if hctx.Err() != nil {
				late.Add(1)
			}
			if started.Add(1) == 1 {
				close(firstIn)
				<-release
			}
			return nil
		}, func(context.Context, error, *pubsub.Event) {})
	}()
	select {
	case <-firstIn:
	case <-time.After(wait):
		t.Fatal("no handler started")
	}
	// The second entry's worker has taken it and waits for the lock
	// (both were handed out together from the pending list).
	eventually(t, "both entries in hand", func() bool {
		p, err := client.XPendingExt(context.Background(), &goredis.XPendingExtArgs{Stream: stream, Group: "g", Start: "-", End: "+", Count: 10}).Result()
		return err == nil && len(p) == 2
	})
	cancel()
	close(release)
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Consume did not return")
	}
	if n := late.Load(); n != 0 {
		t.Errorf("%d handler(s) started after Consume's context was cancelled (started %d in all); the entry should have stayed pending for the next start",
			n, started.Load())
	}
}

// A Consume cancelled while it takes the lease on its consumer name, on
// a Redis that is slow to answer (a stall longer than Block+1s: a fork,
// a long script, a paused VM), returns without waiting for the lease
// command (run.wait bounds the loops, and the lease goroutine counts as
// one), and leases nothing it knows of. When the reply comes, the
// goroutine takes the lease anyway, starts the run's loops after
// Consume returned, and nobody releases the lease: a clean restart under
// the same name then waits min(ClaimIdle, 10s), what the doc promises
// only after a crash.
func TestAdversary2CancelledDuringLeaseLeavesNoLease(t *testing.T) {
	client, freeze, thaw := freezable(t, goredis.Options{MaxRetries: -1}) // ReadTimeout 3s
	stream := uniqueName("leasestall")
	ctx := context.Background()
	cfg := redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "worker", Block: 50 * time.Millisecond}
	s, err := redis.NewSubscriber(ctx, client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	key := redis.HelperKey(stream, "consumer:g:worker")
	{ // an earlier, clean run (the server has the lease script cached from then on)
		c0, cancel0 := context.WithCancel(ctx)
		done0 := make(chan struct{})
		go func() {
			defer close(done0)
			s.Consume(c0, func(context.Context, pubsub.Event) error { return nil }, nil)
		}()
		eventually(t, "the first run leased its name", func() bool { return client.Exists(ctx, key).Val() == 1 })
		cancel0()
		<-done0
		if n := client.Exists(ctx, key).Val(); n != 0 {
			t.Fatalf("a clean stop left the lease behind")
		}
	}
	freeze()
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var after atomic.Int32
	var returned atomic.Bool
	go func() {
		defer close(done)
		s.Consume(cctx, func(context.Context, pubsub.Event) error { return nil }, func(context.Context, error, *pubsub.Event) {
			if returned.Load() {
				after.Add(1)
			}
		})
		returned.Store(true)
	}()
	// Stopped while the lease command waits for the stalled server.
	time.Sleep(200 * time.Millisecond) // fault schedule, not synchronisation
	cancel()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Consume did not return")
	}
	thaw() // the stall ends before the client's ReadTimeout
	_ = s.Close()
	// What a clean restart under the same name meets: the late lease
	// command may take the lease, but the stopped run drops it at once.
	s2, err := redis.NewSubscriber(ctx, client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := newCounter()
	c2, cancel2 := context.WithCancel(ctx)
	done2 := make(chan struct{})
	go func() {
		defer close(done2)
		s2.Consume(c2, func(_ context.Context, ev pubsub.Event) error { c.add(ev); return nil }, nil)
	}()
	start := time.Now()
	evs := emitN(t, newPublisher(t, client, stream), "job", 1)
	c.waitFor(t, ids(evs), 15*time.Second)
	took := time.Since(start)
	cancel2()
	<-done2
	_ = s2.Close()
	if took > 5*time.Second {
		t.Errorf("Consume cancelled during a Redis stall left its lease %q behind: a clean restart under the same name handled its first event only after %s",
			key, took.Round(100*time.Millisecond))
	}
	if n := after.Load(); n > 0 {
		t.Errorf("ErrorHandler called %d time(s) after Consume returned", n)
	}
}

// A Ring of two servers: each stream has a reader of its own (streams on
// different shards cannot be read by one XREADGROUP); partitions spread
// over the shards are consumed whole, once, by two consumers.
func TestAdversary2RingPartitionsHandledOnce(t *testing.T) {
	addrs := map[string]string{}
	for i := range 2 {
		srv, err := redistest.Start(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Kill)
		addrs["shard"+strconv.Itoa(i)] = srv.Addr
	}
	ring := goredis.NewRing(&goredis.RingOptions{Addrs: addrs})
	t.Cleanup(func() { _ = ring.Close() })
	stream := uniqueName("ring")
	const parts = 6
	pub, err := redis.NewPublisher(ring, redis.PublisherConfig{Stream: stream, Partitions: parts})
	if err != nil {
		t.Fatal(err)
	}
	c := newCounter()
	for i := range 2 {
		subscribe(t, ring, redis.SubscriberConfig{Streams: []string{stream}, Partitions: parts, Group: "g",
			Consumer: "c" + strconv.Itoa(i), Concurrency: 2, ClaimIdle: time.Second},
			func(_ context.Context, ev pubsub.Event) error { c.add(ev); return nil }, nil)
	}
	evs := make([]pubsub.Event, 200)
	for i := range evs {
		evs[i] = pubsub.NewEvent(context.Background(), "job", []byte(strconv.Itoa(i)))
	}
	if err := pub.Emit(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, ids(evs), 20*time.Second)
	if dups, retried := c.duplicates(); dups != 0 || retried != 0 {
		t.Errorf("Ring: %d duplicates, %d first handled with Attempts > 0", dups, retried)
	}
}

// pubsub.ErrorHandler is Consume's: "Errors it handled itself go to eh".
// A dead letter refused by Redis is retried by a background goroutine
// that Consume waits for only one second. Against a Redis that stops
// answering while an acknowledgement is in flight (so the run skips
// releasing its lease and returns as soon as that flush fails), a retry
// sent just before the stop ends with the client's ReadTimeout after
// Consume has returned, and then calls the ErrorHandler, which the
// caller may have torn down.
func TestAdversary2NoErrorHandlerCallAfterConsumeReturned(t *testing.T) {
	client, freeze, thaw := freezable(t, goredis.Options{MaxRetries: -1}) // ReadTimeout 3s
	stream := uniqueName("ehafter")
	ctx := context.Background()
	if err := client.Set(ctx, redis.DeadKey(stream), "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, client, stream)
	s, err := redis.NewSubscriber(ctx, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Consumer: "worker",
		Concurrency: 2, Block: 50 * time.Millisecond, ClaimIdle: 10 * time.Second, HandlerTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var returned atomic.Bool
	var after atomic.Int32
	var firstAfter atomic.Value
	refused := make(chan struct{}, 1)
	slowIn := make(chan struct{})
	slowGo := make(chan struct{})
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Consume(cctx, func(_ context.Context, ev pubsub.Event) error {
			if ev.Name == "slow" {
				close(slowIn)
				<-slowGo
				return nil
			}
			return fmt.Errorf("bad: %w", pubsub.ErrPermanent)
		}, func(_ context.Context, err error, _ *pubsub.Event) {
			if returned.Load() {
				if after.Add(1) == 1 {
					firstAfter.Store(err.Error())
				}
			}
			if strings.Contains(err.Error(), "dead-lettering") {
				select {
				case refused <- struct{}{}:
				default:
				}
			}
		})
		returned.Store(true)
	}()
	emitN(t, pub, "slow", 1)
	<-slowIn
	emitN(t, pub, "doomed", 1)
	select {
	case <-refused: // try 1 refused; try 2 follows in 400ms
	case <-time.After(wait):
		t.Fatal("the dead letter was never refused")
	}
	freeze()
	close(slowGo) // its acknowledgement now waits for the silent server
	// Stop after the dead letter's next try went out into the silent server.
	time.Sleep(600 * time.Millisecond) // fault schedule, not synchronisation
	cancelAt := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Consume did not return")
	}
	t.Logf("Consume returned %s after its context was cancelled", time.Since(cancelAt).Round(time.Millisecond))
	deadline := time.Now().Add(5 * time.Second) // past the client's ReadTimeout
	for after.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // bounded polling
	}
	thaw()
	if n := after.Load(); n > 0 {
		t.Errorf("ErrorHandler called %d time(s) after Consume returned; first: %q", n, firstAfter.Load())
	}
}

// At-least-once when partitions are added: the publishers are deployed
// with 8 partitions before the subscribers (which had 4) learn of it, a
// usual rolling order. Events written meanwhile to the new partitions
// "{s}:4".."{s}:7" are never handled: the restarted subscriber makes its
// group there at "$" (StartNew), after them, although the group already
// exists on the topic's other partitions and so is not new to the topic.
func TestAdversary2AddedPartitionsSkipNothing(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("addparts")
	ctx := context.Background()
	cfg := redis.SubscriberConfig{Streams: []string{stream}, Partitions: 4, Group: "g", Consumer: "worker"}
	s, err := redis.NewSubscriber(ctx, client, cfg) // the group, on 4 partitions
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream, Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	evs := make([]pubsub.Event, 80)
	for i := range evs {
		evs[i] = pubsub.NewEvent(ctx, "job", []byte(strconv.Itoa(i)))
	}
	if err := pub.Emit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	cfg.Partitions = 8 // the subscribers are redeployed
	c := newCounter()
	subscribe(t, client, cfg, func(_ context.Context, ev pubsub.Event) error { c.add(ev); return nil }, nil)
	got := waitHandled(c, ids(evs), 5*time.Second)
	if got != len(evs) {
		onNew := int64(0)
		for p := 4; p < 8; p++ {
			onNew += client.XLen(ctx, stream+":"+strconv.Itoa(p)).Val()
		}
		t.Errorf("partitions 4→8: %d of %d events handled; %d had been written to the new partitions before the subscriber knew them",
			got, len(evs), onNew)
	}
}
