package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
)

// The fields a dead letter adds to the entry it copies.
const (
	fieldDeadReason   = "dead_reason"
	fieldDeadGroup    = "dead_group"
	fieldDeadEntry    = "dead_entry_id"
	fieldDeadAttempts = "dead_attempts"
	fieldDeadAt       = "dead_at"
)

// deadLetter copies the entry to the stream's dead-letter stream with the
// reason and acknowledges it, in one transaction, then tells the
// ErrorHandler. Should the write fail, the entry stays pending and is
// tried again later.
func (r *run) deadLetter(j job, ev pubsub.Event, reason error) {
	vals := make([]any, 0, 2*len(j.msg.Values)+10)
	for k, v := range j.msg.Values {
		vals = append(vals, k, v)
	}
	vals = append(vals,
		fieldDeadReason, reason.Error(),
		fieldDeadGroup, r.s.cfg.Group,
		fieldDeadEntry, j.msg.ID,
		fieldDeadAttempts, strconv.FormatInt(j.deliveries, 10),
		fieldDeadAt, time.Now().UTC().Format(time.RFC3339Nano),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := r.s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.XAdd(ctx, r.s.deadArgs(j.stream, vals))
		p.XAck(ctx, j.stream, r.s.cfg.Group, j.msg.ID)
		return nil
	})
	r.held.release(j.stream, j.msg.ID)
	if err != nil && !isNoGroup(err) {
		r.eh(r.ctx, fmt.Errorf("redis: dead-lettering entry %s of stream %q (left pending): %w", j.msg.ID, j.stream, err), &ev)
		return
	}
	r.eh(r.ctx, reason, &ev)
}

// deadArgs is the XADD of a dead letter of stream, trimmed to about
// DeadMaxLen entries.
func (s *Subscriber) deadArgs(stream string, vals []any) *goredis.XAddArgs {
	a := &goredis.XAddArgs{Stream: DeadKey(stream), Values: vals}
	if s.cfg.DeadMaxLen > 0 {
		a.MaxLen, a.Approx = s.cfg.DeadMaxLen, true
	}
	return a
}
