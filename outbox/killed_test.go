package outbox

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// relayProcessEnv, set, makes the test binary a relay process: it holds
// "<dialect> <driver> <redis address> <stream> <DSN>".
const relayProcessEnv = "SWITCHYARD_OUTBOX_RELAY_PROCESS"

// TestHelperRelayProcess is not a test: it is the relay process that
// TestOrderedRelaysKilled starts and kills. It runs until killed.
func TestHelperRelayProcess(t *testing.T) {
	spec := os.Getenv(relayProcessEnv)
	if spec == "" {
		return
	}
	f := strings.SplitN(spec, " ", 5)
	var d Dialect
	for _, c := range []Dialect{Postgres, SQLite, MySQL} {
		if c.String() == f[0] {
			d = c
		}
	}
	db, err := sql.Open(f[1], f[4])
	if err != nil {
		t.Fatal(err)
	}
	client := goredis.NewClient(&goredis.Options{Addr: f[2]})
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: f[3]})
	if err != nil {
		t.Fatal(err)
	}
	poll := 5 * time.Millisecond
	if d == SQLite {
		poll = 30 * time.Millisecond // every claim takes the single writer's lock
	}
	r, err := NewRelay(RelayConfig{DB: db, Dialect: d, Publisher: pub, BatchSize: 100, Lease: time.Second,
		PollInterval: poll, Backoff: pubsub.ConstantBackoff(10 * time.Millisecond), MaxAttempts: 1000})
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Run(context.Background())
}

// TestOrderedRelaysKilled: three relay processes publish to a real Redis
// stream what 10,000 transactions over 100 keys commit (SQLite: 4,000
// over 40), concurrently and
// out of the order they wrote their rows in, while one relay after another
// is SIGKILLed mid-work and started again. Per key, the stream holds the
// events in commit order (an event a killed relay published but had not
// marked comes again, after it) and none is missing.
func TestOrderedRelaysKilled(t *testing.T) {
	for _, d := range []Dialect{Postgres, SQLite, MySQL} {
		t.Run(d.String(), func(t *testing.T) {
			db, driver, dsn := openDB(t, d)
			prepareCommitLog(t, db)
			srv, err := redistest.Start(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Kill)
			stream := "orders"
			spec := strings.Join([]string{d.String(), driver, srv.Addr, stream, dsn}, " ")
			relays := &relayProcs{t: t, spec: spec}
			for i := range 3 {
				relays.start(i)
			}
			t.Cleanup(relays.stopAll)
			stopKilling := make(chan struct{})
			killed := make(chan int)
			go func() {
				rnd := rand.New(rand.NewPCG(uint64(d), 3))
				n := 0
				defer func() { killed <- n }()
				for {
					select {
					case <-stopKilling:
						return
					case <-time.After(time.Duration(200+rnd.IntN(300)) * time.Millisecond): // the next crash
					}
					i := rnd.IntN(3)
					relays.kill(i)
					relays.start(i)
					n++
				}
			}()
			events, keys, writers := 10000, 100, 8
			if d == SQLite {
				// One process writes at a time: writers and relay processes
				// take turns on the file's lock, each wait a sleep in
				// SQLite's busy handler; less work shows the same.
				events, keys, writers = 4000, 40, 2
			}
			began := time.Now()
			writeOrderedConcurrently(t, db, d, keys, events, writers)
			wrote := time.Since(began)
			// Crashes go on until every row is out, or a few more after.
			deadline := time.Now().Add(90 * time.Second)
			for count(t, db, "status <> 'sent'") > 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond) // polling the relays' progress
			}
			close(stopKilling)
			kills := <-killed
			waitAllSent(t, db, 30*time.Second)
			relays.stopAll()
			published := readStream(t, srv.Addr, stream)
			checkCommitOrder(t, db, d, published)
			if kills < 5 {
				t.Errorf("only %d relays were killed", kills)
			}
			t.Logf("%d relay processes killed; %d entries in the stream for %d events; written in %s, all out in %s",
				kills, len(published), events, wrote.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
		})
	}
}

// relayProcs are the relay processes of a test.
type relayProcs struct {
	t    *testing.T
	spec string
	mu   sync.Mutex
	cmds [3]*exec.Cmd
}

func (p *relayProcs) start(i int) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRelayProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), relayProcessEnv+"="+p.spec)
	if err := cmd.Start(); err != nil {
		p.t.Error(err)
		return
	}
	p.mu.Lock()
	p.cmds[i] = cmd
	p.mu.Unlock()
}

func (p *relayProcs) kill(i int) {
	p.mu.Lock()
	cmd := p.cmds[i]
	p.cmds[i] = nil
	p.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
}

func (p *relayProcs) stopAll() {
	for i := range p.cmds {
		p.kill(i)
	}
}

// readStream reads every entry of stream, in order, as events with their ID.
func readStream(t *testing.T, addr, stream string) []pubsub.Event {
	t.Helper()
	client := goredis.NewClient(&goredis.Options{Addr: addr})
	defer client.Close()
	var out []pubsub.Event
	start := "-"
	for {
		msgs, err := client.XRangeN(context.Background(), stream, start, "+", 1000).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			id, _ := m.Values["id"].(string)
			out = append(out, pubsub.Event{ID: pubsub.ID(id)})
		}
		if len(msgs) < 1000 {
			return out
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}
