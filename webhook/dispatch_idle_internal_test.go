package webhook

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Workers that found nothing to start wait a while to be woken for more
// rather than stopping at once. Submitting from many goroutines while
// workers time out, are woken and time out again (an idle wait of 50µs,
// gaps around it) must start every job exactly once, never run more
// workers than MaxInFlight, and leave no worker behind once the
// dispatcher is closed.
func TestIdleWorkersAreWokenAndStop(t *testing.T) {
	const maxWorkers, perEndpoint, submitters, events = 4, 2, 8, 400
	d := newDispatcher(perEndpoint, maxWorkers, time.Second)
	d.idleFor = 50 * time.Microsecond
	eps := make([]*endpoint, 6)
	for i := range eps {
		eps[i] = &endpoint{}
	}
	var ran, running, most atomic.Int64
	seen := make([]atomic.Int32, submitters*events*3)
	run := func(j *job) {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if seen[j.index].Add(1) != 1 {
			t.Errorf("job %d started twice", j.index)
		}
		if j.index%7 == 0 {
			time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond) // a slower answer
		}
		running.Add(-1)
		ran.Add(1)
	}
	var wg sync.WaitGroup
	for s := range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range events {
				var jobs []*job
				for k := range 1 + (s+e)%3 {
					i := (s*events+e)*3 + k
					jobs = append(jobs, &job{ep: eps[rand.IntN(len(eps))], run: run, index: i})
				}
				d.submit(jobs)
				if e%5 == 0 { // a gap around the idle wait: some workers stop, some are woken
					time.Sleep(time.Duration(rand.IntN(120)) * time.Microsecond)
				}
			}
		}()
	}
	wg.Wait()
	want := int64(0)
	for s := range submitters {
		for e := range events {
			want += int64(1 + (s+e)%3)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for ran.Load() < want {
		if time.Now().After(deadline) {
			d.mu.Lock()
			t.Fatalf("%d of %d jobs ran, then none for 10s (%d workers, %d idle, %d queued, %d endpoints ready)",
				ran.Load(), want, d.workers, d.idle, d.queued, len(d.ready))
		}
		time.Sleep(time.Millisecond) // no kick: a wake-up lost shows here

	}
	if m := most.Load(); m > maxWorkers {
		t.Errorf("%d jobs ran at once, want at most %d (MaxInFlight)", m, maxWorkers)
	}
	d.close()
	for {
		d.mu.Lock()
		w, idle := d.workers, d.idle
		d.mu.Unlock()
		if w == 0 && idle == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after close, %d workers (%d idle) still there", w, idle)
		}
		time.Sleep(time.Millisecond)
	}
}

// Deliveries that come one after another, each once the one before it is
// done, are sent by the worker that sent the first: not by a new
// goroutine each, which starts with a small stack and grows it to what a
// delivery needs every time.
func TestSteadyDeliveriesReuseTheirWorker(t *testing.T) {
	d := newDispatcher(16, 64, time.Second)
	defer d.close()
	ep := &endpoint{}
	done := make(chan struct{})
	run := func(*job) { done <- struct{}{} }
	const n = 1000
	for range n {
		d.submit([]*job{{ep: ep, run: run}})
		<-done
	}
	d.mu.Lock()
	spawned := d.spawned
	d.mu.Unlock()
	// A worker may not be idle yet when the next delivery comes (it
	// signalled before it went back for more), so a few may start.
	if spawned > 8 {
		t.Errorf("%d deliveries one after another started %d workers, want a few", n, spawned)
	}
}

// An event with no deliveries to queue takes its turn and passes it on,
// even while an event larger than the queues' bound keeps them over it:
// it never waits for room it does not need.
func TestEmptySubmitPassesItsTurn(t *testing.T) {
	d := newDispatcher(1, 1, time.Second) // queueCap 16
	defer d.close()
	ep := &endpoint{}
	release := make(chan struct{})
	run := func(*job) { <-release }
	var jobs []*job
	for range 20 {
		jobs = append(jobs, &job{ep: ep, run: run})
	}
	d.submit(jobs) // goes in, the queues being empty: 19 queued, over 16
	empty := make(chan struct{})
	go func() { d.submit(nil); close(empty) }()
	select {
	case <-empty:
	case <-time.After(5 * time.Second):
		t.Fatal("an empty submit waits for room while the queues are over their bound")
	}
	close(release)
	next := make(chan struct{})
	go func() { d.submit([]*job{{ep: ep, run: func(*job) {}}}); close(next) }()
	select {
	case <-next:
	case <-time.After(5 * time.Second):
		t.Fatal("the event after the empty one never got its turn")
	}
}

// Events waiting for their turn (the queues full) queue their deliveries
// in the order they came, each woken when its turn comes.
func TestWaitingEventsQueueInTheOrderTheyCame(t *testing.T) {
	d := newDispatcher(1, 1, time.Second) // one at a time; queueCap 16
	defer d.close()
	ep := &endpoint{}
	release := make(chan struct{})
	var blockers []*job
	for range 17 {
		blockers = append(blockers, &job{ep: ep, run: func(*job) { <-release }})
	}
	d.submit(blockers) // one running, 16 queued: full
	var mu sync.Mutex
	var order []int
	const n = 100
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.submit([]*job{{ep: ep, run: func(*job) { mu.Lock(); order = append(order, i); mu.Unlock() }}})
		}()
		// The next submitter comes once this one holds its ticket.
		for {
			d.mu.Lock()
			took := d.ticket == uint64(i+2)
			d.mu.Unlock()
			if took {
				break
			}
			time.Sleep(10 * time.Microsecond) // polling the dispatcher's tickets
		}
	}
	close(release)
	wg.Wait()
	for {
		mu.Lock()
		k := len(order)
		mu.Unlock()
		if k == n {
			break
		}
		time.Sleep(time.Millisecond) // polling the deliveries started
	}
	for i, got := range order {
		if got != i {
			t.Fatalf("deliveries ran in the order %v, want the order their events came", order)
		}
	}
}
