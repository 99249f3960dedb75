package memory_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
)

// Setting the global TracerProvider mid-run (in a child process, so that
// no other test of the package sees it) loses, duplicates and stalls
// nothing: events emitted before, during and after it (immediate and
// delayed, some under a caller's remote span context, some failing once)
// are all handled, each the expected number of times; events emitted
// after it are handled in process spans.
func TestAdv10GlobalProviderSetMidRun(t *testing.T) {
	if os.Getenv("ADV10_MEMORY_CHILD") == "1" {
		globalProviderMidRun(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAdv10GlobalProviderSetMidRun$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "ADV10_MEMORY_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func globalProviderMidRun(t *testing.T) {
	b := memory.NewBroker(memory.Options{}) // the global provider, looked up at each use
	defer b.Close()
	sub, err := b.NewSubscriber(memory.SubscriberConfig{MaxAttempts: 3, Backoff: pubsub.ConstantBackoff(time.Millisecond), Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := map[pubsub.ID]int{}
	spans := map[pubsub.ID]trace.SpanContext{}
	var handled atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sub.Consume(ctx, func(ctx context.Context, ev pubsub.Event) error {
		mu.Lock()
		calls[ev.ID]++
		n := calls[ev.ID]
		spans[ev.ID] = trace.SpanContextFromContext(ctx)
		mu.Unlock()
		handled.Add(1)
		if n == 1 && ev.Payload[0] == 'f' {
			return fmt.Errorf("first attempt of %s fails", ev.ID)
		}
		return nil
	}, func(context.Context, error, *pubsub.Event) {})

	remote := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: [16]byte{0x4b, 0xf9, 1}, SpanID: [8]byte{0, 0xf0, 1}, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	want := map[pubsub.ID]int{}
	var wmu sync.Mutex
	emit := func(phase string, i int) {
		c := context.Background()
		if i%3 == 0 {
			c = remote
		}
		payload := "ok"
		if i%4 == 0 {
			payload = "fail once"
		}
		ev := pubsub.NewEvent(c, "t", []byte(payload))
		ev.ID = pubsub.ID(fmt.Sprintf("%s-%d", phase, i))
		var err error
		if i%5 == 0 {
			err = b.EmitAt(c, time.Now().Add(30*time.Millisecond), ev)
		} else {
			err = b.Emit(c, ev)
		}
		if err != nil {
			t.Errorf("emit %s: %v", ev.ID, err)
			return
		}
		wmu.Lock()
		want[ev.ID] = 1
		if payload == "fail once" {
			want[ev.ID] = 2
		}
		wmu.Unlock()
	}
	for i := range 200 {
		emit("before", i)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 400 {
			emit("during", i)
		}
	})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	otel.SetTracerProvider(tp)
	wg.Wait()
	for i := range 200 {
		emit("after", i)
	}

	total := 0
	for _, n := range want {
		total += n
	}
	deadline := time.Now().Add(8 * time.Second)
	for handled.Load() < int64(total) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling the handler's progress with a deadline
	}
	time.Sleep(50 * time.Millisecond) // room for a duplicate to show
	mu.Lock()
	defer mu.Unlock()
	for id, n := range want {
		if calls[id] != n {
			t.Errorf("%s handled %d times, want %d", id, calls[id], n)
		}
	}
	for id := range calls {
		if _, ok := want[id]; !ok {
			t.Errorf("%s handled but never emitted", id)
		}
	}
	for i := range 200 {
		id := pubsub.ID(fmt.Sprintf("after-%d", i))
		if !spans[id].IsValid() || spans[id].IsRemote() {
			t.Errorf("%s handled in %v, want a process span", id, spans[id])
		}
	}
	t.Logf("%d events, %d handler calls, %d spans ended", len(want), handled.Load(), len(rec.Ended()))
}
