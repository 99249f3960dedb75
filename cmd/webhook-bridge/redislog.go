package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// redisLog carries go-redis's own log lines into the bridge's log. It
// writes them at debug, not warn: each says something that also comes back
// as an error from the call that met it (a dial that failed, a pool that
// gave up), and the bridge reports those errors itself, as one line at
// start, on /readyz, in the consumer's error log and as a lag of -1. At
// warn every report would come twice, the second time with go-redis's
// wording, and an unreachable Redis would add a line per dial attempt.
// log_level: debug shows them.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	l.log.DebugContext(ctx, "go-redis: "+strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}

// routeRedisLog sends go-redis's log lines, which it otherwise prints to
// standard error on its own, to log. go-redis keeps one logger for the
// whole process, so this is for main alone.
func routeRedisLog(log *slog.Logger) { goredis.SetLogger(redisLog{log: log}) }
