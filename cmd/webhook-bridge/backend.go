package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
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
	fanout webhook.FanoutLog       // nil: the bridge's default, in memory
	client goredis.UniversalClient // nil in memory
	lag    func(context.Context) (int64, error)
	// unhandled lists the dead-letter streams of the event and retry
	// streams (Redis only).
	unhandled []webhookhttp.DeadLetterLister
	closers   []func() error
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
// streams.
func unhandledListers(cfg *Config, client goredis.UniversalClient) []webhookhttp.DeadLetterLister {
	return []webhookhttp.DeadLetterLister{
		webhookhttp.RedisUnhandled{Client: client, Stream: cfg.Stream},
		webhookhttp.RedisUnhandled{Client: client, Stream: retryStream(cfg)},
	}
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

// deadLetterStore is the bridge's dead-letter stream in Redis, bounded by
// dead_letters.max_len.
func deadLetterStore(cfg *Config, client goredis.UniversalClient) webhook.RedisDeadLetters {
	return webhook.RedisDeadLetters{Client: client, Key: deadLetterKey(cfg), MaxLen: cfg.DeadLetters.MaxLen}
}

// retryStream holds the bridge's own retry events, beside its stream, so
// that other consumer groups of the stream never see them.
func retryStream(cfg *Config) string { return redis.HelperKey(cfg.Stream, "webhook:retries") }

// publisherConfig routes events to the stream and retry events to the
// retry stream; the bridge and `dlq replay` share it.
func publisherConfig(cfg *Config) redis.PublisherConfig {
	return redis.PublisherConfig{
		MaxLen:       cfg.StreamMaxLen,
		WaitReplicas: cfg.Redis.WaitReplicas,
		WaitTimeout:  cfg.redisWaitTimeout(),
		Route: func(name pubsub.Name) string {
			if name == webhook.RetryEventName {
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

func openBackend(ctx context.Context, cfg *Config, log *slog.Logger) (*backend, error) {
	consumer := cfg.Consumer
	if consumer == "" {
		host, _ := os.Hostname()
		consumer = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if !cfg.onRedis() {
		log.Warn("webhook-bridge: NO redis.url, redis.cluster_url or redis.sentinel_url: running on the IN-MEMORY backend; events, retries, subscriptions made through the API and dead letters are lost when the process stops, and replicas do not share work")
		broker := memory.NewBroker(memory.Options{Logger: log})
		sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: cfg.Group, Concurrency: cfg.Concurrency,
			Backoff: pubsub.ExponentialBackoff(time.Second, time.Minute), HandlerTimeout: handlerTimeout})
		if err != nil {
			return nil, err
		}
		return &backend{pub: broker, sub: sub, dead: &webhook.MemoryDeadLetters{MaxLen: int(min(cfg.DeadLetters.MaxLen, math.MaxInt))}, subs: webhookhttp.NewMemoryStore(), dedupe: webhookhttp.NewMemoryDedupe(),
			closers: []func() error{broker.Close, sub.Close}}, nil
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
	pub, err := redis.NewPublisher(client, publisherConfig(cfg))
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	groupAt, groupErr := readGroupState(ctx, client, cfg)
	sub, err := redis.NewSubscriber(ctx, client, redis.SubscriberConfig{
		Streams: []string{cfg.Stream, retryStream(cfg)}, Group: cfg.Group, Consumer: consumer, Concurrency: cfg.Concurrency,
		Start:     cfg.groupStart(),
		BatchSize: max(cfg.Concurrency, 10), Logger: log, HandlerTimeout: handlerTimeout,
		// A short block keeps shutdown quick; idle, it costs four reads a second.
		Block: 250 * time.Millisecond,
	})
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	if setup, _ := cfg.parseRedis(); setup != nil && setup.tlsConfig() != nil && setup.tlsConfig().InsecureSkipVerify {
		log.Warn("webhook-bridge: redis.tls.insecure_skip_verify is on: the connections to Redis are encrypted but any server is believed, so whoever can intercept them reads and changes every event, subscription secret and dead letter")
	}
	log.Info("webhook-bridge: on Redis", "redis", cfg.redisShown(), "topology", cfg.redisTopology(), "stream", cfg.Stream, "group", cfg.Group, "consumer", consumer)
	logGroupStart(log, cfg, groupAt, groupErr)
	return &backend{
		pub: pub, sub: sub, client: client,
		dead:   deadLetterStore(cfg, client),
		subs:   webhookhttp.RedisStore{Client: client, Key: subscriptionsKey(cfg)},
		dedupe: webhookhttp.RedisDedupe{Client: client, Prefix: redis.HelperKey(cfg.Stream, "webhook:ingest") + ":"},
		fanout: webhook.RedisFanoutLog{Client: client, Prefix: redis.HelperKey(cfg.Stream, "webhook:fanout") + ":"},
		lag: func(ctx context.Context) (int64, error) {
			groups, err := client.XInfoGroups(ctx, cfg.Stream).Result()
			if err != nil {
				return 0, err
			}
			for _, g := range groups {
				if g.Name == cfg.Group {
					return g.Lag + g.Pending, nil
				}
			}
			return 0, nil
		},
		unhandled: unhandledListers(cfg, client),
		closers:   []func() error{client.Close, pub.Close, sub.Close},
	}, nil
}
