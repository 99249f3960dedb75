package webhook

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// The attemptRecorder's bounds: how many attempts wait to be written at most
// (deliveries wait when it is full), how many one write takes, how long
// a failing write is retried before its batch is dropped, and how long
// Close waits for the last writes.
const (
	recordQueue      = 8192
	recordBatch      = 512
	recordRetryFor   = 10 * time.Second
	recordCloseBound = 5 * time.Second
)

// LogObserver is an [Observer] that is also told how the delivery log's
// writes go. The bridge checks its Observer for it.
type LogObserver interface {
	// AttemptsLogged reports n attempts written to the log, or, with an
	// error, dropped after the log refused them for a while.
	AttemptsLogged(n int, err error)
}

// logItem is an attempt on its way to the log, with its event.
type logItem struct {
	a  Attempt
	ev *pubsub.Event
}

// attemptRecorder writes attempts to an AttemptLog in batches, from one
// goroutine, so that deliveries never wait on the log's I/O unless it
// falls recordQueue behind.
type attemptRecorder struct {
	log    AttemptLog  // nil: none
	health HealthStore // nil: none
	logger *slog.Logger
	obs    LogObserver // nil: none
	// after is called with each batch once written, from the recorder's
	// goroutine (the bridge checks for subscriptions to disable).
	after func(samples []HealthSample)
	ch    chan logItem
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
	// abort is done recordCloseBound after close is called: every write
	// in progress then gives up, and what is still queued is dropped.
	abort       context.Context
	cancelAbort context.CancelFunc
	// closing is closed when the bridge starts closing: from then on a
	// delivery no longer waits for room in a full queue, and its attempt
	// is dropped (counted in closeDrops, reported by close).
	closing     chan struct{}
	closingOnce sync.Once
	closeDrops  atomic.Int64
	// progress tells flush how far the queue has been handled.
	progress progress
}

// errRecorderClosed is what the attempts still queued when the close bound
// ran out are dropped with.
var errRecorderClosed = errors.New("webhook: not written within the shutdown bound")

func newAttemptRecorder(log AttemptLog, health HealthStore, logger *slog.Logger, obs Observer, after func([]HealthSample)) *attemptRecorder {
	r := &attemptRecorder{log: log, health: health, logger: logger, after: after,
		ch: make(chan logItem, recordQueue), quit: make(chan struct{}), done: make(chan struct{}), closing: make(chan struct{}),
		progress: progress{moved: make(chan struct{})}}
	r.abort, r.cancelAbort = context.WithCancel(context.Background())
	r.obs, _ = obs.(LogObserver)
	go r.run()
	return r
}

// add queues an attempt; it waits while the queue is full, unless the
// attemptRecorder is closing: then the attempt is dropped, so that a log
// that hangs does not hold the deliveries Close waits for.
func (r *attemptRecorder) add(it logItem) {
	r.progress.queued.Add(1)
	select {
	case r.ch <- it:
		return
	default:
	}
	select {
	case r.ch <- it:
	case <-r.closing:
		r.closeDrops.Add(1)
		r.progress.handled(1)
	}
}

// beginClose stops deliveries from waiting for room in the queue; the
// bridge calls it before it waits for them. It is safe to call more than
// once.
func (r *attemptRecorder) beginClose() {
	r.closingOnce.Do(func() { close(r.closing) })
}

func (r *attemptRecorder) run() {
	defer close(r.done)
	batch := make([]logItem, 0, recordBatch)
	for {
		select {
		case it := <-r.ch:
			batch = append(batch[:0], it)
		case <-r.quit:
			r.drain(batch[:0])
			return
		}
	fill:
		for len(batch) < recordBatch {
			select {
			case it := <-r.ch:
				batch = append(batch, it)
			default:
				break fill
			}
		}
		r.write(batch, r.quit)
		r.progress.handled(len(batch))
	}
}

// drain writes what is queued when Close is called, within
// recordCloseBound; what is left when the bound runs out is dropped,
// logged and counted.
func (r *attemptRecorder) drain(batch []logItem) {
	for {
	fill:
		for len(batch) < recordBatch {
			select {
			case it := <-r.ch:
				batch = append(batch, it)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			return
		}
		select {
		case <-r.abort.Done():
			r.dropQueued(len(batch))
			return
		default:
		}
		r.write(batch, r.abort.Done())
		r.progress.handled(len(batch))
		batch = batch[:0]
	}
}

// dropQueued drops, with a warning and a count, n attempts taken from the
// queue and every attempt still in it.
func (r *attemptRecorder) dropQueued(n int) {
	for more := true; more; {
		select {
		case <-r.ch:
			n++
		default:
			more = false
		}
	}
	r.progress.handled(n)
	r.logger.Warn("webhook: delivery log: attempts still queued at shutdown not written within the bound, dropped",
		"attempts", n, "bound", recordCloseBound)
	if r.obs != nil {
		r.obs.AttemptsLogged(n, errRecorderClosed)
	}
}

// write records a batch in the log and the health store, retrying a
// failing write with a growing pause for recordRetryFor (or until stop),
// then dropping it with a warning.
func (r *attemptRecorder) write(items []logItem, stop <-chan struct{}) {
	var samples []HealthSample
	if r.health != nil {
		samples = healthSamples(items)
		if len(samples) > 0 {
			if err := r.retry(stop, func(ctx context.Context) error { return r.health.Observe(ctx, samples) }); err != nil {
				r.logger.Warn("webhook: health store refused a batch, dropped", "samples", len(samples), "err", err)
			} else if r.after != nil {
				r.after(samples)
			}
		}
	}
	if r.log == nil {
		return
	}
	var b AttemptBatch
	seen := map[pubsub.ID]bool{}
	for _, it := range items {
		b.Attempts = append(b.Attempts, it.a)
		if it.ev != nil && !seen[it.ev.ID] {
			seen[it.ev.ID] = true
			b.Events = append(b.Events, *it.ev)
		}
	}
	err := r.retry(stop, func(ctx context.Context) error { return r.log.Record(ctx, b) })
	if err != nil {
		r.logger.Warn("webhook: delivery log refused a batch, dropped", "attempts", len(items), "err", err)
	}
	if r.obs != nil {
		r.obs.AttemptsLogged(len(items), err)
	}
}

// retry calls write until it succeeds, pausing longer each time, for
// recordRetryFor or until stop (then once more), each call given up
// when the close bound runs out; it returns the last error.
func (r *attemptRecorder) retry(stop <-chan struct{}, write func(context.Context) error) error {
	wait, deadline := 50*time.Millisecond, time.Now().Add(recordRetryFor)
	for {
		ctx, cancel := context.WithTimeout(r.abort, recordRetryFor)
		err := write(ctx)
		cancel()
		if err == nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-time.After(wait):
		case <-stop:
			deadline = time.Now() // one last try
		}
		wait = min(2*wait, time.Second)
	}
}

// healthSamples are the attempts of items that count for health: sent
// ones, and those a rate limit held back.
func healthSamples(items []logItem) []HealthSample {
	var out []HealthSample
	for i := range items {
		a := &items[i].a
		s := HealthSample{SubscriptionID: a.SubscriptionID, At: a.At.Add(a.Duration), Status: a.Status, Took: a.Duration}
		switch {
		case a.Outcome == RateLimited:
			s.Kind = Limited
		case a.Attempt == 0: // nothing was sent
			continue
		case a.Outcome == Delivered:
			s.Kind = Succeeded
		default: // failed, timed out, or dead-lettered after an attempt
			s.Kind, s.Error = FailedSample, a.Error
		}
		out = append(out, s)
	}
	return out
}

// close stops taking attempts, writes those queued (bounded by
// recordCloseBound) and returns when done. It is safe to call more than
// once.
func (r *attemptRecorder) close() {
	r.beginClose()
	r.once.Do(func() {
		close(r.quit)
		t := time.AfterFunc(recordCloseBound, r.cancelAbort)
		<-r.done
		t.Stop()
		r.cancelAbort()
		if n := int(r.closeDrops.Load()); n > 0 {
			r.logger.Warn("webhook: delivery log: attempts made while closing found the queue full, dropped", "attempts", n)
			if r.obs != nil {
				r.obs.AttemptsLogged(n, errRecorderClosed)
			}
		}
	})
	<-r.done
}

// record queues an attempt of rt's delivery of ev for the delivery log
// and the health store, when there are; res is what the attempt came to (its zero value
// when nothing was sent).
func (b *Bridge) record(rt *route, subID string, ev pubsub.Event, attempt int, outcome Outcome, res result, reason string) {
	if b.rec != nil {
		b.recordAttempt(rt, subID, ev, attempt, outcome, res, reason)
	}
}

// recordAttempt is record's work, apart so that the event it keeps a
// pointer to is moved to the heap only when there is a log to keep it.
func (b *Bridge) recordAttempt(rt *route, subID string, ev pubsub.Event, attempt int, outcome Outcome, res result, reason string) {
	a := Attempt{
		EventID: ev.ID, EventName: ev.Name, SubscriptionID: subID, Outcome: outcome,
		At: res.at, Duration: res.took, Status: res.status, Error: reason,
		RequestHeaders: res.reqHeader, ResponseHeaders: res.respHeader,
		ResponseBody: res.body, ResponseBodyTruncated: res.truncated,
	}
	if a.At.IsZero() {
		a.At, a.Status = time.Now(), 0 // nothing was sent now
	} else {
		a.Attempt = attempt // sent
	}
	if a.Error == "" && outcome != Delivered {
		a.Error = res.describe()
	}
	if rt != nil {
		a.URL = redactURL(rt.sub.URL)
	}
	b.rec.add(logItem{a: a, ev: &ev})
}

// redactURL is u with its user information redacted.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	if p.User != nil {
		p.User = url.User("xxxxx") // a user name may be a token too
	}
	return p.String()
}

// loggedHeaders returns the request's headers for the log: values of
// headers the subscription sets are redacted, as they may hold
// credentials.
func loggedHeaders(h http.Header, set map[string]string) http.Header {
	if len(set) == 0 {
		return h
	}
	out := make(http.Header, len(h))
	for k, v := range h {
		out[k] = v
	}
	for k := range set {
		out[http.CanonicalHeaderKey(k)] = []string{"[redacted]"}
	}
	return out
}
