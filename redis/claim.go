package redis

import (
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
)

// claim takes over entries left idle past ClaimIdle by other consumers
// (or by this one, when it was stalled), following XAUTOCLAIM's cursor.
func (r *run) claim() {
	defer r.loops.Done()
	for r.pause(r.s.cfg.ClaimInterval) {
		for _, stream := range r.s.cfg.Streams {
			start := "0-0"
			for {
				sent := time.Now()
				got, next, deleted, err := r.autoclaim(r.life, stream, start)
				if err != nil {
					if r.life.Err() == nil && !isNoGroup(err) {
						r.eh(r.ctx, wrapf(err, "redis: claiming idle entries of stream %q", stream), nil)
					}
					break
				}
				for _, id := range deleted {
					r.reportDeleted(stream, id)
				}
				if !r.dispatchAll(stream, got, sent) {
					return
				}
				if next == "0-0" || next == "" {
					break
				}
				start = next
			}
		}
	}
}

// reportDeleted tells the ErrorHandler of an entry deleted from the
// stream while pending, which Redis dropped from the pending list as it
// was claimed.
func (r *run) reportDeleted(stream, id string) {
	r.eh(r.ctx, fmt.Errorf("redis: entry %s of stream %q was deleted while pending; acknowledged: %w", id, stream, pubsub.ErrMalformed), nil)
}
