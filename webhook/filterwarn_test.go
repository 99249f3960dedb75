package webhook

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
)

// A filter that keeps failing logs one line per subscription per minute,
// the next saying how many it kept quiet; every failure is counted.
func TestFilterWarningsAreRateLimited(t *testing.T) {
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	rec := newRecorder()
	subs := []Subscription{
		{ID: "typed", Topic: "t", URL: "http://127.0.0.1:1", Filter: `data.n > "x"`},
		{ID: "other", Topic: "*", URL: "http://127.0.0.1:1", Filter: `data.m startsWith "a"`},
		{ID: "missing", Topic: "t", URL: "http://127.0.0.1:1", Filter: `data.absent > 100`},
	}
	b, err := New(Config{Subscriber: sub, Publisher: broker, Observer: rec, Logger: slog.New(rec), Subscriptions: subs})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	b.filterWarns.now = func() time.Time { return now }
	ev := pubsub.NewEvent(context.Background(), "t", []byte(`{"n":1,"m":2}`))
	run := func(times int) {
		for range times {
			if routes, out := b.match(b.table.Load(), ev); len(routes) != 0 || out != 3 {
				t.Fatalf("match = %d routes, %d filtered out; want 0 and 3", len(routes), out)
			}
		}
	}
	lines := func() map[string][]string { // subscription: its "suppressed" counts
		rec.mu.Lock()
		defer rec.mu.Unlock()
		out := map[string][]string{}
		for i, m := range rec.messages {
			if strings.Contains(m, "filter failed") {
				out[rec.attrs[i]["subscription"]] = append(out[rec.attrs[i]["subscription"]], rec.attrs[i]["suppressed"])
			}
		}
		return out
	}
	check := func(when string, want map[string][]string, failures int) {
		t.Helper()
		got := lines()
		for _, id := range []string{"typed", "other", "missing"} {
			if strings.Join(got[id], ",") != strings.Join(want[id], ",") {
				t.Errorf("%s: %s logged lines with suppressed=%v, want %v", when, id, got[id], want[id])
			}
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.filters != failures {
			t.Errorf("%s: %d failures counted, want %d", when, rec.filters, failures)
		}
	}

	run(100)
	check("100 failures at once", map[string][]string{"typed": {"0"}, "other": {"0"}}, 200)
	now = now.Add(59 * time.Second)
	run(10)
	check("59s later", map[string][]string{"typed": {"0"}, "other": {"0"}}, 220)
	now = now.Add(2 * time.Second)
	run(1)
	check("a minute on", map[string][]string{"typed": {"0", "109"}, "other": {"0", "109"}}, 222)

	// A subscription set anew starts afresh; one removed is forgotten.
	if err := b.SetSubscriptions(subs[:1]); err != nil {
		t.Fatal(err)
	}
	b.filterWarns.mu.Lock()
	_, kept := b.filterWarns.keys["typed"]
	_, forgotten := b.filterWarns.keys["other"]
	b.filterWarns.mu.Unlock()
	if !kept || forgotten {
		t.Errorf("after SetSubscriptions: typed kept %v, other kept %v; want only the subscriptions in force", kept, forgotten)
	}
}
