package webhook

import (
	"context"
	"sync"
	"sync/atomic"
)

// progress counts the attempts queued for the recorder and those it has
// handled (written, or dropped), so that flush can wait for the ones
// queued before it.
type progress struct {
	queued, done atomic.Int64
	mu           sync.Mutex
	moved        chan struct{} // closed, and replaced, whenever done grows
}

// handled counts n attempts handled.
func (p *progress) handled(n int) {
	p.done.Add(int64(n))
	p.mu.Lock()
	close(p.moved)
	p.moved = make(chan struct{})
	p.mu.Unlock()
}

// flush returns once every attempt queued before it was called has been
// written (or dropped), when the recorder stops, or with ctx's error.
func (r *attemptRecorder) flush(ctx context.Context) error {
	target := r.progress.queued.Load()
	for {
		r.progress.mu.Lock()
		moved := r.progress.moved
		r.progress.mu.Unlock()
		if r.progress.done.Load() >= target {
			return nil
		}
		select {
		case <-moved:
		case <-r.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
