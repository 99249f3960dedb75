package webhook

import "time"

// The dispatcher's workers: at most MaxInFlight goroutines (more while
// some are stuck at a hanging endpoint) that take one delivery at a time
// from the endpoints with work, in turn (see dispatch.go). They start as
// work comes, and wait a while for more before they stop.

// workerIdle is how long a worker that found nothing to start waits for
// more before it stops: work that comes steadily is taken by the same
// goroutines, whose stacks have grown to what a delivery needs, rather
// than by a new one per delivery.
const workerIdle = time.Second

// kick starts the workers that may run now: called as events check on
// their deliveries, so that work waiting behind endpoints that stopped
// answering gets workers.
func (d *dispatcher) kick(now time.Time) {
	d.mu.Lock()
	wake, start := d.spawnable(now, len(d.ready))
	d.mu.Unlock()
	d.startWorkers(wake, start)
}

// startWorkers wakes wake idle workers and starts start new ones, as
// spawnable counted them; d.mu is not held.
func (d *dispatcher) startWorkers(wake, start int) {
	for range wake {
		d.wake <- struct{}{} // never blocks: fewer tokens than workers
	}
	for range start {
		go d.work()
	}
}

// spawnable counts up to want idle workers as woken and, beyond them, as
// many more workers as running as may run (workerLimit): the caller
// wakes the first number and starts the second (startWorkers). Workers
// that find nothing to start wait a while for more, then stop. d.mu is
// held.
func (d *dispatcher) spawnable(now time.Time, want int) (wake, start int) {
	if len(d.ready) == 0 {
		return 0, 0
	}
	wake = min(d.idle, want)
	d.idle -= wake
	limit := d.maxWorkers
	if d.workers >= limit {
		limit = d.workerLimit(now)
	}
	start = max(min(limit-d.workers, want-wake), 0)
	d.workers += start
	d.spawned += start
	return wake, start
}

// close stops the idle workers, and those that run once they find
// nothing to start. Safe to call more than once.
func (d *dispatcher) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		close(d.quit)
	}
}

// workerLimit is how many workers may run: maxWorkers, plus one for each
// delivery stuck at an endpoint that answered nothing for a window while
// it had deliveries in flight (a hanging endpoint's), so that these do not
// starve the others, up to twice maxWorkers. d.mu is held.
func (d *dispatcher) workerLimit(now time.Time) int {
	stuck := 0
	for _, ep := range d.busy {
		if now.Sub(ep.progress) > d.window {
			stuck += ep.active
		}
	}
	return min(d.maxWorkers+stuck, 2*d.maxWorkers)
}

// work runs jobs until none may start, or until more workers run than
// may (those stuck at a hanging endpoint came free); it then waits up to
// workerIdle to be woken for more, when no more than maxWorkers run.
func (d *dispatcher) work() {
	var idle *time.Timer
	d.mu.Lock()
	for {
		var j *job
		if d.workers <= d.maxWorkers || d.workers <= d.workerLimit(time.Now()) {
			j = d.next()
		}
		if j == nil {
			if d.closed || d.workers > d.maxWorkers || !d.waitForWork(&idle) {
				d.workers--
				d.mu.Unlock()
				if idle != nil {
					idle.Stop()
				}
				return
			}
			continue
		}
		d.mu.Unlock()
		began := time.Now()
		j.run(j)
		now := time.Now()
		d.mu.Lock()
		ep := j.ep
		ep.active--
		ep.progress = now
		if ep.active == 0 {
			d.notBusy(ep)
		}
		ep.pace.answered(now, now.Sub(began), d.window)
		d.pace.answered(now, now.Sub(began), d.window)
		if ep.queuedN > 0 && !ep.ready {
			ep.ready = true
			d.ready = append(d.ready, ep)
		}
	}
}

// waitForWork waits, idle, until spawnable wakes a worker, and reports
// true; false when none was woken within workerIdle or the dispatcher
// closed (the worker is then no longer idle and stops). Woken workers
// and tokens are interchangeable: one that times out while a token is
// on its way takes it. d.mu is held, released while waiting.
func (d *dispatcher) waitForWork(timer **time.Timer) bool {
	d.idle++
	d.mu.Unlock()
	if *timer == nil {
		*timer = time.NewTimer(d.idleFor)
	} else {
		(*timer).Reset(d.idleFor)
	}
	select {
	case <-d.wake:
		d.mu.Lock()
		return true
	case <-(*timer).C:
	case <-d.quit:
	}
	d.mu.Lock()
	if d.idle > 0 {
		d.idle--
		return false
	}
	// Every idle worker was counted as woken: a token is on its way
	// for this one (sent once its waker let go of d.mu).
	d.mu.Unlock()
	<-d.wake
	d.mu.Lock()
	return true
}
