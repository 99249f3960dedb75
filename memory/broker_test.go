package memory_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
)

const wait = 10 * time.Second

func newBroker(t *testing.T, opts memory.Options) *memory.Broker {
	t.Helper()
	b := memory.NewBroker(opts)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func newSub(t *testing.T, b *memory.Broker, cfg memory.SubscriberConfig) *memory.Subscriber {
	t.Helper()
	s, err := b.NewSubscriber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func consume(t *testing.T, s *memory.Subscriber, h pubsub.Handler, eh pubsub.ErrorHandler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Consume(ctx, h, eh) }()
	t.Cleanup(func() { cancel(); <-done })
}

func ev(name string) pubsub.Event {
	return pubsub.NewEvent(context.Background(), pubsub.Name(name), nil)
}

func TestBackPressureWaitsAndLosesNothing(t *testing.T) {
	b := newBroker(t, memory.Options{Buffer: 2})
	s := newSub(t, b, memory.SubscriberConfig{Group: "slow"})
	if err := b.Emit(context.Background(), ev("a"), ev("b")); err != nil {
		t.Fatal(err)
	}

	// The group is full: an Emit with a deadline gives up with it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Emit(ctx, ev("refused")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Emit into a full group = %v, want context.DeadlineExceeded", err)
	}

	// An Emit without a deadline waits until the consumer makes room.
	emitted := make(chan error, 1)
	go func() { emitted <- b.Emit(context.Background(), ev("c"), ev("d")) }()
	rec := pubsubtest.NewRecorder()
	consume(t, s, rec.Handle, nil)
	got := rec.WaitForN(t, 4, wait)
	if err := <-emitted; err != nil {
		t.Fatalf("blocked Emit returned %v", err)
	}
	var names []string
	for _, e := range got {
		names = append(names, string(e.Name))
	}
	if strings.Join(names, ",") != "a,b,c,d" {
		t.Errorf("delivered %v, want a,b,c,d", names)
	}
}

func TestCloseReleasesBlockedEmit(t *testing.T) {
	b := memory.NewBroker(memory.Options{Buffer: 1})
	if _, err := b.NewSubscriber(memory.SubscriberConfig{Group: "g"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), ev("fills")); err != nil {
		t.Fatal(err)
	}
	emitted := make(chan error, 1)
	go func() { emitted <- b.Emit(context.Background(), ev("blocked")) }()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-emitted:
		if !errors.Is(err, pubsub.ErrClosed) {
			t.Errorf("blocked Emit returned %v after Close, want ErrClosed", err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not release a blocked Emit")
	}
	if _, err := b.NewSubscriber(memory.SubscriberConfig{}); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("NewSubscriber after Close = %v, want ErrClosed", err)
	}
}

func TestPrivateGroupsEachGetEverything(t *testing.T) {
	b := newBroker(t, memory.Options{})
	r1, r2 := pubsubtest.NewRecorder(), pubsubtest.NewRecorder()
	consume(t, newSub(t, b, memory.SubscriberConfig{}), r1.Handle, nil)
	consume(t, newSub(t, b, memory.SubscriberConfig{}), r2.Handle, nil)
	if err := b.Emit(context.Background(), ev("x"), ev("y")); err != nil {
		t.Fatal(err)
	}
	r1.WaitForN(t, 2, wait)
	r2.WaitForN(t, 2, wait)
}

func TestConfigErrorsNameTheField(t *testing.T) {
	b := newBroker(t, memory.Options{})
	for _, tc := range []struct {
		cfg  memory.SubscriberConfig
		want string
	}{
		{memory.SubscriberConfig{Concurrency: -1}, "SubscriberConfig.Concurrency is -1"},
		{memory.SubscriberConfig{MaxAttempts: -3}, "SubscriberConfig.MaxAttempts is -3"},
		{memory.SubscriberConfig{HandlerTimeout: -time.Second}, "SubscriberConfig.HandlerTimeout is -1s"},
		{memory.SubscriberConfig{Names: []pubsub.Name{"a", ""}}, "SubscriberConfig.Names holds an empty name"},
	} {
		if _, err := b.NewSubscriber(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSubscriber(%+v) = %v, want an error saying %q", tc.cfg, err, tc.want)
		}
	}

	newSub(t, b, memory.SubscriberConfig{Group: "g", Names: []pubsub.Name{"a", "b"}})
	newSub(t, b, memory.SubscriberConfig{Group: "g", Names: []pubsub.Name{"b", "a"}}) // same set
	if _, err := b.NewSubscriber(memory.SubscriberConfig{Group: "g", Names: []pubsub.Name{"a"}}); err == nil ||
		!strings.Contains(err.Error(), `group "g" was made for names [a b], not [a]`) {
		t.Errorf("joining a group with other names = %v, want a clear refusal", err)
	}

	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "Options.Buffer is -1") {
			t.Errorf("NewBroker with a negative buffer panicked with %v", r)
		}
	}()
	memory.NewBroker(memory.Options{Buffer: -1})
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestDeadLettersAreBoundedAndLogged(t *testing.T) {
	var logs logBuffer
	b := newBroker(t, memory.Options{MaxDeadLetters: 2, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	s := newSub(t, b, memory.SubscriberConfig{Group: "g", MaxAttempts: 1})
	seen := pubsubtest.NewRecorder()
	consume(t, s, seen.HandleWith(func(context.Context, pubsub.Event) error { return errors.New("nope") }), nil)
	evs := []pubsub.Event{ev("one"), ev("two"), ev("three")}
	if err := b.Emit(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	seen.WaitForN(t, 3, wait)
	// Subscriber.Close waits for the handlers, and with them the dead
	// letters they made.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dls := b.DeadLetters()
	if len(dls) != 2 || dls[0].Event.ID != evs[1].ID || dls[1].Event.ID != evs[2].ID {
		t.Fatalf("DeadLetters = %v, want the last two", dls)
	}
	if dls[1].Group != "g" || dls[1].Attempts != 1 || dls[1].Err == nil || dls[1].Err.Error() != "nope" {
		t.Errorf("dead letter = %+v", dls[1])
	}
	out := logs.String()
	if !strings.Contains(out, "dead-letter list full") || !strings.Contains(out, string(evs[0].ID)) {
		t.Errorf("dropping a dead letter was not logged with its ID: %s", out)
	}
	if strings.Count(out, "memory: subscriber error") != 3 {
		t.Errorf("without an ErrorHandler, each dead letter should be logged:\n%s", out)
	}
}

func TestCancelledHandlerIsNotChargedAnAttempt(t *testing.T) {
	b := newBroker(t, memory.Options{})
	s := newSub(t, b, memory.SubscriberConfig{Group: "g", MaxAttempts: 1})
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		s.Consume(ctx, func(ctx context.Context, ev pubsub.Event) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}, nil)
	}()
	want := ev("interrupted")
	if err := b.Emit(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	<-returned

	rec := pubsubtest.NewRecorder()
	consume(t, newSub(t, b, memory.SubscriberConfig{Group: "g"}), rec.Handle, nil)
	got := rec.WaitForN(t, 1, wait)
	if got[0].ID != want.ID || got[0].Meta.Attempts != 0 {
		t.Errorf("after a shutdown, redelivered %s with Attempts %d; want %s with 0", got[0].ID, got[0].Meta.Attempts, want.ID)
	}
	if dls := b.DeadLetters(); len(dls) != 0 {
		t.Errorf("an interrupted event was dead-lettered: %v", dls)
	}
}
