package redis

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// MoveDueOnce runs the delayed mover's script once on stream, as a
// subscriber's poll does, looking at up to batch due members. It returns
// how many it moved into the stream, and the reasons of those it
// dead-lettered and of those it left in the set.
func MoveDueOnce(ctx context.Context, client goredis.Scripter, stream string, batch int, deadMaxLen int64) (moved int, dead, stuck []string, err error) {
	res, err := moveDueOnce(ctx, client, stream, time.Now(), batch, 0, deadMaxLen)
	for _, m := range res.dead {
		dead = append(dead, m.reason)
	}
	for _, m := range res.stuck {
		stuck = append(stuck, m.reason)
	}
	return res.moved, dead, stuck, err
}

// ForgetConsumers runs the script that removes idle consumers with
// nothing pending once, on names of group on stream, as a subscriber's
// look does after reading XINFO CONSUMERS; leases are the lease keys to
// check, one per name. It returns the script's word for each name.
func ForgetConsumers(ctx context.Context, client goredis.Scripter, stream, group string, idle time.Duration, leases []string, names ...string) ([]string, error) {
	keys := append([]string{stream}, leases...)
	args := []any{group, idle.Milliseconds(), len(leases) / max(len(names), 1), "1"}
	for _, n := range names {
		args = append(args, n)
	}
	return forgetScript.Run(ctx, client, keys, args...).StringSlice()
}
