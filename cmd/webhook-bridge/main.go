// Command webhook-bridge is a sidecar that turns events into signed,
// retried HTTP deliveries. It consumes a stream (Redis — one server, a
// Cluster or a primary managed by Sentinel — or in memory when no Redis is
// configured), matches each event against subscriptions by topic and an
// expr-lang filter, and POSTs the matches; see README.md and
// examples/bridge.yaml.
//
// Usage:
//
//	webhook-bridge --config FILE                run the bridge
//	webhook-bridge dlq list --config FILE [--subscription ID] [--event ID]
//	                                            print dead letters, one JSON object per line
//	webhook-bridge dlq replay --config FILE [--subscription ID] [--event ID]
//	                                            deliver dead letters again
//	webhook-bridge log --config FILE [--event ID] [--subscription ID] [--since 1h] ...
//	                                            print delivery attempts from the delivery log
//	webhook-bridge recover --config FILE --subscription ID --since 24h [--until T]
//	                                            deliver again what a subscription never got
//	webhook-bridge config check FILE            load and validate FILE, print what would run
//	webhook-bridge --version                    print the version
//	webhook-bridge --help                       print the usage
//
// SIGTERM or SIGINT shuts the bridge down gracefully; a second one stops it
// at once.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
	"github.com/switchyard-go/switchyard/webhook/webhookui"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-bridge:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		printUsage(stdout)
		return nil
	}
	if len(args) > 0 && args[0] == "config" {
		return runConfig(args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "recover" {
		routeRedisLog(slog.New(slog.NewTextHandler(stderr, nil)))
		return runRecover(args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "log" {
		routeRedisLog(slog.New(slog.NewTextHandler(stderr, nil)))
		return runLog(args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "dlq" {
		routeRedisLog(slog.New(slog.NewTextHandler(stderr, nil)))
		return runDLQ(args[1:], stdout, stderr)
	}
	fs, flags := newBridgeFlags()
	if err := parseFlags(fs, args, stdout); err != nil {
		if errors.Is(err, errHelp) {
			return nil
		}
		return err
	}
	if flags.version {
		printVersion(stdout)
		return nil
	}
	if flags.config == "" || fs.NArg() > 0 {
		return errors.New("usage: webhook-bridge --config FILE | webhook-bridge dlq list|replay --config FILE | webhook-bridge config check FILE (see webhook-bridge --help)")
	}
	cfg, err := loadConfig(flags.config)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	routeRedisLog(log)
	ctx, stop := notifyShutdown(log, os.Exit)
	defer stop()
	return serve(ctx, cfg, log, nil)
}

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // checked by validate
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// mountBeside adds to api what the sidecar serves beside the API: the
// console when an admin token is set, the demo's receiver in demo mode.
// The function it returns stops what it started.
func mountBeside(api *webhookhttp.Handler, cfg *Config, log *slog.Logger) (func(), error) {
	stop := func() {}
	if cfg.Auth.AdminToken != "" {
		// The console is a client of the admin API: off without it.
		console, err := webhookui.New(webhookui.Config{API: api, AdminToken: cfg.Auth.AdminToken, Logger: log})
		if err != nil {
			return nil, err
		}
		stop = func() { _ = console.Close() }
		api.Handle("/ui/", console)
		api.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	}
	if cfg.Demo.Enabled {
		api.Handle("POST /demo/receiver", demoReceiver(cfg.Demo.Secret, log))
	}
	return stop, nil
}

// serve runs the bridge until ctx is done, then shuts down gracefully.
// ready, when not nil, receives the listening address.
func serve(ctx context.Context, cfg *Config, log *slog.Logger, ready chan<- string) error {
	tel, err := startTelemetry(ctx, cfg, log)
	if err != nil {
		return err
	}
	// What follows the shutdown (closing the backend, then flushing the
	// last spans) fits in telemetryFlushTimeout together, from when the
	// shutdown ends: the documented bound is shutdown_delay +
	// shutdown_timeout + that.
	var exitBy time.Time
	defer func() { tel.stop(exitBy) }() // after the backend is closed: its last spans too
	be, err := openBackend(ctx, cfg, log)
	if err != nil {
		return err
	}
	abandoned := false // closing the backend would wait for the deliveries left running
	defer func() {
		if !abandoned {
			_ = be.Close()
		}
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := webhookhttp.NewMetrics(reg, webhookhttp.MetricsConfig{Lag: be.lag, DeadLetters: be.dead, Unhandled: be.unhandledCount(), PartitionKeyFallbacks: be.keyFallbacks, AttemptLog: be.attempts})
	schedule := make([]time.Duration, len(cfg.Retry.Schedule))
	for i, d := range cfg.Retry.Schedule {
		schedule[i] = time.Duration(d)
	}
	targets, _ := cfg.targetPolicy() // checked by validate
	draining := &stopping{}
	var api *webhookhttp.Handler
	bridge, err := webhook.New(webhook.Config{
		Targets:    targets,
		Subscriber: be.sub, Publisher: be.pub,
		Retry:   webhook.RetryPolicy{Schedule: schedule, MaxAttempts: cfg.Retry.MaxAttempts},
		Timeout: time.Duration(cfg.Timeout), PerEndpoint: cfg.PerEndpoint, MaxInFlight: cfg.MaxInFlight,
		DeadLetters: be.dead, FanoutLog: be.fanout, Observer: m, Logger: log,
		AttemptLog: be.attempts, ResponseBodyBytes: cfg.DeliveryLog.ResponseBodyBytes,
		Health: be.health, DisableAfter: disableAfter(cfg),
		// The API's store disables it for every replica; the API is made
		// below, before the bridge runs.
		Disable:     func(ctx context.Context, id, reason string) (bool, error) { return api.Disable(ctx, id, reason) },
		Reload:      func(ctx context.Context) error { return api.Sync(ctx) },
		RateLimiter: rateLimiter(cfg, be.client), EndpointLimits: cfg.endpointLimits(),
	})
	if err != nil {
		return err
	}
	noteShutdownWork(ctx, bridge.InFlight, be.client == nil)
	api, err = webhookhttp.New(webhookhttp.Config{
		Bridge: bridge, Publisher: be.pub, Store: be.subs, ReadOnly: cfg.Subscriptions,
		JWTSecret: cfg.Auth.JWTSecret, AllowTokensWithoutExpiry: cfg.Auth.JWTAllowNoExp, AdminToken: cfg.Auth.AdminToken,
		MaxBodyBytes: cfg.MaxBodyBytes, MaxBatch: cfg.MaxBatch,
		Dedupe: be.dedupe, DedupeWindow: time.Duration(cfg.Ingest.DedupeWindow),
		Targets: targets, Unhandled: be.unhandled, Ready: draining.ready(be.ready),
		Gatherer: reg, Metrics: m, Logger: log,
	})
	if err != nil {
		return err
	}
	if err := api.Sync(ctx); err != nil {
		return fmt.Errorf("loading subscriptions: %w", err)
	}
	closeBeside, err := mountBeside(api, cfg, log)
	if err != nil {
		return err
	}
	defer closeBeside()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	httpServer := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10, // larger header blocks get 431
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- httpServer.Serve(ln) }()
	tel.announce()
	logStart(log, cfg, bridge.Subscriptions(), ln.Addr().String())
	log.Info("webhook-bridge: listening", "addr", ln.Addr().String(), "subscriptions", len(bridge.Subscriptions()))
	if ready != nil {
		ready <- ln.Addr().String()
	}

	// The signal ends ctx; consumption goes on until shutDown stops it,
	// after shutdown_delay.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	bridgeDone := make(chan struct{})
	go func() { defer close(bridgeDone); bridge.Run(runCtx) }()
	go api.Watch(runCtx, 250*time.Millisecond)
	if be.drain != nil {
		go be.drain(runCtx)
	}
	if cfg.Demo.Enabled {
		log.Info("webhook-bridge: demo on: emitting demo.ping every " + time.Duration(cfg.Demo.Interval).String())
		go demoEmitter(runCtx, be.pub, time.Duration(cfg.Demo.Interval), log)
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	if serveErr == nil {
		delayShutdown(log, draining, time.Duration(cfg.ShutdownDelay))
	}
	log.Info("webhook-bridge: shutting down: no new events; waiting for the deliveries in flight (a second SIGINT or SIGTERM stops at once)",
		"in_flight", bridge.InFlight(), "timeout", time.Duration(cfg.ShutdownTimeout))
	err = shutDown(log, httpServer, stopRun, bridgeDone, bridge.Close, bridge.InFlight, be.queued, time.Duration(cfg.ShutdownTimeout))
	exitBy = time.Now().Add(telemetryFlushTimeout)
	if err != nil {
		abandoned = true
		return err
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}
