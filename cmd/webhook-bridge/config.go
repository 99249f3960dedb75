package main

import (
	"encoding"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
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

// yamlError puts the YAML library's errors, one per line, on one line.
func yamlError(err error) error {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) {
		msg = strings.Join(te.Errors, "; ")
	}
	// Values quoted in the message may hold line breaks of their own.
	return fmt.Errorf("config: %s", strings.ReplaceAll(msg, "\n", `\n`))
}

var (
	yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkKeys refuses any mapping key that no field of t names, with its
// path ("subscriptions[1].filtr").
func checkKeys(n *yaml.Node, t reflect.Type, path string, merged map[mergeCheck]bool) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(yamlUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return nil
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		// yaml.v3 would cut 2.5 down to 2 without a word.
		if f, err := strconv.ParseFloat(n.Value, 64); n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" && err == nil && f != math.Trunc(f) {
			return fmt.Errorf("config: %s %s (line %d): want a whole number", path, n.Value, n.Line)
		}
		// and refuse one too large for the key with only a line number.
		if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
			if _, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, t.Bits()); err != nil {
				if f, ferr := strconv.ParseFloat(n.Value, 64); ferr != nil || f != math.Trunc(f) || math.Abs(f) >= math.Ldexp(1, t.Bits()-1) {
					return fmt.Errorf("config: %s %s (line %d): want a whole number that fits %d bits", path, n.Value, n.Line, t.Bits())
				}
			}
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // a type error, which checkTypes reports
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i].Value, n.Content[i+1]
			if isMerge(n.Content[i]) {
				// << merges the keys of a mapping (or of a list of them) here.
				for _, m := range mergedMappings(val) {
					if merged[mergeCheck{m, t}] {
						continue // checked already: a merge named by many aliases is walked once
					}
					merged[mergeCheck{m, t}] = true
					if err := checkKeys(m, t, path, merged); err != nil {
						return err
					}
				}
				continue
			}
			ft, ok := fields[key]
			if !ok {
				return fmt.Errorf("config: unknown key %s (line %d)", join(path, key), n.Content[i].Line)
			}
			if err := checkKeys(val, ft, join(path, key), merged); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, item := range n.Content {
			if err := checkKeys(item, t.Elem(), path+"["+strconv.Itoa(i)+"]", merged); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkAliasCycles refuses an alias inside the node it names
// ("a: &x [*x]"), which the checks below would follow forever. state
// marks the nodes being walked (1) and those done (2), so that each node
// is walked once however many aliases name it.
func checkAliasCycles(n *yaml.Node, state map[*yaml.Node]int) error {
	switch state[n] {
	case 1:
		return fmt.Errorf("config: line %d: an alias names a node that holds it", n.Line)
	case 2:
		return nil
	}
	state[n] = 1
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		if err := checkAliasCycles(n.Alias, state); err != nil {
			return err
		}
	}
	for _, c := range n.Content {
		if err := checkAliasCycles(c, state); err != nil {
			return err
		}
	}
	state[n] = 2
	return nil
}

// mergeCheck is a merged mapping checked as a type: the checks walk each
// once, so that merges of merges cannot make them walk exponentially.
type mergeCheck struct {
	n *yaml.Node
	t reflect.Type
}

// isMerge reports whether key is YAML's merge key, <<.
func isMerge(key *yaml.Node) bool {
	return key.Kind == yaml.ScalarNode && key.Value == "<<" && (key.Tag == "!!merge" || key.ShortTag() == "!!merge")
}

// mergedMappings are the mappings a merge key's value names: one
// mapping, or a list of them, each possibly an alias.
func mergedMappings(n *yaml.Node) []*yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.SequenceNode {
		return []*yaml.Node{n}
	}
	var ms []*yaml.Node
	for _, item := range n.Content {
		ms = append(ms, mergedMappings(item)...)
	}
	return ms
}

// yamlFields maps the YAML keys of struct type t to their fields' types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	return fields
}

var yamlLinePrefix = regexp.MustCompile(`^line \d+: `)

// checkTypes decodes every value that is not a mapping into a struct or
// a list into a slice on its own, into its field's type, so that a value
// of the wrong type is refused with its key's path: the YAML library
// names only a line. It runs after expandEnv, whose replacements are in
// expanded.
func checkTypes(n *yaml.Node, t reflect.Type, path string, expanded map[*yaml.Node]bool, merged map[mergeCheck]bool) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// A value reached through an alias was written under another key,
	// perhaps a secret one: it is checked here, and not shown.
	aliased, line := false, n.Line
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n, aliased = n.Alias, true
	}
	custom := reflect.PointerTo(t).Implements(yamlUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)
	switch {
	case !custom && t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if isMerge(n.Content[i]) {
				for _, m := range mergedMappings(n.Content[i+1]) {
					if merged[mergeCheck{m, t}] {
						continue
					}
					merged[mergeCheck{m, t}] = true
					if err := checkTypes(m, t, path, expanded, merged); err != nil {
						return err
					}
				}
				continue
			}
			ft, ok := fields[key]
			if !ok {
				continue // refused by checkKeys
			}
			if err := checkTypes(n.Content[i+1], ft, join(path, key), expanded, merged); err != nil {
				return err
			}
		}
		return nil
	case !custom && t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			if err := checkTypes(item, t.Elem(), path+"["+strconv.Itoa(i)+"]", expanded, merged); err != nil {
				return err
			}
		}
		return nil
	}
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return nil
	}
	msg := strings.TrimPrefix(yamlError(err).Error(), "config: ")
	msg = yamlLinePrefix.ReplaceAllString(msg, "")
	switch {
	case aliased:
		msg = "the value of the alias *" + n.Anchor + " is not " + typeWord(t) + " (not shown: it may be a secret)"
	case holdsText(t):
		// A text key refused for a tag: its value may be a secret.
		msg = "want " + typeWord(t) + " without a tag such as !!int (the value is not shown: it may be a secret)"
	}
	if expanded[n] {
		// Not the value: the variable may hold a secret.
		msg = "the text ${NAME} gave is not " + typeWord(t)
		switch t.Kind() {
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Float32, reflect.Float64:
			if t != reflect.TypeFor[webhook.Duration]() {
				msg += " (${NAME} is replaced in strings and durations only: write numbers and booleans as they are)"
			}
		}
	}
	where := path
	if where == "" {
		where = "the document"
	}
	return fmt.Errorf("config: %s (line %d): %s", where, line, msg)
}

// holdsText reports whether t is text, or a list or map of text: the
// kinds of key that hold passwords, tokens, secrets and header values.
func holdsText(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String:
		return true
	case reflect.Slice, reflect.Map, reflect.Pointer:
		return holdsText(t.Elem())
	}
	return false
}

// typeWord names what a value of type t is written as.
func typeWord(t reflect.Type) string {
	if t == reflect.TypeFor[webhook.Duration]() {
		return "a Go duration such as 5s or 2h"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "text"
	case reflect.Map:
		return "a mapping of text"
	case reflect.Slice:
		return "a list of text"
	}
	return "a " + t.String()
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// expandEnv replaces ${NAME} in string values with the environment
// variable, and ${NAME:-default} with default when NAME is unset or
// empty, except in filters and partition_key (expressions are not
// templates).
func expandEnv(n *yaml.Node, path string, expanded map[*yaml.Node]bool) error {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if key == "filter" || key == "partition_key" {
				continue
			}
			if err := expandEnv(n.Content[i+1], join(path, key), expanded); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			if err := expandEnv(item, path+"["+strconv.Itoa(i)+"]", expanded); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		var missing []string
		if envRef.MatchString(n.Value) {
			expanded[n] = true
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			m := envRef.FindStringSubmatch(ref)
			name, def := m[1], m[2]
			v, ok := os.LookupEnv(name)
			if def != "" {
				if v == "" {
					v = def[len(":-"):]
				}
				return v
			}
			if !ok {
				missing = append(missing, name)
			}
			return v
		})
		if len(missing) > 0 {
			return fmt.Errorf("config: %s: environment variable %s is not set", path, strings.Join(missing, ", "))
		}
	}
	return nil
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
