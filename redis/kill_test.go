package redis_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// full runs the fault tests at their full size (see docs/reliability.md).
var full = flag.Bool("full", false, "run fault and load tests at full size")

// TestConsumerProcess is not a test of its own: TestConsumersKilled runs
// the test binary again with SWITCHYARD_CONSUMER set, and this function
// then becomes a consumer process that counts each delivery in Redis and
// runs until it is killed.
func TestConsumerProcess(t *testing.T) {
	addr, stream, name := os.Getenv("SWITCHYARD_CONSUMER"), os.Getenv("SWITCHYARD_STREAM"), os.Getenv("SWITCHYARD_NAME")
	if addr == "" {
		return // run directly: nothing to do
	}
	client := goredis.NewClient(&goredis.Options{Addr: addr})
	sub, err := redis.NewSubscriber(context.Background(), client, redis.SubscriberConfig{
		Streams: []string{stream}, Group: "g", Consumer: name, Concurrency: 8, BatchSize: 200,
		ClaimIdle: time.Second, ClaimInterval: 250 * time.Millisecond, Block: 100 * time.Millisecond,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("consuming")
	sub.Consume(context.Background(), func(ctx context.Context, ev pubsub.Event) error {
		return client.HIncrBy(ctx, stream+":handled", string(ev.ID), 1).Err()
	}, nil)
}

// TestConsumersKilled runs three consumer processes in one group and
// kills one with SIGKILL, holding pending entries, every fifth of the
// run, starting it again under the same name: every event must be
// handled at least once. Duplicates are counted and reported.
func TestConsumersKilled(t *testing.T) {
	if os.Getenv("SWITCHYARD_CONSUMER") != "" {
		return
	}
	n := 20000
	if *full {
		n = 100000
	}
	client := newClient(t, server.Addr)
	ctx := context.Background()
	stream := uniqueName("killed")
	makeGroup(t, client, stream, "g")

	start := func(name string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestConsumerProcess$")
		cmd.Env = append(os.Environ(), "SWITCHYARD_CONSUMER="+server.Addr, "SWITCHYARD_STREAM="+stream, "SWITCHYARD_NAME="+name)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	procs := map[string]*exec.Cmd{}
	for i := range 3 {
		name := "consumer-" + strconv.Itoa(i)
		procs[name] = start(name)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	})

	pub := newPublisher(t, client, stream)
	evs := make([]pubsub.Event, 500)
	for sent := 0; sent < n; sent += len(evs) {
		for i := range evs {
			evs[i] = pubsub.NewEvent(ctx, "job", []byte(strconv.Itoa(sent+i)))
		}
		if err := pub.Emit(ctx, evs...); err != nil {
			t.Fatal(err)
		}
	}

	handled := func() int64 {
		v, err := client.HLen(ctx, stream+":handled").Result()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	kills := 0
	deadline := time.Now().Add(3 * time.Minute)
	for next := int64(n / 5); handled() < int64(n); {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events handled after 3 minutes", handled(), n)
		}
		if h := handled(); h >= next && next < int64(n) {
			name := "consumer-" + strconv.Itoa(kills%3)
			pending, _ := client.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: stream, Group: "g", Start: "-", End: "+", Count: 1000, Consumer: name}).Result()
			_ = procs[name].Process.Signal(syscall.SIGKILL)
			_ = procs[name].Wait()
			t.Logf("killed %s at %d handled, holding %d pending entries", name, h, len(pending))
			procs[name] = start(name)
			kills++
			next += int64(n / 5)
		}
		time.Sleep(20 * time.Millisecond) // polling the count kept in Redis
	}
	counts, err := client.HGetAll(ctx, stream+":handled").Result()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, c := range counts {
		v, _ := strconv.Atoi(c)
		total += v
	}
	if len(counts) != n {
		t.Fatalf("%d distinct events handled, want %d", len(counts), n)
	}
	if kills < 3 {
		t.Errorf("only %d kills happened", kills)
	}
	t.Logf("%d events, %d kills: every event handled, %d duplicate deliveries (%.2f%%)", n, kills, total-n, 100*float64(total-n)/float64(n))
}
