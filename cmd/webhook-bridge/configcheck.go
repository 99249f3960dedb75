package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/internal/redact"
	"github.com/switchyard-go/switchyard/webhook"
)

// configUsage is the one line of `webhook-bridge config` usage.
const configUsage = "usage: webhook-bridge config check FILE (see webhook-bridge --help)"

// runConfig runs `webhook-bridge config check FILE`: it loads and
// validates FILE as the bridge would at start, environment included,
// and prints what the bridge would run, with every secret left out. It
// opens no connection and no listener.
func runConfig(args []string, stdout io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		printUsage(stdout)
		return nil
	}
	if len(args) == 0 || args[0] != "check" {
		return errors.New(configUsage)
	}
	args = args[1:]
	if len(args) == 1 && isHelp(args[0]) {
		printUsage(stdout)
		return nil
	}
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return errors.New(configUsage)
	}
	cfg, err := loadConfig(args[0])
	if err != nil {
		return err
	}
	// What startTelemetry would refuse at start, from the environment.
	plan, err := planExport(cfg.Telemetry, os.Getenv)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "config %s: ok\n", args[0])
	describeConfig(&b, cfg, plan)
	_, err = io.WriteString(stdout, b.String())
	return err
}

// describeConfig writes what the bridge would run with cfg, a loaded
// config, one "key: value" line per subject: no password, token, secret
// or header value; URLs without user info and query values.
func describeConfig(b *strings.Builder, cfg *Config, plan exportPlan) {
	line := func(key, format string, args ...any) {
		fmt.Fprintf(b, "%s: %s\n", key, fmt.Sprintf(format, args...))
	}
	s, _ := cfg.parseRedis() // checked by validate
	switch {
	case s == nil:
		line("backend", "memory (no redis.url, redis.cluster_url or redis.sentinel_url: events, retries and dead letters are lost when the process ends)")
	default:
		tlsOn := "tls off"
		if s.tlsConfig() != nil {
			tlsOn = "tls on"
			if s.tlsConfig().InsecureSkipVerify {
				tlsOn += " (certificates not verified)"
			}
		}
		switch {
		case s.cluster != nil:
			line("backend", "redis cluster, seed nodes %s, %s (%s %s)", strings.Join(s.cluster.Addrs, " "), tlsOn, s.key, cfg.redisShown())
		case s.failover != nil:
			line("backend", "redis sentinel, primary %q, db %d, sentinels %s, %s (%s %s)", s.failover.MasterName, s.failover.DB,
				strings.Join(s.failover.SentinelAddrs, " "), tlsOn, s.key, cfg.redisShown())
		default:
			line("backend", "redis single, %s, db %d, %s (%s %s)", s.single.Addr, s.single.DB, tlsOn, s.key, cfg.redisShown())
		}
		if cfg.Redis.WaitReplicas > 0 {
			line("redis.wait_replicas", "%d, within %s", cfg.Redis.WaitReplicas, cfg.redisWaitTimeout())
		}
	}
	maxLen := "no trimming"
	if cfg.StreamMaxLen > 0 {
		maxLen = "trimmed to about " + strconv.FormatInt(cfg.StreamMaxLen, 10) + " entries"
	}
	line("stream", "%s (%s)", cfg.Stream, maxLen)
	switch {
	case s == nil && (cfg.Partitions > 1 || cfg.DrainPartitions > 0):
		line("partitions", "ignored in memory (partitions %d, drain_partitions %d)", cfg.Partitions, cfg.DrainPartitions)
	case !cfg.partitioned():
		line("partitions", "none, one stream")
	default:
		key := "the event id"
		if cfg.PartitionKey != "" {
			key = oneLine(cfg.PartitionKey)
		}
		line("partitions", "%d, %s:0 to %s:%d, placed by %s", cfg.Partitions, cfg.Stream, cfg.Stream, cfg.Partitions-1, key)
	}
	if s != nil && cfg.DrainPartitions > 0 {
		line("drain_partitions", "%d: %s:%d to %s:%d read until empty, not written", cfg.DrainPartitions, cfg.Stream, max(cfg.Partitions, 1), cfg.Stream, cfg.DrainPartitions-1)
	}
	consumer := cfg.Consumer
	if consumer == "" {
		consumer = "<host>-<pid>"
	}
	line("group", "%s, consumer %s, start %s", cfg.Group, consumer, cfg.Start)
	http := "POST /v1/events, /healthz, /readyz, /metrics"
	if cfg.Auth.AdminToken != "" {
		http += ", /v1/subscriptions, /v1/dlq, /v1/attempts, the console /ui/"
	}
	if cfg.Demo.Enabled {
		http += ", the demo receiver " + demoReceiverPath
	}
	line("listen", "%s (%s)", cfg.Listen, http)
	jwt := "off: POST /v1/events takes no token"
	if cfg.Auth.JWTSecret != "" {
		jwt = "on (HS256 bearer token on POST /v1/events"
		if cfg.Auth.JWTAllowNoExp {
			jwt += ", tokens without exp accepted"
		}
		jwt += ")"
	}
	line("auth.jwt", "%s", jwt)
	admin := "off: no admin API and no console"
	if cfg.Auth.AdminToken != "" {
		admin = "on (bearer token)"
	}
	line("auth.admin_token", "%s", admin)
	if plan.on {
		t := fmt.Sprintf("on, spans to %s (from %s)", redact.Endpoint(plan.url), plan.source)
		if r := cfg.Telemetry.SampleRatio; r > 0 {
			t += ", sample_ratio " + strconv.FormatFloat(r, 'g', -1, 64)
		}
		line("tracing", "%s", t)
	} else {
		line("tracing", "off (%s)", plan.why)
	}
	targets := "any address"
	if cfg.Targets.DenyPrivate {
		targets = "public addresses only"
		if len(cfg.Targets.Allow) > 0 {
			targets += ", and " + strings.Join(cfg.Targets.Allow, " ")
		}
	}
	line("targets", "%s", targets)
	line("deliveries", "concurrency %d, per endpoint %s, in flight %s, timeout %s", cfg.Concurrency, orDefault(cfg.PerEndpoint, 16), orDefault(cfg.MaxInFlight, 64), time.Duration(cfg.Timeout))
	line("retry", "%s", describeRetry(cfg))
	delay, timeout := time.Duration(cfg.ShutdownDelay), time.Duration(cfg.ShutdownTimeout)
	line("shutdown", "delay %s, timeout %s: exits within %s of SIGTERM (a container's grace period must be longer)", delay, timeout, delay+timeout+telemetryFlushTimeout)
	deadLetters := "every one kept"
	if cfg.DeadLetters.MaxLen > 0 {
		deadLetters = "about " + strconv.FormatInt(cfg.DeadLetters.MaxLen, 10) + " kept"
	}
	line("dead_letters", "%s", deadLetters)
	if cfg.DeliveryLog.Disabled {
		line("delivery_log", "off")
	} else {
		line("delivery_log", "on, %s or %d attempts kept, %d bytes of each response body", time.Duration(cfg.DeliveryLog.MaxAge), cfg.DeliveryLog.MaxLen, responseBodyBytes(cfg))
	}
	if d := time.Duration(*cfg.DisableAfter); d > 0 {
		line("disable_after", "%s", d)
	} else {
		line("disable_after", "never")
	}
	if cfg.Demo.Enabled {
		line("demo", "on, a demo.ping every %s", time.Duration(cfg.Demo.Interval))
	}
	line("subscriptions", "%d in the config (more may be added through the admin API)", len(cfg.Subscriptions))
	for _, s := range cfg.Subscriptions {
		fmt.Fprintf(b, "  - %s: topic %s -> %s", s.ID, s.Topic, redact.Endpoint(s.URL))
		var more []string
		if s.Disabled {
			more = append(more, "disabled")
		}
		if n := len(s.Secrets); n > 0 {
			more = append(more, fmt.Sprintf("signed (%d secret(s))", n))
		} else {
			more = append(more, "not signed")
		}
		if len(s.Headers) > 0 {
			names := make([]string, 0, len(s.Headers))
			for k := range s.Headers {
				names = append(names, k)
			}
			sort.Strings(names)
			more = append(more, "headers "+strings.Join(names, " "))
		}
		if s.Timeout > 0 {
			more = append(more, "timeout "+time.Duration(s.Timeout).String())
		}
		if s.MaxAttempts > 0 {
			more = append(more, "max_attempts "+strconv.Itoa(s.MaxAttempts))
		}
		if s.RateLimit != nil {
			more = append(more, "rate_limit "+describeRate(*s.RateLimit))
		}
		if s.Filter != "" {
			more = append(more, "filter "+oneLine(s.Filter))
		}
		fmt.Fprintf(b, " (%s)\n", strings.Join(more, ", "))
	}
	if len(cfg.Endpoints) > 0 {
		line("endpoints", "%d with a rate limit", len(cfg.Endpoints))
		for _, e := range cfg.Endpoints {
			fmt.Fprintf(b, "  - %s: rate_limit %s\n", webhook.EndpointKey(e.URL), describeRate(*e.RateLimit))
		}
	}
	line("log_level", "%s", cfg.LogLevel)
}

// oneLine is an expression on one line.
func oneLine(expr string) string { return strings.Join(strings.Fields(expr), " ") }

// orDefault is n, or def with "(default)" when n is 0.
func orDefault(n, def int) string {
	if n > 0 {
		return strconv.Itoa(n)
	}
	return strconv.Itoa(def) + " (default)"
}

// describeRetry is the retry section with the bridge's defaults.
func describeRetry(cfg *Config) string {
	schedule := webhook.DefaultSchedule
	if len(cfg.Retry.Schedule) > 0 {
		schedule = nil
		for _, d := range cfg.Retry.Schedule {
			schedule = append(schedule, time.Duration(d))
		}
	}
	attempts := cfg.Retry.MaxAttempts
	if attempts == 0 {
		attempts = len(schedule) + 1
	}
	waits := make([]string, len(schedule))
	for i, d := range schedule {
		waits[i] = d.String()
	}
	return fmt.Sprintf("waits %s (the last repeats, ±20%% jitter), %d attempts in all", strings.Join(waits, " "), attempts)
}

// describeRate is a rate limit as "5/s, burst 10".
func describeRate(l webhook.RateLimit) string {
	burst := "one second's worth"
	if l.Burst > 0 {
		burst = strconv.Itoa(l.Burst)
	}
	return strconv.FormatFloat(l.PerSecond, 'g', -1, 64) + "/s, burst " + burst
}

// responseBodyBytes is delivery_log.response_body_bytes with its default.
func responseBodyBytes(cfg *Config) int {
	switch n := cfg.DeliveryLog.ResponseBodyBytes; {
	case n < 0:
		return 0
	case n == 0:
		return webhook.DefaultResponseBodyBytes
	default:
		return n
	}
}
