package redis

import (
	"fmt"
	"strconv"
	"time"
)

// retryLater hands the entry to a worker again after d, claiming it back
// first (which makes Redis count one more delivery). The keeper keeps the
// entry this consumer's meanwhile. Should the run stop first, the entry
// stays pending with this consumer and the next Consume redelivers it.
func (r *run) retryLater(j job, d time.Duration) {
	r.retries.Add(1)
	go func() {
		defer r.retries.Done()
		if !r.pause(d) {
			r.held.release(j.stream, j.msg.ID)
			return
		}
		for failures := 1; ; failures++ {
			sent := time.Now()
			got, err := r.claimEntries(r.life, j.stream, "retry", []heldEntry{{j.msg.ID, j.deliveries}})
			if err == nil && len(got) == 1 {
				r.retried(j, got[0], sent)
				return
			}
			// Redis unreachable, or the group missing until the reader
			// makes it again: the entry stays in hand, and is tried again.
			if r.life.Err() == nil && !isNoGroup(err) {
				r.eh(r.ctx, fmt.Errorf("redis: claiming entry %s of stream %q for a retry: %w", j.msg.ID, j.stream, err), nil)
			}
			if !r.pause(min(time.Duration(failures)*100*time.Millisecond, 2*time.Second)) {
				r.held.release(j.stream, j.msg.ID)
				return
			}
		}
	}()
}

// retried dispatches the entry the claim script returned for a retry, or
// gives it up when it is no longer this consumer's to retry.
func (r *run) retried(j job, c claimed, sent time.Time) {
	switch c.status {
	case "ours", "forced":
		// "forced": it was pending with nobody (its group was made again
		// after it was read): it is put back into the pending list, with
		// its count, and handled.
		// The claim counted this delivery.
		j.msg, j.deliveries, j.claimed = c.msg, c.deliveries, false
		r.held.confirm(j.stream, j.msg.ID, sent, c.deliveries)
		r.dispatch(j)
		return
	case "taken":
		r.giveUp(j, "was taken over by consumer "+strconv.Quote(c.holder)+", which handles it")
	default: // "gone"
		// No longer in the stream (trimmed, XDEL, or lost by a Redis
		// restart without persistence): the run still has its fields,
		// so it is retried from that copy, counted here. Its
		// acknowledgement finds nothing to do; a stop before it
		// succeeds loses it.
		r.eh(r.ctx, fmt.Errorf("redis: entry %s of stream %q is no longer in the stream; retried from the copy in hand (a stop before it succeeds loses it)", j.msg.ID, j.stream), nil)
		j.deliveries, j.claimed = j.deliveries+1, false
		r.dispatch(j)
	}
}

func (r *run) giveUp(j job, why string) {
	r.settle(j.stream, j.msg.ID)
	r.eh(r.ctx, fmt.Errorf("redis: entry %s of stream %q %s before its retry", j.msg.ID, j.stream, why), nil)
}
