package main

// What the consumer group still has to handle in each partition: the
// refusal to start when lowered partitions would strand events, the lag
// over every event stream, and the report on drained partitions.

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/redis"
)

// checkStranded refuses to start when partitions above those the config
// reads hold events not yet delivered (or pending, or waiting to retry):
// partitions was lowered without drain_partitions. It looks at every
// partition from the first not read up to the most a config may name
// (maxPartitions), one key at a time (so it works on a Cluster). Dead letters left
// there are only warned about: they are no longer listed.
func checkStranded(ctx context.Context, client goredis.UniversalClient, cfg *Config, log *slog.Logger) error {
	from := max(cfg.DrainPartitions, 0)
	if cfg.partitioned() {
		from = max(from, cfg.Partitions)
	}
	to := maxPartitions
	var (
		streams []string
		byKey   = map[string]int{} // partition of each key
	)
	for i := from; i < to; i++ {
		s := cfg.Stream + ":" + strconv.Itoa(i)
		streams = append(streams, s)
		for _, k := range partitionKeys(s) {
			byKey[k] = i
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	exists, err := existing(ctx, client, keys)
	if err != nil {
		return fmt.Errorf("looking for events in partitions %d to %d of stream %q: %w", from, to-1, cfg.Stream, err)
	}
	if len(exists) == 0 {
		return nil
	}
	left := map[int]int64{}
	dead := map[int]int64{}
	for _, s := range streams {
		for _, k := range []string{s, retryStreamOf(s)} {
			if exists[k] {
				n, err := streamLeft(ctx, client, k, cfg.Group)
				if err != nil {
					return fmt.Errorf("looking for events in %s: %w", k, err)
				}
				left[byKey[k]] += n
			}
		}
		for _, k := range []string{redis.DelayedKey(s), redis.DelayedKey(retryStreamOf(s))} {
			if exists[k] {
				n, err := client.ZCard(ctx, k).Result()
				if err != nil {
					return fmt.Errorf("looking for delayed events in %s: %w", k, err)
				}
				left[byKey[k]] += n
			}
		}
		for _, k := range []string{deadLetterKeyOf(s), redis.DeadKey(s), redis.DeadKey(retryStreamOf(s))} {
			if exists[k] {
				n, err := client.XLen(ctx, k).Result()
				if err == nil {
					dead[byKey[k]] += n
				}
			}
		}
	}
	highest, total := -1, int64(0)
	for i, n := range left {
		if n > 0 {
			highest, total = max(highest, i), total+n
		}
	}
	if highest >= 0 {
		read := "partitions " + strconv.Itoa(cfg.Partitions)
		if cfg.DrainPartitions > 0 {
			read += ", drain_partitions " + strconv.Itoa(cfg.DrainPartitions)
		}
		return fmt.Errorf("partitions %s hold %d events not yet delivered, pending or waiting to retry, and this config (%s) reads none of them: "+
			"set drain_partitions: %d to deliver them (those partitions are read, not written), and remove it once the bridge logs that they are empty",
			partitionList(left), total, read, highest+1)
	}
	for i, n := range dead {
		if n > 0 {
			log.Warn("webhook-bridge: a partition this config does not read holds dead letters, which dlq list and GET /v1/dlq no longer show: "+
				"set drain_partitions to list and replay them (a replay moves them to the partitions in use)",
				"partition", cfg.Stream+":"+strconv.Itoa(i), "dead_letters", n, "drain_partitions", i+1)
		}
	}
	return nil
}

// partitionKeys are the keys of a partition stream that hold what the
// bridge has to deliver or has given up on.
func partitionKeys(s string) []string {
	r := retryStreamOf(s)
	return []string{s, r, redis.DelayedKey(s), redis.DelayedKey(r), deadLetterKeyOf(s), redis.DeadKey(s), redis.DeadKey(r)}
}

// partitionList says which partitions hold how much: "events:6 (12), events:7 (3)".
func partitionList(left map[int]int64) string {
	var ps []int
	for i, n := range left {
		if n > 0 {
			ps = append(ps, i)
		}
	}
	sort.Ints(ps)
	var parts []string
	for _, i := range ps {
		parts = append(parts, fmt.Sprintf("%d (%d)", i, left[i]))
	}
	return strings.Join(parts, ", ")
}

// existing returns which of keys exist, asking one EXISTS per key in a
// pipeline (a Cluster routes each to its node).
func existing(ctx context.Context, client goredis.UniversalClient, keys []string) (map[string]bool, error) {
	pipe := client.Pipeline()
	cmds := make([]*goredis.IntCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Exists(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for i, c := range cmds {
		if c.Val() > 0 {
			out[keys[i]] = true
		}
	}
	return out, nil
}

// streamLeft is what of stream the group still has to handle: entries
// not yet delivered to it plus those pending, or every entry when the
// group does not exist there (it would be made at the start of the
// stream, as on a stream added to the others). A stream missing counts 0.
func streamLeft(ctx context.Context, client goredis.UniversalClient, stream, group string) (int64, error) {
	groups, err := client.XInfoGroups(ctx, stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return 0, nil
		}
		return 0, err
	}
	for _, g := range groups {
		if g.Name != group {
			continue
		}
		if g.Lag > 0 {
			return g.Lag + g.Pending, nil
		}
		// Lag 0 is Redis 6's answer too, and -1 unknown: ask the stream.
		last, err := client.XRevRangeN(ctx, stream, "+", "-", 1).Result()
		if err != nil {
			return 0, err
		}
		if len(last) == 0 || compareIDs(last[0].ID, g.LastDeliveredID) <= 0 {
			return g.Pending, nil
		}
		unread, err := client.XRangeN(ctx, stream, "("+g.LastDeliveredID, "+", 1000).Result()
		if err != nil {
			return 0, err
		}
		return int64(len(unread)) + g.Pending, nil
	}
	return client.XLen(ctx, stream).Result()
}

// compareIDs compares two stream entry IDs, "<ms>-<seq>".
func compareIDs(a, b string) int {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	x, _ := strconv.ParseUint(am, 10, 64)
	y, _ := strconv.ParseUint(bm, 10, 64)
	if x != y {
		if x < y {
			return -1
		}
		return 1
	}
	x, _ = strconv.ParseUint(as, 10, 64)
	y, _ = strconv.ParseUint(bs, 10, 64)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// groupLag sums, over the event streams, the entries not yet delivered to
// the group and those pending: webhook_bridge_consumer_lag.
func groupLag(client goredis.UniversalClient, cfg *Config) func(context.Context) (int64, error) {
	streams := cfg.eventStreams()
	return func(ctx context.Context) (int64, error) {
		pipe := client.Pipeline()
		cmds := make([]*goredis.XInfoGroupsCmd, len(streams))
		for i, s := range streams {
			cmds[i] = pipe.XInfoGroups(ctx, s)
		}
		_, _ = pipe.Exec(ctx) // errors are per command
		var n int64
		for _, c := range cmds {
			groups, err := c.Result()
			if err != nil {
				if strings.Contains(err.Error(), "no such key") {
					continue
				}
				return 0, err
			}
			for _, g := range groups {
				if g.Name == cfg.Group {
					n += max(g.Lag, 0) + g.Pending
				}
			}
		}
		return n, nil
	}
}

// drainEvery is how often the drained partitions are looked at;
// drainLogEvery how often what is left there is logged at most.
const (
	drainEvery    = 5 * time.Second
	drainLogEvery = time.Minute
)

// drainState is what is left in the drained partitions.
type drainState struct {
	left int64 // entries not yet delivered or pending, and delayed
	dead int64 // dead letters, the bridge's and the backend's
}

// drainLeft reads what is left in the drained partitions.
func drainLeft(ctx context.Context, client goredis.UniversalClient, cfg *Config) (drainState, error) {
	var st drainState
	for _, s := range cfg.drainedStreams() {
		for _, k := range []string{s, retryStreamOf(s)} {
			n, err := streamLeft(ctx, client, k, cfg.Group)
			if err != nil {
				return st, err
			}
			z, err := client.ZCard(ctx, redis.DelayedKey(k)).Result()
			if err != nil {
				return st, err
			}
			d, err := client.XLen(ctx, redis.DeadKey(k)).Result()
			if err != nil {
				return st, err
			}
			st.left += n + z
			st.dead += d
		}
		d, err := client.XLen(ctx, deadLetterKeyOf(s)).Result()
		if err != nil {
			return st, err
		}
		st.dead += d
	}
	return st, nil
}

// reportDrain logs what is left in the drained partitions at start and at
// most once a minute while something is, and says when they are empty,
// until ctx is done.
func reportDrain(ctx context.Context, client goredis.UniversalClient, cfg *Config, log *slog.Logger) {
	drained := cfg.drainedStreams()
	if len(drained) == 0 {
		return
	}
	span := drained[0]
	if len(drained) > 1 {
		span += " to " + drained[len(drained)-1]
	}
	var (
		lastLog time.Time
		empty   = false
		first   = true
	)
	tick := time.NewTicker(drainEvery)
	defer tick.Stop()
	for {
		lookCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := drainLeft(lookCtx, client, cfg)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if time.Since(lastLog) >= drainLogEvery {
				log.Warn("webhook-bridge: could not read what is left in the drained partitions", "partitions", span, "err", err)
				lastLog = time.Now()
			}
		case st.left > 0:
			if first || empty || time.Since(lastLog) >= drainLogEvery {
				log.Info("webhook-bridge: draining partitions: read, not written; keep drain_partitions until they are empty",
					"partitions", span, "left", st.left, "dead_letters", st.dead, "drain_partitions", cfg.DrainPartitions)
				lastLog = time.Now()
			}
			empty = false
		case !empty:
			msg := "webhook-bridge: the drained partitions are empty: drain_partitions can be removed from the config"
			if st.dead > 0 {
				msg += "; they still hold dead letters, which dlq list shows only while drain_partitions is set: replay them first (dlq replay moves them to the partitions in use)"
			}
			log.Info(msg, "partitions", span, "left", 0, "dead_letters", st.dead, "drain_partitions", cfg.DrainPartitions)
			empty, lastLog = true, time.Now()
		}
		first = false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
