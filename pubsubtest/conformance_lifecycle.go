package pubsubtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/pubsub"
)

func testInvalidBatch(t *testing.T, f *fixture) {
	rec := NewRecorder()
	f.consume(f.sub(SubscriberConfig{}), rec.Handle, nil)
	good := pubsub.NewEvent(context.Background(), "good", nil)
	for _, bad := range []pubsub.Event{
		{ID: "no-name"},
		{Name: "no-id"},
		{ID: "negative", Name: "n", Meta: pubsub.Meta{Attempts: -1}},
	} {
		err := f.b.Publisher.Emit(context.Background(), good, bad)
		if !errors.Is(err, pubsub.ErrInvalidEvent) {
			t.Errorf("Emit(good, %+v) = %v, want an error wrapping ErrInvalidEvent", bad, err)
		}
	}
	marker := pubsub.NewEvent(context.Background(), "marker", nil)
	f.emit(marker)
	got := rec.WaitForN(t, 1, f.timeout)
	if got[0].ID != marker.ID {
		t.Errorf("first delivery is %s %s, want the marker: a refused batch must write nothing", got[0].ID, got[0].Name)
	}
}

func testEmitDoneContext(t *testing.T, f *fixture) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.b.Publisher.Emit(ctx, pubsub.NewEvent(context.Background(), "late", nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("Emit with a cancelled context = %v, want context.Canceled", err)
	}
}

func testNilHandler(t *testing.T, f *fixture) {
	s := f.sub(SubscriberConfig{})
	defer func() {
		if recover() == nil {
			t.Error("Consume with a nil Handler did not panic")
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Consume(ctx, nil, nil)
}

// blockingHandler returns a handler that signals started and then blocks
// until release is closed.
func blockingHandler() (h pubsub.Handler, started, release chan struct{}) {
	started, release = make(chan struct{}), make(chan struct{})
	first := true
	return func(ctx context.Context, ev pubsub.Event) error {
		if first {
			first = false
			close(started)
		}
		<-release
		return nil
	}, started, release
}

func testCancelStopsConsume(t *testing.T, f *fixture) {
	s := f.sub(SubscriberConfig{})
	h, started, release := blockingHandler()
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		s.Consume(ctx, h, nil)
	}()
	f.emit(pubsub.NewEvent(context.Background(), "slow", nil))
	f.wait(started, "the handler to start")
	cancel()
	select {
	case <-returned:
		t.Fatal("Consume returned while its handler was still running")
	default:
	}
	close(release)
	f.wait(returned, "Consume to return after its context was cancelled")
}

func testCloseWaits(t *testing.T, f *fixture) {
	s := f.sub(SubscriberConfig{})
	h, started, release := blockingHandler()
	f.consume(s, h, nil)
	f.emit(pubsub.NewEvent(context.Background(), "slow", nil))
	f.wait(started, "the handler to start")
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a handler was still running")
	default:
	}
	close(release)
	f.wait(closed, "Close to return once the handler did")
}

func testCloseTwice(t *testing.T, f *fixture) {
	s := f.sub(SubscriberConfig{})
	f.consume(s, func(context.Context, pubsub.Event) error { return nil }, nil)
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Subscriber.Close #%d: %v", i+1, err)
		}
		if err := f.b.Publisher.Close(); err != nil {
			t.Errorf("Publisher.Close #%d: %v", i+1, err)
		}
	}
}

func testEmitAfterClose(t *testing.T, f *fixture) {
	if err := f.b.Publisher.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err := f.b.Publisher.Emit(context.Background(), pubsub.NewEvent(context.Background(), "late", nil))
	if !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Emit after Close = %v, want ErrClosed", err)
	}
	if dp, ok := f.b.Publisher.(pubsub.DelayedPublisher); ok {
		err := dp.EmitAt(context.Background(), time.Now().Add(time.Hour), pubsub.NewEvent(context.Background(), "late", nil))
		if !errors.Is(err, pubsub.ErrClosed) {
			t.Errorf("EmitAt after Close = %v, want ErrClosed", err)
		}
	}
}

func testConsumeAfterClose(t *testing.T, f *fixture) {
	s := f.sub(SubscriberConfig{})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var reported error
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		s.Consume(context.Background(), func(context.Context, pubsub.Event) error { return nil },
			func(_ context.Context, err error, _ *pubsub.Event) { reported = err })
	}()
	f.wait(returned, "Consume on a closed subscriber to return")
	if !errors.Is(reported, pubsub.ErrClosed) {
		t.Errorf("Consume on a closed subscriber reported %v, want ErrClosed", reported)
	}
}

func testNoLeaks(t *testing.T, f *fixture) {
	f.need(GoroutineLeakCheck)
	before := goleak.IgnoreCurrent()
	var subs []pubsub.Subscriber
	var stops []func()
	rec := NewRecorder()
	for i := range 3 {
		s := f.sub(SubscriberConfig{Group: fmt.Sprint("leak-", i%2), Concurrency: 2})
		subs = append(subs, s)
		stops = append(stops, f.consume(s, rec.HandleWith(func(_ context.Context, ev pubsub.Event) error {
			if ev.Meta.Attempts == 0 && ev.Name == "fails.once" {
				return errAlways
			}
			return nil
		}), nil))
	}
	f.emit(events("leak", 50)...)
	f.emit(events("fails.once", 5)...)
	rec.WaitForN(t, 2*55+2*5, f.timeout) // two groups; each failure delivered twice
	stops[0]()
	for _, s := range subs {
		if err := s.Close(); err != nil {
			t.Errorf("Subscriber.Close: %v", err)
		}
	}
	if err := f.b.Publisher.Close(); err != nil {
		t.Errorf("Publisher.Close: %v", err)
	}
	if err := goleak.Find(before); err != nil {
		t.Errorf("goroutines left after closing everything: %v", err)
	}
}
