package main

import (
	"fmt"
	"net/url"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
)

// EndpointConfig is one entry of endpoints: settings of an endpoint
// (scheme, host and port) whichever subscriptions deliver to it.
type EndpointConfig struct {
	// URL names the endpoint: its scheme, host and port count (the
	// scheme's default port when it has none), not its path.
	URL string `yaml:"url"`
	// RateLimit bounds the deliveries to the endpoint, all its
	// subscriptions together, across replicas on Redis.
	RateLimit *webhook.RateLimit `yaml:"rate_limit"`
}

// validateEndpoints checks the endpoints section.
func (c *Config) validateEndpoints() error {
	seen := map[string]int{}
	for i, e := range c.Endpoints {
		u, err := url.Parse(e.URL)
		switch {
		case e.URL == "":
			return fmt.Errorf("config: endpoints[%d]: url is empty", i)
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			return fmt.Errorf("config: endpoints[%d]: url: want http(s)://host[:port]", i)
		case e.RateLimit == nil:
			return fmt.Errorf("config: endpoints[%d] (%s): rate_limit is missing", i, u.Host)
		}
		if err := e.RateLimit.Validate(); err != nil {
			return fmt.Errorf("config: endpoints[%d] (%s): rate_limit: %v", i, u.Host, err)
		}
		key := webhook.EndpointKey(e.URL)
		if j, dup := seen[key]; dup {
			return fmt.Errorf("config: endpoints[%d] and endpoints[%d] are the same endpoint %s", j, i, key)
		}
		seen[key] = i
	}
	return nil
}

// endpointLimits are the endpoints' rate limits for webhook.Config.
func (c *Config) endpointLimits() map[string]webhook.RateLimit {
	m := map[string]webhook.RateLimit{}
	for _, e := range c.Endpoints {
		m[webhook.EndpointKey(e.URL)] = *e.RateLimit
	}
	return m
}

// rateLimiter keeps the rate limits' budgets: in Redis beside the stream
// ("rate:{stream}:webhook:subscription:<id>",
// "rate:{stream}:webhook:endpoint:<scheme://host:port>"), shared by every
// replica, or in memory.
func rateLimiter(cfg *Config, client goredis.UniversalClient) webhook.RateLimiter {
	if client == nil {
		return &webhook.MemoryRateLimiter{}
	}
	return webhook.RedisRateLimiter{Client: client, Prefix: redis.HelperKey(cfg.Stream, "webhook") + ":"}
}
