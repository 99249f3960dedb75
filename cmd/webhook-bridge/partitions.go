package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// maxPartitions bounds partitions and drain_partitions. Each partition is
// read by every replica: on a Cluster by two blocking reads of its own
// (its stream's and its retry stream's), each holding a pooled
// connection, and its two delayed sets are polled four times a second;
// the first page of every dead-letter walk asks each partition's three
// dead-letter streams where they end. 256 is far more than the masters of
// any Cluster this bridge is meant for, times a few.
const maxPartitions = 256

// partitioned reports whether events are spread over partition streams.
func (c *Config) partitioned() bool { return c.Partitions >= 2 }

// writtenStreams are the streams events are written to: the partitions,
// "<stream>:0" to "<stream>:<n-1>", or the stream itself.
func (c *Config) writtenStreams() []string { return redis.PartitionStreams(c.Stream, c.Partitions) }

// drainedStreams are the partition streams read but no longer written:
// those of drain_partitions from partitions on (from 0 when the stream is
// no longer partitioned).
func (c *Config) drainedStreams() []string {
	if c.DrainPartitions < 2 {
		return nil
	}
	from := 0
	if c.partitioned() {
		from = c.Partitions
	}
	return redis.PartitionStreams(c.Stream, c.DrainPartitions)[from:]
}

// eventStreams are the event streams the bridge reads: the stream itself
// (also when partitioned, for what it held before and what producers add
// there themselves), the partitions, and the partitions being drained.
func (c *Config) eventStreams() []string {
	out := []string{c.Stream}
	if c.partitioned() {
		out = append(out, c.writtenStreams()...)
	}
	return append(out, c.drainedStreams()...)
}

// readStreams are the streams the bridge's group reads: each event stream
// and its retry stream. The stream itself comes first: the consumer's
// lease lives beside the first stream, so it stays where it is whatever
// the partitions.
func (c *Config) readStreams() []string {
	var out []string
	for _, s := range c.eventStreams() {
		out = append(out, s, retryStreamOf(s))
	}
	return out
}

// retryStreamOf is the retry stream of an event stream, in its slot.
func retryStreamOf(stream string) string { return redis.HelperKey(stream, "webhook:retries") }

// deadLetterKeyOf is the stream of the bridge's dead letters of an event
// stream, in its slot.
func deadLetterKeyOf(stream string) string { return redis.HelperKey(stream, "webhook:dead") }

// validatePartitions checks partitions, drain_partitions and
// partition_key.
func (c *Config) validatePartitions() error {
	switch {
	case c.Partitions < 0:
		return errors.New("config: partitions is negative")
	case c.Partitions > maxPartitions:
		return fmt.Errorf("config: partitions %d: at most %d (a few per Cluster master is plenty)", c.Partitions, maxPartitions)
	case c.DrainPartitions < 0:
		return errors.New("config: drain_partitions is negative")
	case c.DrainPartitions > maxPartitions:
		return fmt.Errorf("config: drain_partitions %d: at most %d", c.DrainPartitions, maxPartitions)
	case c.DrainPartitions == 1 || (c.DrainPartitions > 0 && c.DrainPartitions <= c.Partitions):
		return fmt.Errorf("config: drain_partitions %d: want the number of partitions before partitions was lowered, above partitions (%d) and at least 2: the partitions from partitions to drain_partitions-1 are read, not written", c.DrainPartitions, c.Partitions)
	case c.PartitionKey != "" && !c.partitioned():
		return fmt.Errorf("config: partition_key is set but partitions is %d: events are partitioned with partitions 2 or more", c.Partitions)
	case (c.partitioned() || c.DrainPartitions > 0) && strings.ContainsAny(c.Stream, "{}"):
		return fmt.Errorf("config: stream %q holds a hash tag, so every one of its partitions would share one Redis Cluster slot: partitions need a stream name without braces", c.Stream)
	}
	if _, err := webhook.CompilePartitionKey(c.PartitionKey, nil); err != nil {
		return fmt.Errorf("config: partition_key: %w", err)
	}
	return nil
}

// partitionKey compiles partition_key (checked at load); its fallbacks go
// to log.
func (c *Config) partitionKey(log *slog.Logger) *webhook.PartitionKey {
	k, err := webhook.CompilePartitionKey(c.PartitionKey, log)
	if err != nil {
		panic("partition_key checked at load: " + err.Error())
	}
	return k
}

// newPublisher writes events where the bridge reads them: to the stream
// and its retry stream, or, partitioned, to each event's partition and its
// partition's retry stream (a retry to the partition of the event it
// retries). The bridge, POST /v1/events and `dlq replay` share it.
func newPublisher(cfg *Config, client goredis.UniversalClient, key *webhook.PartitionKey) (pubsub.DelayedPublisher, error) {
	if !cfg.partitioned() {
		return redis.NewPublisher(client, publisherConfig(cfg))
	}
	var parts []pubsub.DelayedPublisher
	for _, s := range cfg.writtenStreams() {
		pc := publisherConfig(cfg)
		pc.Route = func(name pubsub.Name) string {
			if name == webhook.RetryEventName {
				return retryStreamOf(s)
			}
			return s
		}
		p, err := redis.NewPublisher(client, pc)
		if err != nil {
			for _, q := range parts {
				_ = q.Close()
			}
			return nil, err
		}
		parts = append(parts, p)
	}
	return webhook.NewPartitionedPublisher(parts, key.Key)
}

// deadLetters is the bridge's dead-letter store: its dead-letter stream,
// or, partitioned, that of each partition, beside the partition, with the
// drained partitions' and the stream's own (from before it was
// partitioned) still listed.
func deadLetters(cfg *Config, client goredis.UniversalClient, key *webhook.PartitionKey) webhook.DeadLetterStore {
	store := func(stream string) webhook.DeadLetterStore {
		return webhook.RedisDeadLetters{Client: client, Key: deadLetterKeyOf(stream), MaxLen: cfg.DeadLetters.MaxLen}
	}
	if !cfg.partitioned() && cfg.DrainPartitions == 0 {
		return store(cfg.Stream)
	}
	d := webhook.PartitionedDeadLetters{Key: key.Key}
	for _, s := range cfg.writtenStreams() {
		d.Partitions = append(d.Partitions, store(s))
	}
	for _, s := range cfg.drainedStreams() {
		d.Drained = append(d.Drained, store(s))
	}
	if cfg.partitioned() {
		d.Drained = append(d.Drained, store(cfg.Stream))
	}
	return d
}

// fanoutLog is where the bridge records the settled deliveries of events
// on their way to several subscriptions: beside the stream, or,
// partitioned, beside each event's partition.
func fanoutLog(cfg *Config, client goredis.UniversalClient, key *webhook.PartitionKey) webhook.FanoutLog {
	log := func(stream string) webhook.FanoutLog {
		return webhook.RedisFanoutLog{Client: client, Prefix: redis.HelperKey(stream, "webhook:fanout") + ":"}
	}
	if !cfg.partitioned() {
		return log(cfg.Stream)
	}
	l := webhook.PartitionedFanoutLog{Key: key.Key}
	for _, s := range cfg.writtenStreams() {
		l.Partitions = append(l.Partitions, log(s))
	}
	return l
}

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

// logSpread says, on a Cluster, how the partitions fall on its masters:
// each partition's slot is fixed by its name, so N partitions cover the
// masters evenly only with luck or several partitions per master.
func logSpread(ctx context.Context, client goredis.UniversalClient, cfg *Config, log *slog.Logger) {
	cc, ok := client.(*goredis.ClusterClient)
	if !ok || !cfg.partitioned() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	perMaster, err := partitionsPerMaster(ctx, cc, cfg.writtenStreams())
	if err != nil {
		log.Warn("webhook-bridge: could not read where the partitions are on the Cluster", "err", err)
		return
	}
	var addrs []string
	for a := range perMaster {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	lo, hi := cfg.Partitions, 0
	var parts []string
	for _, a := range addrs {
		parts = append(parts, fmt.Sprintf("%s=%d", a, perMaster[a]))
		lo, hi = min(lo, perMaster[a]), max(hi, perMaster[a])
	}
	attrs := []any{"partitions", cfg.Partitions, "masters", len(addrs), "per_master", strings.Join(parts, " ")}
	if lo == 0 || hi > 2*lo {
		log.Warn("webhook-bridge: the partitions spread unevenly over the Cluster's masters (each partition's slot is fixed by its name): "+
			"raise partitions to a few per master, or move their slots (CLUSTER SETSLOT, redis-cli --cluster reshard)", attrs...)
		return
	}
	log.Info("webhook-bridge: partitions over the Cluster's masters", attrs...)
}

// partitionsPerMaster counts the streams each master of the Cluster
// holds, masters holding none included.
func partitionsPerMaster(ctx context.Context, cc *goredis.ClusterClient, streams []string) (map[string]int, error) {
	var mu sync.Mutex
	per := map[string]int{}
	err := cc.ForEachMaster(ctx, func(_ context.Context, m *goredis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		per[m.Options().Addr] += 0
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, s := range streams {
		m, err := cc.MasterForKey(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("the master of %s: %w", s, err)
		}
		per[m.Options().Addr]++
	}
	return per, nil
}

// unhandledOf lists what the backend dead-lettered from each stream the
// bridge reads.
func unhandledOf(cfg *Config, client goredis.UniversalClient) []webhookhttp.DeadLetterLister {
	var out []webhookhttp.DeadLetterLister
	streams := cfg.readStreams()
	if cfg.partitioned() {
		// The stream itself, read for what producers add there and what it
		// held before, after the partitions.
		streams = append(streams[2:], streams[:2]...)
	}
	for _, s := range streams {
		out = append(out, webhookhttp.RedisUnhandled{Client: client, Stream: s})
	}
	return out
}
