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

// deadScript copies an entry to the dead-letter stream and, only once
// that write succeeded, acknowledges it. KEYS are the dead-letter stream
// and the stream; ARGV the group, the entry ID, the MAXLEN (0: none) and
// the fields. A refused write (a key of the wrong type, no memory) leaves
// the entry pending and returns Redis's error.
var deadScript = goredis.NewScript(`
local args = {'XADD', KEYS[1]}
if tonumber(ARGV[3]) > 0 then
  args = {'XADD', KEYS[1], 'MAXLEN', '~', ARGV[3]}
end
args[#args + 1] = '*'
for i = 4, #ARGV do args[#args + 1] = ARGV[i] end
local added = redis.pcall(unpack(args))
if type(added) == 'table' and added.err then return added end
redis.pcall('XACK', KEYS[2], ARGV[1], ARGV[2])
return 1
`)

// deadLetter copies the entry to the stream's dead-letter stream with the
// reason and acknowledges it, atomically, then tells the ErrorHandler.
// Should the write fail, the entry stays held and pending, and the write
// is tried again in the background after a pause, with the same reason,
// for as long as the run lasts (a stopped run leaves it pending for the
// next start).
func (r *run) deadLetter(j job, ev pubsub.Event, reason error) {
	args := make([]any, 0, 2*len(j.msg.Values)+13)
	args = append(args, r.s.cfg.Group, j.msg.ID, max(r.s.cfg.DeadMaxLen, 0))
	for k, v := range j.msg.Values {
		args = append(args, k, v)
	}
	args = append(args,
		fieldDeadReason, reason.Error(),
		fieldDeadGroup, r.s.cfg.Group,
		fieldDeadEntry, j.msg.ID,
		fieldDeadAttempts, strconv.FormatInt(j.deliveries, 10),
		fieldDeadAt, time.Now().UTC().Format(time.RFC3339Nano),
	)
	if r.writeDead(j, ev, reason, args, 1) {
		return
	}
	r.retries.Add(1)
	go func() {
		defer r.retries.Done()
		for tries := 2; ; tries++ {
			if !r.pause(min(time.Duration(tries)*200*time.Millisecond, 5*time.Second)) {
				r.held.release(j.stream, j.msg.ID)
				return
			}
			if r.writeDead(j, ev, reason, args, tries) {
				return
			}
		}
	}()
}

// writeDead runs deadScript once; it reports whether the dead letter was
// written.
func (r *run) writeDead(j job, ev pubsub.Event, reason error, args []any, try int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := deadScript.Run(ctx, r.s.client, []string{DeadKey(j.stream), j.stream}, args...).Err()
	cancel()
	if err != nil {
		r.eh(r.ctx, fmt.Errorf("redis: dead-lettering entry %s of stream %q failed (try %d; it stays pending and is tried again): %w", j.msg.ID, j.stream, try, err), &ev)
		return false
	}
	r.settle(j.stream, j.msg.ID)
	r.s.tracer.DeadLetter("redis", DeadKey(j.stream), ev, traceOf(j.msg.Values), reason)
	r.eh(r.ctx, reason, &ev)
	return true
}
