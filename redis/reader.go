package redis

import (
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// readerGroups splits the streams among readers. A reader holds a
// pooled connection while it blocks, so on one server every stream is
// read by one reader in one XREADGROUP (however many partitions, one
// connection); on a Cluster (or Ring) each stream has a reader of its
// own, as streams in different slots cannot be read in one command.
func (r *run) readerGroups() [][]string {
	switch r.s.client.(type) {
	case *goredis.ClusterClient, *goredis.Ring:
		groups := make([][]string, len(r.s.cfg.Streams))
		for i, s := range r.s.cfg.Streams {
			groups[i] = []string{s}
		}
		return groups
	}
	return [][]string{r.s.cfg.Streams}
}

// read delivers this consumer's own pending entries of its streams first,
// then new ones; it reads a stream's pending list again after a failed
// read, and whenever the keeper finds entries there that the run does not
// hold (a read whose reply was lost, a handler abandoned).
func (r *run) read(streams []string) {
	defer r.loops.Done()
	cfg := r.s.cfg
	failures := 0
	own := make(map[string]bool, len(streams))
	args := make([]string, 0, 2*len(streams))
	args = append(args, streams...)
	for range streams {
		args = append(args, ">")
	}
	for _, stream := range streams {
		own[stream] = true
		// Make the consumer known to the group at once, as operators
		// expect to see it in XINFO CONSUMERS (a blocked XREADGROUP
		// does not).
		_ = r.s.client.XGroupCreateConsumer(r.life, stream, cfg.Group, cfg.Consumer).Err()
	}
	for r.life.Err() == nil {
		failed := false
		for _, stream := range streams {
			select {
			case <-r.rescan[stream]:
				own[stream] = true
			default:
			}
			if !own[stream] {
				continue
			}
			if err := r.readOwn(stream); err != nil {
				if r.life.Err() != nil {
					return
				}
				failures++
				r.recover(stream, err, failures)
				failed = true
				continue
			}
			own[stream] = false
		}
		if failed {
			continue
		}
		sent := time.Now()
		res, err := r.s.client.XReadGroup(r.life, &goredis.XReadGroupArgs{
			Group: cfg.Group, Consumer: cfg.Consumer, Streams: args,
			Count: int64(cfg.BatchSize), Block: cfg.Block,
		}).Result()
		switch {
		case errors.Is(err, goredis.Nil): // nothing new within Block
			failures = 0
			continue
		case err != nil:
			if r.life.Err() != nil {
				return
			}
			failures++
			r.recoverAll(streams, err, failures)
			// A read whose reply was lost left its entries pending with
			// this consumer: read the pending lists again.
			for _, stream := range streams {
				own[stream] = true
			}
			continue
		}
		failures = 0
		if !r.hold(res, sent) {
			return
		}
	}
}

// hold takes hold of everything a read returned at once, before handing
// any of it out (so the keeper renews what waits, and never mistakes it
// for a lost reply's), then hands it to the workers; it reports false
// when the run is stopping.
func (r *run) hold(res []goredis.XStream, sent time.Time) bool {
	for i, xs := range res {
		if len(xs.Messages) == 0 {
			continue
		}
		r.s.pos.advance(xs.Stream, xs.Messages[len(xs.Messages)-1].ID)
		fresh := xs.Messages[:0]
		for _, m := range xs.Messages {
			if r.held.take(xs.Stream, m.ID, sent, 1) {
				fresh = append(fresh, m)
			}
		}
		res[i].Messages = fresh
	}
	for i, xs := range res {
		for k, m := range xs.Messages {
			if r.dispatch(job{stream: xs.Stream, msg: m, deliveries: 1}) {
				continue
			}
			for _, rest := range xs.Messages[k+1:] {
				r.held.release(xs.Stream, rest.ID)
			}
			for _, later := range res[i+1:] {
				for _, rest := range later.Messages {
					r.held.release(later.Stream, rest.ID)
				}
			}
			return false
		}
	}
	return true
}

// readOwn claims back, page by page, the entries pending with this
// consumer that the run does not hold (left by an earlier process under
// the same name, by a lost reply, or by an abandoned handler), each
// counted as one more delivery, and hands them to the workers.
func (r *run) readOwn(stream string) error {
	cfg := r.s.cfg
	start := "-"
	for r.life.Err() == nil {
		pend, err := r.s.client.XPendingExt(r.life, &goredis.XPendingExtArgs{
			Stream: stream, Group: cfg.Group, Start: start, End: "+", Count: int64(cfg.BatchSize), Consumer: cfg.Consumer,
		}).Result()
		if err != nil {
			return err
		}
		var want []heldEntry
		for _, p := range pend {
			if !r.held.has(stream, p.ID) {
				want = append(want, heldEntry{p.ID, p.RetryCount})
			}
		}
		if len(want) > 0 {
			sent := time.Now()
			got, err := r.claimEntries(r.life, stream, "own", want)
			if err != nil {
				return err
			}
			ours := got[:0]
			for _, c := range got {
				switch c.status {
				case "ours":
					ours = append(ours, c)
				case "gone":
					r.reportDeleted(stream, c.msg.ID)
				}
			}
			if !r.dispatchAll(stream, ours, sent) {
				return nil
			}
		}
		if len(pend) < cfg.BatchSize {
			return nil
		}
		start = nextID(pend[len(pend)-1].ID)
	}
	return nil
}
