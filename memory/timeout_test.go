package memory_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
)

// gate is a channel that the test closes, or else its cleanup does, for
// handlers that block on it ignoring their context; the cleanup then
// waits for them to return.
type gate struct {
	ch   chan struct{}
	once sync.Once
	mu   sync.Mutex
	runs []chan struct{} // each closed when a blocked handler returns
}

func newGate(t *testing.T) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(func() {
		g.open()
		g.mu.Lock()
		runs := g.runs
		g.mu.Unlock()
		for _, returned := range runs {
			<-returned
		}
	})
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

func (g *gate) block() {
	returned := make(chan struct{})
	defer close(returned)
	g.mu.Lock()
	g.runs = append(g.runs, returned)
	g.mu.Unlock()
	<-g.ch
}

// An abandoned handler that returns later, with an error or without, is
// ignored: its run was charged once, as hung, and the retry alone decides
// the event's fate.
func TestLateReturnOfAbandonedHandlerIsIgnored(t *testing.T) {
	for _, late := range []error{nil, errors.New("late failure")} {
		name := "nil"
		if late != nil {
			name = "error"
		}
		t.Run(name, func(t *testing.T) {
			g := newGate(t)
			b := newBroker(t, memory.Options{})
			s := newSub(t, b, memory.SubscriberConfig{Group: "g", MaxAttempts: 2, HandlerTimeout: 100 * time.Millisecond,
				Backoff: pubsub.ConstantBackoff(time.Millisecond)})
			rec := pubsubtest.NewRecorder()
			retried, lateReturned := make(chan struct{}), make(chan struct{})
			var mu sync.Mutex
			var reported []error
			consume(t, s, rec.HandleWith(func(ctx context.Context, ev pubsub.Event) error {
				switch {
				case string(ev.Payload) == "marker":
					return nil
				case ev.Meta.Attempts == 0:
					defer close(lateReturned)
					g.block()
					return late
				default:
					close(retried)
					<-lateReturned // the abandoned run returns while the retry runs
					return nil
				}
			}), func(_ context.Context, err error, _ *pubsub.Event) {
				mu.Lock()
				reported = append(reported, err)
				mu.Unlock()
			})
			hangs := pubsub.NewEvent(context.Background(), "e", []byte("hangs"))
			if err := b.Emit(context.Background(), hangs); err != nil {
				t.Fatal(err)
			}
			select {
			case <-retried:
			case <-time.After(wait):
				t.Fatal("the abandoned event was not retried")
			}
			g.open()
			marker := pubsub.NewEvent(context.Background(), "e", []byte("marker"))
			if err := b.Emit(context.Background(), marker); err != nil {
				t.Fatal(err)
			}
			rec.WaitForEvent(t, func(ev pubsub.Event) bool { return ev.ID == marker.ID }, wait)

			var attempts []int
			for _, ev := range rec.Events() {
				if ev.ID == hangs.ID {
					attempts = append(attempts, ev.Meta.Attempts)
				}
			}
			if len(attempts) != 2 || attempts[0] != 0 || attempts[1] != 1 {
				t.Errorf("deliveries of the event had Attempts %v, want [0 1]", attempts)
			}
			if dls := b.DeadLetters(); len(dls) != 0 {
				t.Errorf("the late return was counted: dead letters %v", dls)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(reported) != 0 {
				t.Errorf("ErrorHandler got %v", reported)
			}
		})
	}
}

// countWorkers counts the goroutines running a worker of this package,
// hung handlers included.
func countWorkers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("memory.(*consumer).work("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitWorkers waits until countWorkers is want, and fails t if it is not
// within the wait: goroutines that are done take a moment to be gone.
func waitWorkers(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		n := countWorkers()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d worker goroutines %s, want %d", n, what, want)
			return
		}
		runtime.Gosched()
	}
}

// Hung handlers leave one goroutine each, and no more; the dead letter
// says why; Broker.Close does not wait for the hung handlers.
func TestHungHandlersCostOneGoroutineEach(t *testing.T) {
	g := newGate(t)
	b := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = b.Close() })
	const concurrency, poison, good = 2, 3, 200
	s := newSub(t, b, memory.SubscriberConfig{Group: "g", Concurrency: concurrency, MaxAttempts: 1, HandlerTimeout: 50 * time.Millisecond})
	dead := make(chan struct{}, poison)
	rec := pubsubtest.NewRecorder()
	consume(t, s, rec.HandleWith(func(ctx context.Context, ev pubsub.Event) error {
		if ev.Name == "poison" {
			g.block()
		}
		return nil
	}), func(_ context.Context, err error, ev *pubsub.Event) {
		if ev == nil || ev.Name != "poison" || !errors.Is(err, pubsub.ErrDeadLetter) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ErrorHandler got %v for %v, want a dead letter of a poison event wrapping context.DeadlineExceeded", err, ev)
		}
		dead <- struct{}{}
	})
	var evs []pubsub.Event
	for i := range good {
		if i%70 == 0 {
			evs = append(evs, ev("poison"))
		}
		evs = append(evs, ev("good"))
	}
	if err := b.Emit(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	rec.WaitForN(t, poison+good, wait)
	for range poison {
		select {
		case <-dead:
		case <-time.After(wait):
			t.Fatal("not every poison event was dead-lettered")
		}
	}
	waitWorkers(t, concurrency+poison, "after 3 hangs (the Concurrency workers and one per hang)")
	dls := b.DeadLetters()
	if len(dls) != poison {
		t.Fatalf("%d dead letters, want %d", len(dls), poison)
	}
	for _, dl := range dls {
		if dl.Event.Name != "poison" || dl.Attempts != 1 || !errors.Is(dl.Err, context.DeadlineExceeded) ||
			!strings.Contains(dl.Err.Error(), "did not return within its deadline (50ms) plus grace (12.5ms)") {
			t.Errorf("dead letter %+v, want a poison event after 1 attempt, its reason saying the handler hung", dl)
		}
	}

	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = b.Close()
	}()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Broker.Close waited for the hung handlers")
	}
	waitWorkers(t, poison, "after Close (the hung ones)")
}
