package redis

import (
	"context"
	"fmt"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
)

// coalescer turns concurrent single-event Emits into shared pipelines: a
// few writers each take every request waiting and send them in one round
// trip, so throughput grows with the number of callers instead of the
// number of connections.
type coalescer struct {
	p       *Publisher
	queue   chan *emitReq
	start   sync.Once
	writers sync.WaitGroup
	reqs    sync.Pool
}

type emitReq struct {
	ev     pubsub.Event
	stream string
	tc     traceFields
	done   chan error // buffered: a writer never waits for the caller
}

const (
	coalesceWriters  = 4
	coalesceMaxBatch = 512
)

func newCoalescer(p *Publisher) *coalescer {
	return &coalescer{
		p:     p,
		queue: make(chan *emitReq, coalesceMaxBatch),
		reqs:  sync.Pool{New: func() any { return &emitReq{done: make(chan error, 1)} }},
	}
}

// emit queues one event and waits for its write. The caller holds the
// publisher's lock for reading, so the queue is open. When ctx is done
// first, it returns ctx.Err() and the event may still be written.
func (c *coalescer) emit(ctx context.Context, ev pubsub.Event, stream string, tc traceFields) error {
	c.start.Do(func() {
		c.writers.Add(coalesceWriters)
		for range coalesceWriters {
			go c.write()
		}
	})
	req := c.reqs.Get().(*emitReq)
	req.ev, req.stream, req.tc = ev, stream, tc
	select {
	case c.queue <- req:
	case <-ctx.Done():
		c.reqs.Put(req)
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		req.ev = pubsub.Event{}
		c.reqs.Put(req)
		return err
	case <-ctx.Done():
		return ctx.Err() // req stays with the writer, which will not reuse it
	}
}

func (c *coalescer) write() {
	defer c.writers.Done()
	batch := make([]*emitReq, 0, coalesceMaxBatch)
	cmds := make([]*goredis.Cmd, 0, coalesceMaxBatch)
	for first := range c.queue {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < coalesceMaxBatch {
			select {
			case req, ok := <-c.queue:
				if !ok {
					break drain
				}
				batch = append(batch, req)
			default:
				break drain
			}
		}
		// Requests carry no common context; the client's own timeouts
		// bound the round trip.
		ctx := context.Background()
		pipe := c.p.client.Pipeline()
		cmds = cmds[:0]
		for _, req := range batch {
			cmds = append(cmds, pipe.Do(ctx, c.p.xadd(req.stream, req.ev, req.tc)...))
		}
		wait := c.p.waitCmd(ctx, pipe)
		_, _ = pipe.Exec(ctx)
		werr := c.p.waitErr(wait)
		for i, req := range batch {
			var err error
			if cerr := cmds[i].Err(); cerr != nil {
				err = fmt.Errorf("redis: event %s not written to stream %q: %w", req.ev.ID, req.stream, cerr)
			} else if werr != nil {
				err = fmt.Errorf("redis: event %s written to stream %q: %w", req.ev.ID, req.stream, werr)
			}
			req.done <- err
		}
	}
}

// stop ends the writers once the queue is empty; no emit may run.
func (c *coalescer) stop() {
	close(c.queue)
	c.writers.Wait()
}
