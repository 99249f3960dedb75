package chaos

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// emitter publishes events and keeps the IDs of those whose Emit returned
// nil: the events the system owes a handling or a dead letter. An event
// whose Emit failed may or may not have been written; it is never sent
// again (a second copy would look like a duplicate handling) and it is
// not owed.
type emitter struct {
	pub *redis.Publisher

	mu       sync.Mutex
	ok       []pubsub.ID
	failed   int
	firstErr error
	seq      int
}

func newEmitter(pub *redis.Publisher) *emitter { return &emitter{pub: pub} }

// events returns n new events with numbered payloads.
func (e *emitter) events(n int) []pubsub.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	evs := make([]pubsub.Event, n)
	for i := range evs {
		e.seq++
		evs[i] = pubsub.NewEvent(context.Background(), "chaos", []byte(strconv.Itoa(e.seq)))
	}
	return evs
}

// record notes the outcome of one Emit of evs.
func (e *emitter) record(evs []pubsub.Event, err error) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.failed += len(evs)
		if e.firstErr == nil {
			e.firstErr = err
		}
		return false
	}
	for _, ev := range evs {
		e.ok = append(e.ok, ev.ID)
	}
	return true
}

// emit writes evs in one Emit, bounded by 3s.
func (e *emitter) emit(evs ...pubsub.Event) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return e.record(evs, e.pub.Emit(ctx, evs...))
}

// emitAt writes evs to become visible at at, bounded by 3s.
func (e *emitter) emitAt(at time.Time, evs ...pubsub.Event) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return e.record(evs, e.pub.EmitAt(ctx, at, evs...))
}

// emitSingles emits evs one per Emit call, all at once, so that the
// publisher's coalescing pipelines carry them.
func (e *emitter) emitSingles(evs []pubsub.Event) {
	var wg sync.WaitGroup
	for _, ev := range evs {
		wg.Go(func() { e.emit(ev) })
	}
	wg.Wait()
}

// emitOK emits n events in batches of batch, each batch retried as new
// events until it is written, for at most limit in all; it reports how
// many were written.
func (e *emitter) emitOK(n, batch int, limit time.Duration) int {
	written := 0
	for deadline := time.Now().Add(limit); written < n && time.Now().Before(deadline); {
		evs := e.events(min(batch, n-written))
		if e.emit(evs...) {
			written += len(evs)
			continue
		}
		time.Sleep(20 * time.Millisecond) // a producer's retry pause, not a synchronisation
	}
	return written
}

// emitted returns the IDs written so far and how many events failed.
func (e *emitter) emitted() ([]pubsub.ID, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]pubsub.ID(nil), e.ok...), e.failed
}

// firstError returns the first error an Emit returned, if any.
func (e *emitter) firstError() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.firstErr
}

// count returns how many events were written so far.
func (e *emitter) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.ok)
}
