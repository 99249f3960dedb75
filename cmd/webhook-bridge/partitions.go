package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
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
			if webhook.IsBridgeEvent(name) {
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
