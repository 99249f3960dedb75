package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// backend is what the bridge runs on: memory or Redis.
type backend struct {
	pub    pubsub.DelayedPublisher
	sub    pubsub.Subscriber
	dead   webhook.DeadLetterStore
	subs   webhookhttp.SubscriptionStore
	dedupe webhookhttp.Deduper
	fanout webhook.FanoutLog // nil: the bridge's default, in memory
	// attempts is the delivery log, nil when delivery_log.disabled.
	attempts webhook.AttemptLog
	health   webhook.HealthStore
	client   goredis.UniversalClient // nil in memory
	// queued counts the events taken and not yet read (memory only: on
	// Redis they wait in the stream).
	queued func() int
	lag    func(context.Context) (int64, error)
	// unhandled lists the dead-letter streams of the event and retry
	// streams (Redis only).
	unhandled []webhookhttp.DeadLetterLister
	closers   []func() error
	// keyFallbacks counts the events partition_key gave no key (Redis,
	// partitioned only).
	keyFallbacks func() int64
	// drain reports on the partitions being drained until ctx is done
	// (Redis, with drain_partitions only).
	drain func(ctx context.Context)
}

// ready reports whether the backend answers.
func (b *backend) ready(ctx context.Context) error {
	if b.client == nil {
		return nil
	}
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis unreachable: %w", err)
	}
	return nil
}

// unhandledCount counts what the backend dead-lettered, nil in memory.
func (b *backend) unhandledCount() func(context.Context) (int64, error) {
	if len(b.unhandled) == 0 {
		return nil
	}
	return func(ctx context.Context) (int64, error) {
		var n int64
		for _, u := range b.unhandled {
			l, err := u.Len(ctx)
			if err != nil {
				return 0, err
			}
			n += l
		}
		return n, nil
	}
}

// unhandledListers lists the dead-letter streams of the event and retry
// streams (of every partition, drained ones included).
func unhandledListers(cfg *Config, client goredis.UniversalClient) []webhookhttp.DeadLetterLister {
	return unhandledOf(cfg, client)
}

func (b *backend) Close() error {
	for i := len(b.closers) - 1; i >= 0; i-- {
		_ = b.closers[i]()
	}
	return nil
}

// redisClient connects to the Redis cfg names (a server, a Cluster or a
// primary through Sentinel).
func redisClient(cfg *Config) (goredis.UniversalClient, error) {
	setup, err := cfg.parseRedis()
	if err != nil {
		return nil, err
	}
	if setup == nil {
		return nil, errors.New("config: no redis.url, redis.cluster_url or redis.sentinel_url")
	}
	if setup.cluster != nil && setup.cluster.PoolSize == 0 {
		// On a Cluster every stream read holds a pooled connection of its
		// node while it blocks: room for them all beside go-redis's
		// default, whichever nodes they fall on.
		setup.cluster.PoolSize = 10*runtime.GOMAXPROCS(0) + len(cfg.readStreams())
	}
	return setup.client(), nil
}

// startPingTimeout bounds the first PING at start: go-redis's retries
// would otherwise spend more than half a minute on sentinels that do not
// answer before saying so.
const startPingTimeout = 10 * time.Second

// handlerTimeout is the deadline of handling one event: its deliveries,
// each bounded by its subscription's timeout (at most webhook.MaxTimeout),
// run concurrently, then retries are scheduled.
const handlerTimeout = 2 * webhook.MaxTimeout

// deadLetterKey is the stream of the bridge's dead letters, beside its
// stream in Redis.
func deadLetterKey(cfg *Config) string { return redis.HelperKey(cfg.Stream, "webhook:dead") }

// deadLetterStore is the bridge's dead-letter stream in Redis (one per
// partition when partitioned), bounded by dead_letters.max_len.
func deadLetterStore(cfg *Config, client goredis.UniversalClient) webhook.DeadLetterStore {
	return deadLetters(cfg, client, cfg.partitionKey(nil))
}

// retryStream holds the bridge's own retry events, beside its stream, so
// that other consumer groups of the stream never see them.
func retryStream(cfg *Config) string { return redis.HelperKey(cfg.Stream, "webhook:retries") }

// publisherConfig routes events to the stream and retry events to the
// retry stream; the bridge and `dlq replay` share it (see newPublisher,
// which routes each partition's publisher to its partition).
func publisherConfig(cfg *Config) redis.PublisherConfig {
	return redis.PublisherConfig{
		MaxLen:       cfg.StreamMaxLen,
		WaitReplicas: cfg.Redis.WaitReplicas,
		WaitTimeout:  cfg.redisWaitTimeout(),
		Route: func(name pubsub.Name) string {
			if webhook.IsBridgeEvent(name) {
				return retryStream(cfg)
			}
			return cfg.Stream
		},
	}
}

// subscriptionsKey is the hash of the subscriptions made through the
// admin API.
func subscriptionsKey(cfg *Config) string {
	return redis.HelperKey(cfg.Stream, "webhook:subscriptions")
}

// consumerName names this replica in the group: cfg.Consumer, or
// <host>-<pid>.
func consumerName(cfg *Config) string {
	if cfg.Consumer != "" {
		return cfg.Consumer
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

func openBackend(ctx context.Context, cfg *Config, log *slog.Logger) (*backend, error) {
	consumer := consumerName(cfg)
	if !cfg.onRedis() {
		if cfg.Partitions > 1 || cfg.DrainPartitions > 0 {
			log.Warn("webhook-bridge: partitions and drain_partitions are Redis streams: ignored in memory", "partitions", cfg.Partitions, "drain_partitions", cfg.DrainPartitions)
		}
		log.Warn("webhook-bridge: NO redis.url, redis.cluster_url or redis.sentinel_url: running on the IN-MEMORY backend; events, retries, subscriptions made through the API and dead letters are lost when the process stops, and replicas do not share work")
		broker := memory.NewBroker(memory.Options{Logger: log})
		sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: cfg.Group, Concurrency: cfg.Concurrency,
			Backoff: pubsub.ExponentialBackoff(time.Second, time.Minute), HandlerTimeout: handlerTimeout})
		if err != nil {
			return nil, err
		}
		attempts, err := memoryDeliveryLog(cfg)
		if err != nil {
			return nil, err
		}
		return &backend{pub: broker, sub: sub, dead: &webhook.MemoryDeadLetters{MaxLen: int(min(cfg.DeadLetters.MaxLen, math.MaxInt))}, subs: webhookhttp.NewMemoryStore(), dedupe: webhookhttp.NewMemoryDedupe(),
			attempts: attempts, health: &webhook.MemoryHealth{}, closers: []func() error{broker.Close, sub.Close}, queued: sub.Queued}, nil
	}

	client, err := redisClient(cfg)
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, startPingTimeout)
	err = client.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		_ = client.Close()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("redis %s: no answer within %s (log_level: debug shows go-redis's attempts)", cfg.redisShown(), startPingTimeout)
		}
		return nil, fmt.Errorf("redis %s: %w", cfg.redisShown(), err)
	}
	if err := checkStranded(ctx, client, cfg, log); err != nil {
		_ = client.Close()
		return nil, err
	}
	key := cfg.partitionKey(log)
	pub, err := newPublisher(cfg, client, key)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	groupAt, groupErr := readGroupState(ctx, client, cfg)
	sub, err := redis.NewSubscriber(ctx, client, redis.SubscriberConfig{
		Streams: cfg.readStreams(), Group: cfg.Group, Consumer: consumer, Concurrency: cfg.Concurrency,
		Start:     cfg.groupStart(),
		BatchSize: max(cfg.Concurrency, 10), Logger: log, HandlerTimeout: handlerTimeout,
		// A short block keeps shutdown quick; idle, it costs four reads a second.
		Block: 250 * time.Millisecond,
	})
	if err != nil {
		_ = pub.Close()
		_ = client.Close()
		return nil, err
	}
	if setup, _ := cfg.parseRedis(); setup != nil && setup.tlsConfig() != nil && setup.tlsConfig().InsecureSkipVerify {
		log.Warn("webhook-bridge: redis.tls.insecure_skip_verify is on: the connections to Redis are encrypted but any server is believed, so whoever can intercept them reads and changes every event, subscription secret and dead letter")
	}
	attrs := []any{"redis", cfg.redisShown(), "topology", cfg.redisTopology(), "stream", cfg.Stream, "group", cfg.Group, "consumer", consumer}
	if cfg.partitioned() {
		by := "event id"
		if cfg.PartitionKey != "" {
			by = cfg.PartitionKey
		}
		attrs = append(attrs, "partitions", cfg.Partitions, "partition_key", by)
	}
	if cfg.DrainPartitions > 0 {
		attrs = append(attrs, "drain_partitions", cfg.DrainPartitions)
	}
	log.Info("webhook-bridge: on Redis", attrs...)
	logGroupStart(log, cfg, groupAt, groupErr)
	logSpread(ctx, client, cfg, log)
	if cc, ok := client.(*goredis.ClusterClient); ok && cc.Options().PoolSize < len(cfg.readStreams())+10 {
		log.Warn("webhook-bridge: pool_size in redis.cluster_url leaves little room beside the stream reads, each of which holds a connection of its node while it waits: writes may wait for a connection",
			"pool_size", cc.Options().PoolSize, "stream_reads", len(cfg.readStreams()))
	}
	attempts, err := redisDeliveryLog(cfg, client)
	var health webhook.HealthStore
	if err == nil {
		health, err = redisHealth(cfg, client)
	}
	if err != nil {
		_ = pub.Close()
		_ = sub.Close()
		_ = client.Close()
		return nil, err
	}
	b := &backend{
		pub: pub, sub: sub, client: client,
		dead:         deadLetters(cfg, client, key),
		subs:         webhookhttp.RedisStore{Client: client, Key: subscriptionsKey(cfg)},
		dedupe:       webhookhttp.RedisDedupe{Client: client, Prefix: redis.HelperKey(cfg.Stream, "webhook:ingest") + ":"},
		fanout:       fanoutLog(cfg, client, key),
		attempts:     attempts,
		health:       health,
		lag:          groupLag(client, cfg),
		unhandled:    unhandledListers(cfg, client),
		closers:      []func() error{client.Close, pub.Close, sub.Close},
		keyFallbacks: key.Fallbacks,
	}
	if len(cfg.drainedStreams()) > 0 {
		b.drain = func(ctx context.Context) { reportDrain(ctx, client, cfg, log) }
	}
	return b, nil
}
