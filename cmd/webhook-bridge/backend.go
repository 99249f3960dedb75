package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redact"
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

// redisClient connects to cfg's Redis URL.
func redisClient(cfg *Config) (goredis.UniversalClient, error) {
	opts, err := parseRedisURL(cfg.Redis.URL)
	if err != nil {
		return nil, err
	}
	return goredis.NewClient(opts), nil
}

// parseRedisURL reads a Redis URL with go-redis's parser; its errors never
// hold the password (url.Parse quotes the whole URL, and a bad escape in
// the password quotes a piece of it).
func parseRedisURL(raw string) (*goredis.Options, error) {
	opts, err := goredis.ParseURL(raw)
	if err == nil {
		return opts, nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return nil, errors.New("config: redis.url does not parse as a URL: want redis://[[user]:password@]host:port[/db], the password percent-encoded")
	}
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return nil, fmt.Errorf("config: redis.url %s: %s", redact.URL(raw), msg)
}

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
		MaxLen: cfg.StreamMaxLen,
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
	if cfg.Redis.URL == "" {
		log.Warn("webhook-bridge: NO redis.url: running on the IN-MEMORY backend; events, retries, subscriptions made through the API and dead letters are lost when the process stops, and replicas do not share work")
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
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redis %s: %w", redact.URL(cfg.Redis.URL), err)
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
	log.Info("webhook-bridge: on Redis", "redis", redact.URL(cfg.Redis.URL), "stream", cfg.Stream, "group", cfg.Group, "consumer", consumer)
	logGroupStart(log, cfg, groupAt, groupErr)
	return &backend{
		pub: pub, sub: sub, client: client,
		dead:   deadLetterStore(cfg, client),
		subs:   webhookhttp.RedisStore{Client: client, Key: subscriptionsKey(cfg)},
		dedupe: webhookhttp.RedisDedupe{Client: client, Prefix: redis.HelperKey(cfg.Stream, "webhook:ingest") + ":"},
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
