package redis_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/faultproxy"
	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
	"github.com/switchyard-go/switchyard/redis"
)

// The tests in this file each reproduce a way that an earlier version of
// the subscriber lost, duplicated or stalled events under hostile
// conditions.

// counter counts handlings per event ID, and the highest Attempts seen.
type counter struct {
	mu       sync.Mutex
	n        map[pubsub.ID]int
	attempts map[pubsub.ID]int // Attempts on first handling
	changed  chan struct{}
}

func newCounter() *counter {
	return &counter{n: map[pubsub.ID]int{}, attempts: map[pubsub.ID]int{}, changed: make(chan struct{})}
}

func (c *counter) add(ev pubsub.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.n[ev.ID]; !ok {
		c.attempts[ev.ID] = ev.Meta.Attempts
	}
	c.n[ev.ID]++
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitFor waits until every id has been handled; it fails t after d.
func (c *counter) waitFor(t *testing.T, ids []pubsub.ID, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		c.mu.Lock()
		missing := 0
		for _, id := range ids {
			if c.n[id] == 0 {
				missing++
			}
		}
		ch := c.changed
		c.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("%d of %d events not handled after %s", missing, len(ids), d)
		}
	}
}

// duplicates returns how many handlings went beyond the first, and how
// many events were first handled with Attempts above 0.
func (c *counter) duplicates() (dups, retried int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range c.n {
		dups += n - 1
		if c.attempts[id] > 0 {
			retried++
		}
	}
	return dups, retried
}

func ids(evs []pubsub.Event) []pubsub.ID {
	out := make([]pubsub.ID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// privateServer starts a redis-server of the test's own, without
// persistence (for tests that kill it), and a client that redials fast.
func privateServer(t *testing.T) (*redistest.Server, goredis.UniversalClient) {
	t.Helper()
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = client.Close() })
	return srv, client
}

// Defect: a consumer idle on an empty stream, redis-server killed with no
// persistence and started again, then events emitted: the group was made
// again at "$", after them, and none was handled.
func TestRestartWithoutPersistenceSkipsNothing(t *testing.T) {
	srv, client := privateServer(t)
	stream := uniqueName("amnesia")
	pub := newPublisher(t, client, stream)
	c := newCounter()
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g"}, func(_ context.Context, ev pubsub.Event) error {
		c.add(ev)
		return nil
	}, nil)
	eventually(t, "the consumer to wait in XREADGROUP", func() bool {
		list, err := client.ClientList(context.Background()).Result()
		return err == nil && strings.Contains(list, "cmd=xreadgroup")
	})

	srv.Kill()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	var evs []pubsub.Event
	for i := range 100 {
		ev := pubsub.NewEvent(context.Background(), "after", []byte(strconv.Itoa(i)))
		deadline := time.Now().Add(10 * time.Second)
		for pub.Emit(context.Background(), ev) != nil {
			if time.Now().After(deadline) {
				t.Fatal("Emit still failing 10s after the restart")
			}
			time.Sleep(10 * time.Millisecond) // a producer's retry pause
		}
		evs = append(evs, ev)
	}
	c.waitFor(t, ids(evs), 20*time.Second)
}

// Defect: an event whose handler kills the process was never
// dead-lettered: each restart read its own pending list first and died
// again, and nothing after it was handled. Here the crashes are what they
// leave behind: the entry pending with the consumer, delivered
// MaxAttempts times.
func TestPoisonThatCrashesIsDeadLettered(t *testing.T) {
	for _, how := range []string{"own pending list", "taken over"} {
		t.Run(how, func(t *testing.T) {
			client := newClient(t, server.Addr)
			stream, group := uniqueName("crash"), "g"
			makeGroup(t, client, stream, group)
			pub := newPublisher(t, client, stream)
			poison := emitN(t, pub, "poison", 1)[0]
			crashed := "worker"
			if how == "taken over" {
				crashed = "dead-worker"
			}
			id := takePending(t, client, stream, group, crashed)[0]
			for range 2 { // two more crashed deliveries: 3 in all
				if err := client.XClaim(context.Background(), &goredis.XClaimArgs{Stream: stream, Group: group, Consumer: crashed, Messages: []string{id}}).Err(); err != nil {
					t.Fatal(err)
				}
			}
			good := emitN(t, pub, "good", 20)

			c := newCounter()
			log := &errorLog{}
			subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: group, Consumer: "worker", MaxAttempts: 3,
				ClaimIdle: 50 * time.Millisecond, ClaimInterval: 20 * time.Millisecond}, func(_ context.Context, ev pubsub.Event) error {
				c.add(ev)
				return nil
			}, log.handle)
			c.waitFor(t, ids(good), wait)
			var dead []goredis.XMessage
			eventually(t, "the poison in the dead-letter stream", func() bool {
				dead, _ = client.XRange(context.Background(), redis.DeadKey(stream), "-", "+").Result()
				return len(dead) == 1
			})
			if reason, _ := dead[0].Values["dead_reason"].(string); !strings.Contains(reason, "delivered 4 times without an outcome (crash or hang?)") {
				t.Errorf("dead_reason %q", reason)
			}
			if n := c.n[poison.ID]; n != 0 {
				t.Errorf("the poison reached a handler %d times after MaxAttempts deliveries", n)
			}
			eventually(t, "nothing pending", func() bool { return pendingCount(t, client, stream, group) == 0 })
			errs, evs := log.snapshot()
			found := false
			for i, err := range errs {
				found = found || (errors.Is(err, pubsub.ErrDeadLetter) && evs[i] != nil && evs[i].ID == poison.ID)
			}
			if !found {
				t.Errorf("ErrorHandler not told of the dead letter: %v", errs)
			}
		})
	}
}

// Defect: handlers that never return stalled every consumer that
// reclaimed their entries, and neither Consume nor Close returned.
func TestHangingHandlersAreAbandoned(t *testing.T) {
	client := newClient(t, server.Addr)
	stream, group := uniqueName("hang"), "g"
	pub := newPublisher(t, client, stream)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	evs := make([]pubsub.Event, 200)
	hang := map[pubsub.ID]bool{}
	for i := range evs {
		evs[i] = pubsub.NewEvent(context.Background(), "job", []byte(strconv.Itoa(i)))
		if i%40 == 7 {
			hang[evs[i].ID] = true
		}
	}
	c := newCounter()
	handler := func(_ context.Context, ev pubsub.Event) error {
		if hang[ev.ID] {
			<-release // ignores its context
			return nil
		}
		c.add(ev)
		return nil
	}
	cfg := redis.SubscriberConfig{Streams: []string{stream}, Group: group, MaxAttempts: 2,
		HandlerTimeout: 100 * time.Millisecond, ClaimIdle: 300 * time.Millisecond, ClaimInterval: 50 * time.Millisecond}
	var subs []*redis.Subscriber
	for i := range 2 {
		cfg.Consumer = "worker-" + strconv.Itoa(i)
		s, err := redis.NewSubscriber(context.Background(), client, cfg)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	done := make(chan struct{}, len(subs))
	for _, s := range subs {
		go func() {
			s.Consume(context.Background(), handler, func(_ context.Context, err error, _ *pubsub.Event) { t.Log(err) })
			done <- struct{}{}
		}()
	}
	if err := pub.Emit(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	var good []pubsub.ID
	for _, ev := range evs {
		if !hang[ev.ID] {
			good = append(good, ev.ID)
		}
	}
	c.waitFor(t, good, 20*time.Second)
	eventually(t, "every hanging entry in the dead-letter stream", func() bool {
		n, _ := client.XLen(context.Background(), redis.DeadKey(stream)).Result()
		return n == int64(len(hang))
	})
	dead, _ := client.XRange(context.Background(), redis.DeadKey(stream), "-", "+").Result()
	for _, d := range dead {
		if reason, _ := d.Values["dead_reason"].(string); !strings.Contains(reason, "without an outcome") {
			t.Errorf("dead_reason %q", reason)
		}
	}
	// Close returns although the hung handlers still block.
	closed := make(chan struct{})
	go func() {
		for _, s := range subs {
			_ = s.Close()
		}
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s while handlers ignored their deadline")
	}
	for range subs {
		<-done
	}
}

// Defect: XGROUP DESTROY while consuming lost the entries waiting for a
// retry: the retry found them no longer pending and gave up, while the
// group was made again past them.
func TestGroupDestroyedWhileRetryingLosesNothing(t *testing.T) {
	client := newClient(t, server.Addr)
	stream, group := uniqueName("destroyed"), "g"
	pub := newPublisher(t, client, stream)
	c := newCounter()
	var failed sync.Map
	handler := func(_ context.Context, ev pubsub.Event) error {
		h := fnv.New32a()
		_, _ = h.Write([]byte(ev.ID))
		if h.Sum32()%10 < 3 { // 30% fail, each once
			if _, again := failed.LoadOrStore(ev.ID, true); !again {
				return errors.New("transient")
			}
		}
		c.add(ev)
		return nil
	}
	log := &errorLog{}
	for i := range 3 {
		subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: group, Consumer: "worker-" + strconv.Itoa(i),
			Concurrency: 4, MaxAttempts: 10, Backoff: pubsub.ConstantBackoff(100 * time.Millisecond)}, handler, log.handle)
	}
	var evs []pubsub.Event
	for round := range 20 {
		evs = append(evs, emitN(t, pub, "job", 100)...)
		if round == 10 {
			if err := client.XGroupDestroy(context.Background(), stream, group).Err(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Millisecond) // pacing the producer, so the destroy lands mid-run
	}
	c.waitFor(t, ids(evs), 30*time.Second)
	if n, _ := client.XLen(context.Background(), redis.DeadKey(stream)).Result(); n != 0 {
		t.Errorf("%d entries dead-lettered", n)
	}
	errs, _ := log.snapshot()
	for _, err := range errs {
		if strings.Contains(err.Error(), "was deleted") {
			t.Errorf("a retry was given up: %v", err)
		}
	}
}

// Defect: in a healthy group, entries queued behind a busy handler looked
// idle to XAUTOCLAIM (Redis starts the idle clock at read), so other
// consumers took them over and both handled them, with Attempts above 0.
func TestHealthyGroupHandlesEachEventOnce(t *testing.T) {
	client := newClient(t, server.Addr)
	stream, group := uniqueName("healthy"), "g"
	pub := newPublisher(t, client, stream)
	c := newCounter()
	for i := range 2 {
		subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: group, Consumer: "worker-" + strconv.Itoa(i),
			ClaimIdle: 200 * time.Millisecond}, func(_ context.Context, ev pubsub.Event) error {
			time.Sleep(20 * time.Millisecond) // the handler's work
			c.add(ev)
			return nil
		}, nil)
	}
	evs := emitN(t, pub, "job", 40)
	c.waitFor(t, ids(evs), 20*time.Second)
	eventually(t, "nothing pending", func() bool { return pendingCount(t, client, stream, group) == 0 })
	if dups, retried := c.duplicates(); dups != 0 || retried != 0 {
		t.Errorf("%d of 40 handled twice, %d first handled with Attempts > 0", dups, retried)
	}
}

// An attempts field near the largest integer saturates instead of
// wrapping negative.
func TestAttemptsSaturate(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("attempts")
	makeGroup(t, client, stream, "g")
	if err := client.XAdd(context.Background(), &goredis.XAddArgs{Stream: stream, Values: []any{
		"name", "x", "payload", "", "attempts", strconv.FormatInt(math.MaxInt64, 10)}}).Err(); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 2)
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Backoff: pubsub.ConstantBackoff(time.Millisecond)},
		func(_ context.Context, ev pubsub.Event) error {
			got <- ev.Meta.Attempts
			if len(got) < 2 {
				return errors.New("again")
			}
			return nil
		}, nil)
	for range 2 {
		select {
		case a := <-got:
			if a < 0 {
				t.Fatalf("Attempts %d", a)
			}
		case <-time.After(wait):
			t.Fatal("not delivered")
		}
	}
}

// The dead-letter stream keeps about DeadMaxLen entries.
func TestDeadLetterStreamIsBounded(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("deadbound")
	pub := newPublisher(t, client, stream)
	var n sync.WaitGroup
	n.Add(1000)
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", DeadMaxLen: 100, Concurrency: 8},
		func(context.Context, pubsub.Event) error { return fmt.Errorf("no: %w", pubsub.ErrPermanent) },
		func(_ context.Context, err error, _ *pubsub.Event) {
			if errors.Is(err, pubsub.ErrDeadLetter) {
				n.Done()
			}
		})
	emitN(t, pub, "doomed", 1000)
	n.Wait()
	// MAXLEN ~ trims whole nodes of up to 100 entries.
	if l, _ := client.XLen(context.Background(), redis.DeadKey(stream)).Result(); l > 200 {
		t.Errorf("dead-letter stream holds %d entries, bound 100 (~)", l)
	}
}

var _ = pubsubtest.NewRecorder

// A read whose reply is cut mid-stream: go-redis retries XREADGROUP on
// a fresh connection and returns that second read's (empty) answer, so
// the entries the first read moved into this consumer's pending list are
// in nobody's hands. The keeper finds them there and the reader claims
// them back, with no XAUTOCLAIM to help (ClaimInterval of an hour).
func TestLostReadReplyIsRecovered(t *testing.T) {
	proxy, err := faultproxy.New(server.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	direct := newClient(t, server.Addr)
	via := newClient(t, proxy.Addr()) // go-redis's default: 3 retries
	stream := uniqueName("cutread")
	c := newCounter()
	subscribe(t, via, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", Block: time.Second,
		ClaimIdle: 2 * time.Second, ClaimInterval: time.Hour}, func(_ context.Context, ev pubsub.Event) error {
		c.add(ev)
		return nil
	}, nil)
	eventually(t, "the consumer to wait in XREADGROUP", func() bool {
		list, err := direct.ClientList(context.Background()).Result()
		return err == nil && strings.Contains(list, "cmd=xreadgroup")
	})
	proxy.CutNextReply(30)
	evs := emitN(t, newPublisher(t, direct, stream), "job", 50)
	c.waitFor(t, ids(evs), 20*time.Second)
}
