package main

import (
	"fmt"
	"math"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
)

// defaultRedisDeliveryLogMaxLen is delivery_log.max_len's default on
// Redis.
const defaultRedisDeliveryLogMaxLen = 1_000_000

// memoryDeliveryLog is the delivery log of a bridge without Redis, nil
// when delivery_log.disabled.
func memoryDeliveryLog(cfg *Config) (webhook.AttemptLog, error) {
	if cfg.DeliveryLog.Disabled {
		return nil, nil
	}
	return webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{
		MaxLen: int(min(cfg.DeliveryLog.MaxLen, math.MaxInt)), MaxAge: time.Duration(cfg.DeliveryLog.MaxAge),
	})
}

// deliveryLogPrefix is where the delivery log's keys live: beside the
// bridge's other keys, in the stream's slot (the base stream's when
// partitioned, so that one query reads one slot).
func deliveryLogPrefix(cfg *Config) string { return redis.HelperKey(cfg.Stream, "webhook:log") }

// redisDeliveryLog is the delivery log on Redis, nil when
// delivery_log.disabled.
func redisDeliveryLog(cfg *Config, client goredis.UniversalClient) (webhook.AttemptLog, error) {
	if cfg.DeliveryLog.Disabled {
		return nil, nil
	}
	l, err := webhook.NewRedisAttemptLog(webhook.RedisAttemptLogConfig{
		Client: client, Prefix: deliveryLogPrefix(cfg), MaxLen: cfg.DeliveryLog.MaxLen, MaxAge: time.Duration(cfg.DeliveryLog.MaxAge),
	})
	if err != nil {
		return nil, fmt.Errorf("config: delivery_log: %w", err)
	}
	return l, nil
}

// disableAfter is disable_after for webhook.Config: 0 (never) becomes
// negative there, where 0 is the default.
func disableAfter(cfg *Config) time.Duration {
	if d := time.Duration(*cfg.DisableAfter); d > 0 {
		return d
	}
	return -1
}

// redisHealth is the subscriptions' health store on Redis, in the
// stream's slot beside the delivery log.
func redisHealth(cfg *Config, client goredis.UniversalClient) (webhook.HealthStore, error) {
	h, err := webhook.NewRedisHealth(webhook.RedisHealthConfig{Client: client, Prefix: redis.HelperKey(cfg.Stream, "webhook:health")})
	if err != nil {
		return nil, fmt.Errorf("health store: %w", err)
	}
	return h, nil
}
