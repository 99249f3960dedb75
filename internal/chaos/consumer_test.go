package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// consumerEnv holds the JSON consumerSpec of a consumer process.
const consumerEnv = "SWITCHYARD_CHAOS_CONSUMER"

// Payloads that make a consumer's handler misbehave (scenario f).
const (
	payloadExit = "poison:exit" // the handler ends the process with os.Exit(3)
	payloadHang = "poison:hang" // the handler blocks forever, ignoring its context
)

// consumerSpec is what a consumer process is told to do.
type consumerSpec struct {
	Addr   string // redis-server, or a fault proxy in front of it
	Stream string
	Group  string
	Name   string // consumer name, kept across restarts
	Out    string // the file every handled event is appended to

	Concurrency    int
	BatchSize      int
	MaxAttempts    int
	Backoff        time.Duration // constant; 0: the package default
	Block          time.Duration
	ClaimIdle      time.Duration
	ClaimInterval  time.Duration
	DelayedPoll    time.Duration
	HandlerTimeout time.Duration

	HandleTime time.Duration // how long each handling takes
	FailRate   float64       // share of handlings that fail with a transient error

	DialTimeout, ReadTimeout time.Duration
}

var errTransient = errors.New("chaos: transient handler failure")

// TestChaosConsumer is not a test of its own: the scenarios run the test
// binary again with SWITCHYARD_CHAOS_CONSUMER set, and this function then
// becomes a consumer process that appends one line per handled event to
// its file and runs until it is killed.
func TestChaosConsumer(t *testing.T) {
	raw := os.Getenv(consumerEnv)
	if raw == "" {
		return // run directly: nothing to do
	}
	var spec consumerSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "chaos consumer:", err)
		os.Exit(2)
	}
	os.Exit(runConsumer(spec))
}

// runConsumer consumes as spec says until the process is killed.
func runConsumer(spec consumerSpec) int {
	// O_APPEND: each line is one write, which survives SIGKILL and is
	// never interleaved with another process's or an earlier run's.
	out, err := os.OpenFile(spec.Out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos consumer:", err)
		return 2
	}
	client := goredis.NewClient(&goredis.Options{
		Addr: spec.Addr, DialTimeout: spec.DialTimeout, ReadTimeout: spec.ReadTimeout, WriteTimeout: spec.ReadTimeout,
	})
	cfg := redis.SubscriberConfig{
		Streams: []string{spec.Stream}, Group: spec.Group, Consumer: spec.Name,
		Concurrency: spec.Concurrency, BatchSize: spec.BatchSize, MaxAttempts: spec.MaxAttempts,
		Block: spec.Block, ClaimIdle: spec.ClaimIdle, ClaimInterval: spec.ClaimInterval,
		DelayedPoll: spec.DelayedPoll, HandlerTimeout: spec.HandlerTimeout,
	}
	if spec.Backoff > 0 {
		cfg.Backoff = pubsub.ConstantBackoff(spec.Backoff)
	}
	// NewSubscriber makes the group; Redis may be down or behind a fault
	// for a while, so it is tried again for up to 30s.
	var sub *redis.Subscriber
	for deadline := time.Now().Add(30 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		sub, err = redis.NewSubscriber(ctx, client, cfg)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "chaos consumer:", err)
			return 2
		}
		time.Sleep(100 * time.Millisecond) // a retry pause, not a synchronisation
	}

	pid := os.Getpid()
	var logged int
	var logMu sync.Mutex
	sub.Consume(context.Background(), func(ctx context.Context, ev pubsub.Event) error {
		switch string(ev.Payload) {
		case payloadExit:
			os.Exit(3)
		case payloadHang:
			<-make(chan struct{}) // forever, whatever ctx says
		}
		if spec.HandleTime > 0 {
			t := time.NewTimer(spec.HandleTime)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		if spec.FailRate > 0 && rand.Float64() < spec.FailRate {
			return errTransient
		}
		line := string(ev.ID) + " " + strconv.Itoa(ev.Meta.Attempts) + " " + strconv.Itoa(pid) + "\n"
		if _, err := out.WriteString(line); err != nil {
			return err
		}
		return nil
	}, func(_ context.Context, err error, ev *pubsub.Event) {
		if errors.Is(err, errTransient) {
			return
		}
		logMu.Lock()
		defer logMu.Unlock()
		if logged++; logged <= 200 { // bounded: faults can make thousands
			id := ""
			if ev != nil {
				id = string(ev.ID)
			}
			fmt.Fprintf(os.Stderr, "%s %s error (event %q): %v\n", time.Now().Format("15:04:05.000"), spec.Name, id, err)
		}
	})
	return 0
}

// fleet runs consumer processes and restarts any that exits, under the
// same name, as a supervisor would, until it is shut down.
type fleet struct {
	t    *testing.T
	dir  string
	spec consumerSpec // Name and Out are set per process

	mu       sync.Mutex
	procs    map[string]*exec.Cmd
	exits    map[string]int
	stopping bool
	wg       sync.WaitGroup
}

// maxRestarts bounds how often one consumer is started again.
const maxRestarts = 30

// startFleet starts n consumers named consumer-0 … consumer-<n-1>, each
// appending to its own file in dir.
func startFleet(t *testing.T, dir string, spec consumerSpec, n int) *fleet {
	f := &fleet{t: t, dir: dir, spec: spec, procs: map[string]*exec.Cmd{}, exits: map[string]int{}}
	for i := range n {
		name := "consumer-" + strconv.Itoa(i)
		cmd, err := f.start(name)
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		f.procs[name] = cmd
		f.mu.Unlock()
		f.wg.Add(1)
		go f.supervise(name, cmd)
	}
	t.Cleanup(f.shutdown)
	return f
}

func (f *fleet) start(name string) (*exec.Cmd, error) {
	spec := f.spec
	spec.Name, spec.Out = name, filepath.Join(f.dir, name+".handled")
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(f.dir, name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(os.Args[0], "-test.run=^TestChaosConsumer$", "-test.timeout=0")
	cmd.Env = append(os.Environ(), consumerEnv+"="+string(raw))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting consumer %s: %w", name, err)
	}
	return cmd, nil
}

// supervise waits for the process and starts it again when it ends,
// unless the fleet is shutting down; at most maxRestarts times.
func (f *fleet) supervise(name string, cmd *exec.Cmd) {
	defer f.wg.Done()
	for {
		err := cmd.Wait()
		f.mu.Lock()
		if f.stopping {
			f.mu.Unlock()
			return
		}
		f.exits[name]++
		n := f.exits[name]
		f.mu.Unlock()
		if n > maxRestarts {
			f.t.Logf("consumer %s exited %d times (%v); not starting it again", name, n, err)
			return
		}
		time.Sleep(50 * time.Millisecond) // a supervisor's restart pause, not a synchronisation
		next, serr := f.start(name)
		f.mu.Lock()
		if serr != nil || f.stopping {
			f.mu.Unlock()
			if next != nil {
				_ = next.Process.Kill()
				_ = next.Wait()
			}
			return
		}
		f.procs[name] = next
		f.mu.Unlock()
		cmd = next
	}
}

// signal sends sig to the current process of consumer name.
func (f *fleet) signal(name string, sig syscall.Signal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cmd := f.procs[name]; cmd != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// restarts reports how often each consumer exited without being asked.
func (f *fleet) restarts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.exits))
	for k, v := range f.exits {
		out[k] = v
	}
	return out
}

// shutdown kills every consumer and waits for the supervisors.
func (f *fleet) shutdown() {
	f.mu.Lock()
	if f.stopping {
		f.mu.Unlock()
		return
	}
	f.stopping = true
	for _, cmd := range f.procs {
		_ = cmd.Process.Kill()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// logTail logs the last lines of each consumer's log, for a failed run.
func (f *fleet) logTail(lines int) {
	for name := range f.procs {
		raw, err := os.ReadFile(filepath.Join(f.dir, name+".log"))
		if err != nil || len(raw) == 0 {
			continue
		}
		s := string(raw)
		for i, n := len(s)-1, 0; i >= 0; i-- {
			if s[i] == '\n' {
				if n++; n > lines {
					s = s[i+1:]
					break
				}
			}
		}
		f.t.Logf("%s log (last %d lines):\n%s", name, lines, s)
	}
}
