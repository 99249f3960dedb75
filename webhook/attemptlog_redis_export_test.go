package webhook

import "time"

// RedisLogSetClock sets the clock a RedisAttemptLog reads, for tests.
func RedisLogSetClock(l *RedisAttemptLog, now func() time.Time) { l.now = now }
