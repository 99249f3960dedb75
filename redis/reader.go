package redis

import (
	"errors"
	"fmt"
	"strings"
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

// readState is what a reader knows of one of its streams.
type readState struct {
	own      bool      // read this consumer's pending list first
	failures int       // in a row
	aside    time.Time // left out of reads until then, after a failure
}

// read delivers this consumer's own pending entries of its streams first,
// then new ones; it reads a stream's pending list again after a failed
// read, and whenever the keeper finds entries there that the run does not
// hold (a read whose reply was lost, a handler abandoned). A stream that
// fails on its own (its key deleted and made a string, say) is set aside
// for a growing pause, reported, and tried again, while the others are
// read on.
func (r *run) read(streams []string) {
	defer r.loops.Done()
	cfg := r.s.cfg
	state := make(map[string]*readState, len(streams))
	for _, stream := range streams {
		state[stream] = &readState{own: true}
		// Make the consumer known to the group at once, as operators
		// expect to see it in XINFO CONSUMERS (a blocked XREADGROUP
		// does not).
		_ = r.s.client.XGroupCreateConsumer(r.life, stream, cfg.Group, cfg.Consumer).Err()
	}
	active := make([]string, 0, len(streams))
	args := make([]string, 0, 2*len(streams))
	for r.life.Err() == nil {
		active = r.readable(streams, state, active[:0])
		if r.life.Err() != nil {
			return
		}
		if len(active) == 0 {
			r.pause(100 * time.Millisecond) // every stream set aside for now
			continue
		}
		args = append(args[:0], active...)
		for range active {
			args = append(args, ">")
		}
		sent := time.Now()
		res, err := r.s.client.XReadGroup(r.life, &goredis.XReadGroupArgs{
			Group: cfg.Group, Consumer: cfg.Consumer, Streams: args,
			Count: int64(cfg.BatchSize), Block: cfg.Block,
		}).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			if r.life.Err() != nil {
				return
			}
			r.readFailed(active, state, err)
			continue
		}
		for _, stream := range active {
			state[stream].failures = 0
		}
		if !r.hold(res, sent) {
			return
		}
	}
}

// readable appends to active the streams to read now, first reading the
// pending lists of those that need it.
func (r *run) readable(streams []string, state map[string]*readState, active []string) []string {
	now := time.Now()
	for _, stream := range streams {
		st := state[stream]
		if now.Before(st.aside) {
			continue
		}
		select {
		case <-r.rescan[stream]:
			st.own = true
		default:
		}
		if st.own {
			if err := r.readOwn(stream); err != nil {
				if r.life.Err() != nil {
					return active
				}
				r.streamFailed(stream, st, err)
				continue
			}
			st.own = false
		}
		active = append(active, stream)
	}
	return active
}

// readFailed handles a failed read of active. A lost reply left entries
// pending with this consumer, so every pending list is read again. A
// missing group is made again where it is missing; an error of one
// stream's own (a key of another type) sets that stream aside; anything
// else (Redis unreachable) is reported and waited out.
func (r *run) readFailed(active []string, state map[string]*readState, err error) {
	for _, stream := range active {
		state[stream].own = true
	}
	if len(active) == 1 {
		r.streamFailed(active[0], state[active[0]], err)
		return
	}
	if isNoGroup(err) {
		r.recoverAll(active, err, 1)
		return
	}
	if strings.Contains(err.Error(), "WRONGTYPE") {
		found := false
		for _, stream := range active {
			t, terr := r.s.client.Type(r.life, stream).Result()
			if terr == nil && t != "stream" && t != "none" {
				found = true
				r.streamFailed(stream, state[stream], fmt.Errorf("the key holds a %s, not a stream: %w", t, err))
			}
		}
		if found {
			return
		}
	}
	failures := 0
	for _, stream := range active {
		state[stream].failures++
		failures = max(failures, state[stream].failures)
	}
	r.recoverAll(active, err, failures)
}

// streamFailed reports a failure of one stream and sets it aside for a
// pause that grows with its failures in a row, up to 5s; a missing group
// is made again at once instead.
func (r *run) streamFailed(stream string, st *readState, err error) {
	st.own = true
	if isNoGroup(err) && r.remake(stream, err) {
		return
	}
	st.failures++
	r.eh(r.ctx, fmt.Errorf("redis: reading stream %q as group %q (left out of reads for a while): %w", stream, r.s.cfg.Group, err), nil)
	st.aside = time.Now().Add(min(time.Duration(st.failures)*100*time.Millisecond, 5*time.Second))
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
			if r.dispatch(job{stream: xs.Stream, msg: m, deliveries: 1, read: sent}) {
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
