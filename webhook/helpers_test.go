package webhook_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

const wait = 10 * time.Second

// sink wraps httpsink.Sink with this package's timeout.
type sink struct{ *httpsink.Sink }

type hit = httpsink.Hit

func newSink(t *testing.T, respond func(n int, r *http.Request, w http.ResponseWriter)) sink {
	t.Helper()
	return sink{httpsink.New(t, respond)}
}

func (s sink) waitFor(t *testing.T, n int) []hit { t.Helper(); return s.WaitFor(t, n, wait) }

func (s sink) snapshot() []hit { return s.Hits() }

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
	if testing.Verbose() && cfg.Logger == nil {
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
		dls = allDeadLetters(t, h.dead)
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
	kinds    map[webhook.DeadLetterKind]int
	filter   int
	consumed []consumed
	// logged and logDropped count the delivery log's writes.
	logged, logDropped int
}

// consumed is one EventConsumed call.
type consumed struct{ matched, filteredOut int }

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
func (o *countingObserver) DeadLettered(_ string, kind webhook.DeadLetterKind) {
	o.mu.Lock()
	o.dead++
	if o.kinds == nil {
		o.kinds = map[webhook.DeadLetterKind]int{}
	}
	o.kinds[kind]++
	o.notifyLocked()
	o.mu.Unlock()
}

func (o *countingObserver) EventConsumed(matched, filteredOut int) {
	o.mu.Lock()
	o.consumed = append(o.consumed, consumed{matched, filteredOut})
	o.notifyLocked()
	o.mu.Unlock()
}

func (o *countingObserver) deadOfKind(kind webhook.DeadLetterKind) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.kinds[kind]
}

func (o *countingObserver) consumedEvents() []consumed {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]consumed(nil), o.consumed...)
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
func (o *countingObserver) AttemptsLogged(n int, err error) {
	o.mu.Lock()
	o.logged += n
	if err != nil {
		o.logDropped += n
	}
	o.notifyLocked()
	o.mu.Unlock()
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

var status = httpsink.Status

// logRecorder is a slog.Handler that keeps every record, for tests that
// read what the bridge logs.
type logRecorder struct {
	mu      sync.Mutex
	records []logLine
}

// logLine is one record: its level, message and attributes as text.
type logLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	line := logLine{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		line.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.records = append(l.records, line)
	l.mu.Unlock()
	return nil
}

// lines returns the records whose message contains part.
func (l *logRecorder) lines(part string) []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logLine
	for _, r := range l.records {
		if strings.Contains(r.msg, part) {
			out = append(out, r)
		}
	}
	return out
}

// all returns every record.
func (l *logRecorder) all() []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logLine(nil), l.records...)
}

// allDeadLetters walks every page of store.
func allDeadLetters(t *testing.T, store webhook.DeadLetterStore) []webhook.DeadLetter {
	t.Helper()
	var all []webhook.DeadLetter
	after := ""
	for {
		page, next, err := store.List(context.Background(), after, 0)
		if err != nil {
			t.Fatalf("List(%q): %v", after, err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		after = next
	}
}
