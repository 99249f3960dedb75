package chaos

import (
	"context"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/redis"
)

// scenario is one run: its own redis-server, stream, consumers' files,
// publisher and consumer processes.
type scenario struct {
	t      *testing.T
	name   string
	srv    *redistest.Server
	admin  *goredis.Client // straight to the server, for the test's own reads and faults
	stream string
	group  string
	dir    string
	em     *emitter
	fleet  *fleet
}

// newScenario starts a redis-server with the extra arguments given.
func newScenario(t *testing.T, name string, redisArgs ...string) *scenario {
	t.Helper()
	srv, err := redistest.Start(t.TempDir(), redisArgs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr, DialTimeout: time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = admin.Close() })
	return &scenario{t: t, name: name, srv: srv, admin: admin, stream: "chaos", group: "g", dir: t.TempDir()}
}

// clientOptions are the go-redis options of the test's publisher and of
// every consumer process: short timeouts, so that faults surface as
// errors rather than long waits.
func clientOptions(addr string) *goredis.Options {
	return &goredis.Options{
		Addr: addr, DialTimeout: 300 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
	}
}

// publishVia makes the scenario's publisher, connected to addr (the
// server, or a fault proxy in front of it).
func (s *scenario) publishVia(addr string) {
	s.t.Helper()
	client := goredis.NewClient(clientOptions(addr))
	s.t.Cleanup(func() { _ = client.Close() })
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: s.stream})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = pub.Close() })
	s.em = newEmitter(pub)
}

// makeGroup makes the consumer group before anything is emitted, so that
// no event precedes it whenever the consumers start.
func (s *scenario) makeGroup() {
	s.t.Helper()
	err := s.admin.XGroupCreateMkStream(context.Background(), s.stream, s.group, "$").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		s.t.Fatal(err)
	}
}

// spec returns the consumers' usual settings, connected to addr: CI-sized
// timings (ClaimIdle 1s, Block 200ms), handlers of about a millisecond.
func (s *scenario) spec(addr string) consumerSpec {
	o := clientOptions(addr)
	return consumerSpec{
		Addr: addr, Stream: s.stream, Group: s.group,
		Concurrency: 4, BatchSize: 50, MaxAttempts: 5, Backoff: 100 * time.Millisecond,
		Block: 200 * time.Millisecond, ClaimIdle: time.Second, ClaimInterval: 250 * time.Millisecond,
		DelayedPoll: 100 * time.Millisecond,
		HandleTime:  time.Millisecond,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
	}
}

// consume starts n consumer processes with spec.
func (s *scenario) consume(spec consumerSpec, n int) {
	s.fleet = startFleet(s.t, s.dir, spec, n)
}

// defaultSettle is how long a scenario may take to settle: a stall is
// three ClaimIdles and a bit with no handling at all.
func defaultSettle(claimIdle time.Duration) settleOpts {
	limit := 45 * time.Second
	if *full {
		limit = 10 * time.Minute
	}
	return settleOpts{stallAfter: 3*claimIdle + 3*time.Second, limit: limit, quiet: 3*claimIdle + 10*time.Second}
}

// report logs the outcome as a table row and details, keeps the row for
// the suite's table, and fails the scenario on a loss or a stall.
func (s *scenario) report(o outcome) {
	s.t.Helper()
	s.t.Log(o.row())
	s.t.Logf("details: %d Emits failed (not owed); %d handlings with Attempts > 0; %d dead letters for no emitted event; restarts %v; %s",
		o.failedEmits, o.retried, o.deadOthers, s.fleet.restarts(), o.why)
	if err := s.em.firstError(); err != nil {
		s.t.Logf("first Emit error: %.300v", err)
	}
	record(o.row())
	if o.lost > 0 {
		s.t.Errorf("%d events emitted (Emit returned nil) were neither handled nor dead-lettered", o.lost)
	}
	if o.stalled {
		s.t.Errorf("stalled: %s", o.why)
	}
	if s.t.Failed() {
		s.fleet.logTail(8)
	}
}
