package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchyard-go/switchyard/webhook"
)

// Config is the bridge's YAML configuration; see README,
// examples/bridge.yaml and docs/config.schema.json (kept to these types by
// schema_test.go). A value "${NAME}" anywhere in a string or a duration
// (filter and partition_key excepted) is replaced by the environment
// variable NAME, and "${NAME:-default}" by default when NAME is unset or
// empty; numbers and booleans are not expanded.
type Config struct {
	// Listen is the HTTP address. default: 127.0.0.1:8080
	Listen string `yaml:"listen"`
	// Redis selects the Redis backend and its topology; empty means
	// in-memory.
	Redis RedisConfig `yaml:"redis"`
	// Stream is the stream (or in-memory topic space) events are read
	// from and published to. default: events
	Stream string `yaml:"stream"`
	// StreamMaxLen trims the stream (each partition) to about this many
	// entries (XADD MAXLEN ~). default: 0, no trimming
	StreamMaxLen int64 `yaml:"stream_max_len"`
	// Partitions spreads the stream over this many streams, "<stream>:0"
	// to "<stream>:<n-1>", each with its retries and dead letters in its
	// own Redis Cluster slot; 0 or 1 is none. At most 256. Redis only.
	// default: 0
	Partitions int `yaml:"partitions"`
	// PartitionKey is an expr-lang expression over the filters'
	// environment whose value (a string, number or bool) places an event
	// in a partition; events with equal keys share one and keep their
	// order. An event it gives no key is placed by its id. default: the
	// event id
	PartitionKey string `yaml:"partition_key"`
	// DrainPartitions is the number of partitions before partitions was
	// lowered: the partitions from partitions to drain_partitions-1 are
	// still read (their streams, retries and delayed sets) but no longer
	// written, until the bridge logs that they are empty. default: 0
	DrainPartitions int `yaml:"drain_partitions"`
	// Group is the consumer group replicas share. default: webhook-bridge
	Group string `yaml:"group"`
	// Consumer names this replica in the group. default: <host>-<pid>
	Consumer string `yaml:"consumer"`
	// Start is where the consumer group begins when the bridge makes it:
	// "end" (events added after the group exists) or "beginning" (every
	// event the stream holds). A group that exists goes on from where it
	// is. Redis only. default: end
	Start string `yaml:"start"`
	// Concurrency is how many events are delivered at once. default: 64
	Concurrency int `yaml:"concurrency"`
	// PerEndpoint bounds deliveries in flight per endpoint. default: 16
	PerEndpoint int `yaml:"per_endpoint"`
	// MaxInFlight bounds deliveries in flight to every endpoint together;
	// the others wait in a queue per endpoint. default: 64
	MaxInFlight int `yaml:"max_in_flight"`
	// Timeout is the delivery timeout of subscriptions without their own. default: 10s
	Timeout webhook.Duration `yaml:"timeout"`
	// ShutdownTimeout bounds the wait for deliveries in flight on SIGTERM. default: 30s
	ShutdownTimeout webhook.Duration `yaml:"shutdown_timeout"`
	// ShutdownDelay is how long the bridge goes on taking and delivering
	// events after SIGTERM, with GET /readyz answering 503, before its
	// shutdown begins: the time load balancers (a Kubernetes Service)
	// take to stop sending it requests. default: 0, none
	ShutdownDelay webhook.Duration `yaml:"shutdown_delay"`
	// MaxBodyBytes limits POST /v1/events bodies. default: 1 MiB
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxBatch limits the events of one POST /v1/events. default: 1000
	MaxBatch int `yaml:"max_batch"`
	Auth     struct {
		// JWTSecret, when set, makes POST /v1/events require an HS256 bearer token.
		JWTSecret string `yaml:"jwt_secret"`
		// JWTAllowNoExp accepts JWTs without an exp claim, which never
		// expire. default: false, they are refused
		JWTAllowNoExp bool `yaml:"jwt_allow_no_exp"`
		// AdminToken, when set, enables /v1/subscriptions and /v1/dlq behind this bearer token.
		AdminToken string `yaml:"admin_token"`
	} `yaml:"auth"`
	Ingest struct {
		// DedupeWindow is how long an id posted to /v1/events is
		// remembered, so that posting it again emits nothing; negative
		// turns it off. default: 1h
		DedupeWindow webhook.Duration `yaml:"dedupe_window"`
	} `yaml:"ingest"`
	Retry struct {
		// Schedule is the wait before each retry; the last repeats.
		Schedule []webhook.Duration `yaml:"schedule"`
		// MaxAttempts counts every attempt, the first included.
		MaxAttempts int `yaml:"max_attempts"`
	} `yaml:"retry"`
	Targets struct {
		// DenyPrivate refuses deliveries to non-global addresses (after DNS).
		DenyPrivate bool `yaml:"deny_private"`
		// Allow lists CIDRs that stay reachable when DenyPrivate is set.
		Allow []string `yaml:"allow"`
	} `yaml:"targets"`
	DeadLetters struct {
		// MaxLen bounds the dead letters kept: on Redis the dead-letter
		// stream is trimmed to about this many entries (XADD MAXLEN ~) at
		// every write, in memory the oldest beyond it are dropped. 0 means
		// the default; a negative value keeps every dead letter.
		// default: 100000
		MaxLen int64 `yaml:"max_len"`
	} `yaml:"dead_letters"`
	// DisableAfter disables a subscription once every delivery to it has
	// failed for this long, and emits webhook.subscription.disabled into
	// the stream; 0 never does. default: 120h (5 days)
	DisableAfter *webhook.Duration `yaml:"disable_after"`
	DeliveryLog  struct {
		// Disabled turns the delivery log off: no attempt is recorded,
		// and GET /v1/attempts answers 404. default: false, on
		Disabled bool `yaml:"disabled"`
		// MaxAge is how long an attempt (and its event) is kept.
		// default: 72h
		MaxAge webhook.Duration `yaml:"max_age"`
		// MaxLen bounds the attempts kept, the oldest dropped first.
		// default: 1000000 on Redis, 100000 in memory
		MaxLen int64 `yaml:"max_len"`
		// ResponseBodyBytes is how much of each response body is kept;
		// negative keeps none. default: 4096
		ResponseBodyBytes int `yaml:"response_body_bytes"`
	} `yaml:"delivery_log"`
	Subscriptions []webhook.Subscription `yaml:"subscriptions"`
	// Endpoints holds per-endpoint settings: rate limits shared by all
	// the subscriptions delivering to one.
	Endpoints []EndpointConfig `yaml:"endpoints"`
	// Demo runs a receiver and emits sample events, to try the bridge.
	Demo struct {
		Enabled  bool             `yaml:"enabled"`
		Secret   string           `yaml:"secret"`
		Interval webhook.Duration `yaml:"interval"`
	} `yaml:"demo"`
	// Telemetry exports OpenTelemetry traces over OTLP/HTTP.
	// default: off unless OTEL_EXPORTER_OTLP_ENDPOINT or
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
	Telemetry TelemetryConfig `yaml:"telemetry"`
	// LogLevel is debug, info, warn or error. default: info
	LogLevel string `yaml:"log_level"`
}

// loadConfig reads, checks and completes the configuration at path.
func loadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parseConfig(raw)
}

func parseConfig(raw []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, yamlError(err)
	}
	cfg := &Config{}
	if len(root.Content) > 0 {
		doc := root.Content[0]
		if err := checkAliasCycles(doc, map[*yaml.Node]int{}); err != nil {
			return nil, err
		}
		if err := checkKeys(doc, reflect.TypeOf(*cfg), "", map[mergeCheck]bool{}); err != nil {
			return nil, err
		}
		expanded := map[*yaml.Node]bool{}
		if err := expandEnv(doc, "", expanded); err != nil {
			return nil, err
		}
		if err := checkTypes(doc, reflect.TypeOf(*cfg), "", expanded, map[mergeCheck]bool{}); err != nil {
			return nil, err
		}
		if err := doc.Decode(cfg); err != nil {
			return nil, yamlError(err)
		}
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Stream == "" {
		c.Stream = "events"
	}
	if c.Group == "" {
		c.Group = "webhook-bridge"
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.Timeout == 0 {
		c.Timeout = webhook.Duration(10 * time.Second)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = webhook.Duration(30 * time.Second)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1000
	}
	if c.Demo.Interval == 0 {
		c.Demo.Interval = webhook.Duration(5 * time.Second)
	}
	if c.DeadLetters.MaxLen == 0 {
		c.DeadLetters.MaxLen = webhook.DefaultDeadLetterMaxLen
	}
	if c.DisableAfter == nil {
		d := webhook.Duration(webhook.DefaultDisableAfter)
		c.DisableAfter = &d
	}
	if c.DeliveryLog.MaxAge == 0 {
		c.DeliveryLog.MaxAge = webhook.Duration(webhook.DefaultAttemptLogMaxAge)
	}
	if c.DeliveryLog.MaxLen == 0 {
		c.DeliveryLog.MaxLen = webhook.DefaultMemoryAttemptLogMaxLen
		if c.onRedis() {
			c.DeliveryLog.MaxLen = defaultRedisDeliveryLogMaxLen
		}
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Start == "" {
		c.Start = startEnd
	}
}

// validate returns one line naming what is wrong.
func (c *Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("config: listen %q: want host:port", c.Listen)
	}
	for _, kv := range []struct {
		name string
		v    int64
	}{{"concurrency", int64(c.Concurrency)}, {"per_endpoint", int64(c.PerEndpoint)}, {"max_in_flight", int64(c.MaxInFlight)}, {"max_body_bytes", c.MaxBodyBytes},
		{"max_batch", int64(c.MaxBatch)}, {"stream_max_len", c.StreamMaxLen}, {"retry.max_attempts", int64(c.Retry.MaxAttempts)}, {"timeout", int64(c.Timeout)},
		{"shutdown_timeout", int64(c.ShutdownTimeout)}, {"shutdown_delay", int64(c.ShutdownDelay)}, {"demo.interval", int64(c.Demo.Interval)},
		{"delivery_log.max_age", int64(c.DeliveryLog.MaxAge)}, {"delivery_log.max_len", c.DeliveryLog.MaxLen}, {"disable_after", int64(*c.DisableAfter)}} {
		if kv.v < 0 {
			return fmt.Errorf("config: %s is negative", kv.name)
		}
	}
	if n := c.DeliveryLog.ResponseBodyBytes; n > webhook.MaxResponseBodyBytes {
		return fmt.Errorf("config: delivery_log.response_body_bytes %d: want at most %d (64 KiB; the bridge reads no more of a response)", n, webhook.MaxResponseBodyBytes)
	}
	if d := time.Duration(*c.DisableAfter); d > webhook.RedisHealthSummaryTTL {
		return fmt.Errorf("config: disable_after %s: want at most %s, as long as the health of a quiet subscription is kept", d, webhook.RedisHealthSummaryTTL)
	}
	if w := time.Duration(c.Ingest.DedupeWindow); w > 0 && w < time.Second {
		return fmt.Errorf("config: ingest.dedupe_window %s: want at least 1s, or a negative value to turn it off", w)
	}
	if time.Duration(c.Timeout) > webhook.MaxTimeout {
		return fmt.Errorf("config: timeout %s is over the %s limit", time.Duration(c.Timeout), webhook.MaxTimeout)
	}
	for i, d := range c.Retry.Schedule {
		if d <= 0 {
			return fmt.Errorf("config: retry.schedule[%d] is %s, want a positive duration", i, time.Duration(d))
		}
	}
	if c.Start != startEnd && c.Start != startBeginning {
		return fmt.Errorf("config: start %q: want %s or %s", c.Start, startEnd, startBeginning)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("config: log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	if _, err := c.targetPolicy(); err != nil {
		return err
	}
	if err := c.validatePartitions(); err != nil {
		return err
	}
	if _, err := c.parseRedis(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, s := range c.Subscriptions {
		if err := webhook.Compile(s); err != nil {
			return fmt.Errorf("config: subscriptions[%d]: %w", i, err)
		}
		if seen[s.ID] {
			return fmt.Errorf("config: subscriptions[%d]: id %q is used twice", i, s.ID)
		}
		seen[s.ID] = true
	}
	if err := c.Telemetry.validate(); err != nil {
		return err
	}
	if err := c.validateEndpoints(); err != nil {
		return err
	}
	if c.Demo.Enabled && c.Demo.Secret != "" {
		if _, err := webhook.Sign([]string{c.Demo.Secret}, "", 0, nil); err != nil {
			return fmt.Errorf("config: demo.secret: %v", err)
		}
	}
	return nil
}

// targetPolicy turns the targets section into the bridge's policy.
func (c *Config) targetPolicy() (webhook.TargetPolicy, error) {
	p := webhook.TargetPolicy{DenyPrivate: c.Targets.DenyPrivate}
	for i, cidr := range c.Targets.Allow {
		prefix, err := netip.ParsePrefix(cidr)
		if err != nil {
			return p, fmt.Errorf("config: targets.allow[%d] %q: want a CIDR such as 10.0.0.0/8", i, cidr)
		}
		p.Allow = append(p.Allow, prefix.Masked())
	}
	return p, nil
}
