package webhook_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

const wait = 10 * time.Second

// hit is one request a sink received.
type hit struct {
	header http.Header
	body   []byte
	at     time.Time
}

// sink is an HTTP receiver that records every request and answers with
// what respond returns (200 when nil).
type sink struct {
	*httptest.Server
	mu      sync.Mutex
	hits    []hit
	changed chan struct{}
	respond func(n int, r *http.Request, w http.ResponseWriter) // n counts from 1
}

func newSink(t *testing.T, respond func(n int, r *http.Request, w http.ResponseWriter)) *sink {
	t.Helper()
	s := &sink{changed: make(chan struct{}), respond: respond}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.hits = append(s.hits, hit{header: r.Header.Clone(), body: body, at: time.Now()})
		n := len(s.hits)
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
		if s.respond != nil {
			s.respond(n, r, w)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sink) snapshot() []hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hit(nil), s.hits...)
}

// waitFor blocks until the sink has n requests and returns them.
func (s *sink) waitFor(t *testing.T, n int) []hit {
	t.Helper()
	deadline := time.After(wait)
	for {
		s.mu.Lock()
		if len(s.hits) >= n {
			h := append([]hit(nil), s.hits...)
			s.mu.Unlock()
			return h
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("sink %s got %d requests within %s, want %d", s.URL, len(s.snapshot()), wait, n)
		}
	}
}

// harness is a bridge over a memory broker.
type harness struct {
	broker *memory.Broker
	bridge *webhook.Bridge
	dead   *webhook.MemoryDeadLetters
	obs    *countingObserver
}

func newHarness(t *testing.T, cfg webhook.Config) *harness {
	t.Helper()
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "bridge", Concurrency: 16, Backoff: pubsub.ConstantBackoff(10 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{broker: broker, dead: &webhook.MemoryDeadLetters{}, obs: &countingObserver{}}
	cfg.Subscriber, cfg.Publisher, cfg.DeadLetters, cfg.Observer = sub, broker, h.dead, h.obs
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if len(cfg.Retry.Schedule) == 0 {
		cfg.Retry.Schedule = []time.Duration{20 * time.Millisecond}
		if cfg.Retry.MaxAttempts == 0 {
			cfg.Retry.MaxAttempts = 5
		}
	}
	h.bridge, err = webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); h.bridge.Run(context.Background()) }()
	t.Cleanup(func() { _ = h.bridge.Close(); <-done; _ = sub.Close() })
	return h
}

func (h *harness) emit(t *testing.T, evs ...pubsub.Event) {
	t.Helper()
	if err := h.broker.Emit(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
}

// deadLetters waits until the store holds n dead letters; the observer
// hears of each after the store has it.
func (h *harness) deadLetters(t *testing.T, n int) []webhook.DeadLetter {
	t.Helper()
	var dls []webhook.DeadLetter
	h.until(t, "dead letters", func() bool {
		dls, _ = h.dead.List(context.Background())
		return len(dls) >= n
	})
	return dls
}

// until waits for cond, checking it whenever the observer hears anything.
func (h *harness) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(wait)
	for {
		ch := h.obs.changes()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", wait, what)
		}
	}
}

type countingObserver struct {
	mu       sync.Mutex
	changed  chan struct{}
	outcomes map[string]map[webhook.Outcome]int
	retries  int
	dead     int
	filter   int
}

func (o *countingObserver) Delivery(sub string, out webhook.Outcome, _ int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.outcomes == nil {
		o.outcomes = map[string]map[webhook.Outcome]int{}
	}
	if o.outcomes[sub] == nil {
		o.outcomes[sub] = map[webhook.Outcome]int{}
	}
	o.outcomes[sub][out]++
	o.notifyLocked()
}
func (o *countingObserver) RetryScheduled(string, int, time.Duration) {
	o.mu.Lock()
	o.retries++
	o.notifyLocked()
	o.mu.Unlock()
}
func (o *countingObserver) DeadLettered(string) {
	o.mu.Lock()
	o.dead++
	o.notifyLocked()
	o.mu.Unlock()
}

func (o *countingObserver) notifyLocked() {
	if o.changed != nil {
		close(o.changed)
		o.changed = nil
	}
}

// changes returns a channel closed at the next thing the observer hears.
func (o *countingObserver) changes() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.changed == nil {
		o.changed = make(chan struct{})
	}
	return o.changed
}
func (o *countingObserver) FilterFailed(string) {
	o.mu.Lock()
	o.filter++
	o.notifyLocked()
	o.mu.Unlock()
}

func (o *countingObserver) count(sub string, out webhook.Outcome) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.outcomes[sub][out]
}

func (o *countingObserver) filterFailures() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.filter
}

func status(code int) func(int, *http.Request, http.ResponseWriter) {
	return func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(code) }
}
