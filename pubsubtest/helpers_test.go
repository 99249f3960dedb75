package pubsubtest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
)

func TestIsExpectedEvent(t *testing.T) {
	ev := pubsub.Event{ID: "1", Name: "order.created", Payload: []byte(`{"total": 9.5, "items": [1, 2], "id": "a"}`)}
	tests := []struct {
		name  pubsub.Name
		want  any
		match bool
	}{
		{"order.created", `{"id":"a","items":[1,2],"total":9.50}`, true},
		{"order.created", []byte(` { "items" : [1,2], "id":"a", "total":9.5 } `), true},
		{"order.created", map[string]any{"id": "a", "items": []int{1, 2}, "total": 9.5}, true},
		{"order.created", `{"id":"a","items":[2,1],"total":9.5}`, false},
		{"order.created", `{"id":"a","items":[1,2]}`, false},
		{"order.updated", `{"id":"a","items":[1,2],"total":9.5}`, false},
		{"order.created", `not json`, false},
	}
	for _, tc := range tests {
		if got := pubsubtest.IsExpectedEvent(ev, tc.name, tc.want); got != tc.match {
			t.Errorf("IsExpectedEvent(%s, %v) = %v, want %v", tc.name, tc.want, got, tc.match)
		}
	}
	raw := pubsub.Event{Name: "raw", Payload: []byte("not json")}
	if !pubsubtest.IsExpectedEvent(raw, "raw", "not json") || pubsubtest.IsExpectedEvent(raw, "raw", "not jsoN") {
		t.Error("a non-JSON payload should match byte for byte")
	}
}

func TestRecorderPublisher(t *testing.T) {
	rec := pubsubtest.NewRecorder()
	ctx := context.Background()
	if err := rec.Emit(ctx, pubsub.Event{ID: "x"}); !errors.Is(err, pubsub.ErrInvalidEvent) {
		t.Errorf("Emit of an event without a name = %v, want ErrInvalidEvent", err)
	}
	boom := errors.New("broker down")
	rec.FailWith(boom)
	if err := rec.Emit(ctx, pubsub.NewEvent(ctx, "a", nil)); !errors.Is(err, boom) {
		t.Errorf("Emit after FailWith = %v, want %v", err, boom)
	}
	rec.FailWith(nil)
	at := time.Now().Add(time.Hour)
	if err := rec.EmitAt(ctx, at, pubsub.NewEvent(ctx, "later", nil)); err != nil {
		t.Fatal(err)
	}
	if s := rec.Scheduled(); len(s) != 1 || !s[0].At.Equal(at) || s[0].Event.Name != "later" {
		t.Errorf("Scheduled = %+v", s)
	}
	if n := len(rec.Events()); n != 1 {
		t.Errorf("%d events recorded, want only the valid, unfailed one", n)
	}
	_ = rec.Close()
	if err := rec.Emit(ctx, pubsub.NewEvent(ctx, "a", nil)); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Emit after Close = %v, want ErrClosed", err)
	}
	rec.Reset()
	if len(rec.Events())+len(rec.Scheduled()) != 0 {
		t.Error("Reset kept events")
	}
}

func TestRecorderWaitsForConcurrentEvents(t *testing.T) {
	rec := pubsubtest.NewRecorder()
	go func() {
		for i := range 50 {
			_ = rec.Emit(context.Background(), pubsub.NewEvent(context.Background(), "n", []byte(fmt.Sprint(i))))
		}
	}()
	got := rec.WaitForN(t, 50, 10*time.Second)
	if len(got) != 50 {
		t.Fatalf("WaitForN returned %d events", len(got))
	}
	last := rec.WaitForEvent(t, pubsubtest.Matches("n", 49), time.Second)
	if string(last.Payload) != "49" {
		t.Errorf("WaitForEvent found %q", last.Payload)
	}
}

// fakeTB records a failure instead of ending the test, to test the
// helpers' own failure path.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

func TestRecorderWaitTimesOutWithWhatItHas(t *testing.T) {
	rec := pubsubtest.NewRecorder()
	_ = rec.Emit(context.Background(), pubsub.Event{ID: "only-one", Name: "n"})
	ft := &fakeTB{TB: t}
	rec.WaitForN(ft, 2, 20*time.Millisecond)
	if ft.failed == "" {
		t.Fatal("WaitForN did not fail on timeout")
	}
	if want := "1 event(s) recorded"; !strings.Contains(ft.failed, want) || !strings.Contains(ft.failed, "only-one") {
		t.Errorf("failure message %q should say %q and list the event", ft.failed, want)
	}
}

// A test of code that emits: the recorder stands in for the publisher.
func ExampleRecorder() {
	placeOrder := func(ctx context.Context, p pubsub.Publisher, id int) error {
		payload := fmt.Appendf(nil, `{"order_id":%d,"status":"placed"}`, id)
		return p.Emit(ctx, pubsub.NewEvent(ctx, "order.placed", payload))
	}

	rec := pubsubtest.NewRecorder()
	if err := placeOrder(context.Background(), rec, 7); err != nil {
		panic(err)
	}
	ev := rec.Events()[0]
	fmt.Println(pubsubtest.IsExpectedEvent(ev, "order.placed", map[string]any{"status": "placed", "order_id": 7}))
	fmt.Println(pubsubtest.IsExpectedEvent(ev, "order.placed", `{"order_id": 8, "status": "placed"}`))
	// Output:
	// true
	// false
}
