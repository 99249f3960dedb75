package memory

import (
	"container/heap"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"go.opentelemetry.io/otel/trace"
)

// scheduler emits delayed events when they are due, from one goroutine
// that starts with the first scheduled event.
type scheduler struct {
	b *Broker

	mu      sync.Mutex
	items   schedHeap
	seq     uint64
	wake    chan struct{}
	started bool
	wg      sync.WaitGroup
}

type schedItem struct {
	at     time.Time
	seq    uint64 // keeps emit order among events due at the same time
	events []pubsub.Event
	traces []*trace.SpanContext
}

func newScheduler(b *Broker) *scheduler {
	return &scheduler{b: b, wake: make(chan struct{}, 1)}
}

func (s *scheduler) add(at time.Time, events []pubsub.Event, traces []*trace.SpanContext) {
	s.mu.Lock()
	s.seq++
	heap.Push(&s.items, schedItem{at: at, seq: s.seq, events: events, traces: traces})
	if !s.started {
		s.started = true
		s.wg.Add(1)
		go s.run()
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *scheduler) run() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var due []schedItem
		now := time.Now()
		for len(s.items) > 0 && !s.items[0].at.After(now) {
			due = append(due, heap.Pop(&s.items).(schedItem))
		}
		next := time.Hour
		if len(s.items) > 0 {
			next = s.items[0].at.Sub(now)
		}
		s.mu.Unlock()

		for _, it := range due {
			if err := s.b.deliver(s.b.life, it.events, it.traces); err != nil {
				return // the broker is closing
			}
		}
		timer.Reset(next)
		select {
		case <-timer.C:
		case <-s.wake:
		case <-s.b.life.Done():
			return
		}
	}
}

// stop waits for the scheduler's goroutine; the broker's life is already
// over, which ends it.
func (s *scheduler) stop() { s.wg.Wait() }

type schedHeap []schedItem

func (h schedHeap) Len() int { return len(h) }
func (h schedHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h schedHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *schedHeap) Push(x any)   { *h = append(*h, x.(schedItem)) }
func (h *schedHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
