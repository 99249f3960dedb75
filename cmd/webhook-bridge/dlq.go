package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// dlqPageSize is how many dead letters the dlq commands read at a time.
const dlqPageSize = webhookhttp.DeadLetterMaxLimit

// runDLQ lists or replays dead letters: from Redis directly when the
// config names a Redis (any topology), else through the running bridge's admin API. Both
// walk the dead letters a page at a time, so neither side ever holds the
// whole backlog; the walk covers the dead letters stored when it started.
func runDLQ(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		printUsage(stdout)
		return nil
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		return errors.New("usage: webhook-bridge dlq list|replay --config FILE [--subscription ID] [--event ID] (see webhook-bridge --help)")
	}
	verb := args[0]
	fs, flags := newDLQFlags(verb)
	configPath, subID, evID := &flags.config, &flags.subscription, &flags.event
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		if errors.Is(err, errHelp) {
			return nil
		}
		return err
	}
	if *configPath == "" {
		return errors.New("dlq: --config is required")
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	// No deadline on the whole walk, which may be long; every Redis call
	// and every HTTP request has its own.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	match := webhookhttp.ReplayMatch(*subID, *evID)
	if *subID != "" {
		if err := checkSubscription(ctx, cfg, *subID); err != nil {
			return err
		}
	}

	if !cfg.onRedis() {
		return dlqOverHTTP(ctx, cfg, verb, *subID, *evID, stdout)
	}
	client, err := redisClient(cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	store := deadLetterStore(cfg, client)
	if verb == "list" {
		all := webhookhttp.DeadLetters{Store: store, Unhandled: unhandledListers(cfg, client)}
		return walkDeadLetters(ctx, func(ctx context.Context, after string) ([]webhookhttp.DeadLetterView, string, error) {
			page, next, err := all.List(ctx, after, dlqPageSize, "")
			views := make([]webhookhttp.DeadLetterView, 0, len(page))
			for _, dl := range page {
				if match(dl) {
					views = append(views, webhookhttp.ViewOf(dl))
				}
			}
			return views, next, err
		}, func(page []webhookhttp.DeadLetterView) error { return printDeadLetters(stdout, page) })
	}
	pub, err := newPublisher(cfg, client, cfg.partitionKey(nil))
	if err != nil {
		return err
	}
	defer pub.Close()
	// Only what the subscriptions in force would deliver now: the others
	// (orphans of a removed subscription, say) keep their history.
	stored, err := webhookhttp.RedisStore{Client: client, Key: subscriptionsKey(cfg)}.List(ctx)
	if err != nil {
		return fmt.Errorf("dlq: reading the subscriptions made through the admin API: %w", err)
	}
	canGo, err := webhook.CanGo(append(append([]webhook.Subscription(nil), cfg.Subscriptions...), stored...))
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	n, err := webhook.ReplayDeadLetters(ctx, store, pub, func(dl webhook.DeadLetter) bool { return match(dl) && canGo(dl) })
	fmt.Fprintf(stdout, "replayed %d dead letter(s)\n", n)
	return err
}

// walkDeadLetters reads every page of a walk with list, handing each to
// fn before reading the next.
func walkDeadLetters(ctx context.Context, list func(ctx context.Context, after string) ([]webhookhttp.DeadLetterView, string, error), fn func([]webhookhttp.DeadLetterView) error) error {
	after := ""
	for {
		page, next, err := list(ctx, after)
		if err != nil {
			return err
		}
		if err := fn(page); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		after = next
	}
}

// printDeadLetters prints dead letters one JSON object a line, as GET
// /v1/dlq shows them.
func printDeadLetters(w io.Writer, views []webhookhttp.DeadLetterView) error {
	enc := json.NewEncoder(w)
	for _, v := range views {
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	return nil
}

// dlqHTTPTimeout bounds each request of the dlq commands to the bridge.
const dlqHTTPTimeout = 2 * time.Minute

// dlqOverHTTP asks the running bridge, whose dead letters live in its
// memory: `list` reads GET /v1/dlq a page at a time, `replay` asks the
// bridge to walk its pages itself.
func dlqOverHTTP(ctx context.Context, cfg *Config, verb, subID, evID string, stdout io.Writer) error {
	if cfg.Auth.AdminToken == "" {
		return errors.New("dlq: on the in-memory backend the dead letters live in the running bridge, whose admin API needs auth.admin_token")
	}
	base := "http://" + cfg.Listen
	client := &http.Client{Timeout: dlqHTTPTimeout}
	call := func(ctx context.Context, method, u string, out any) error {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+cfg.Auth.AdminToken)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("dlq: asking the bridge at %s: %w", base, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return fmt.Errorf("dlq: the bridge answered %s: %s", resp.Status, b)
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	if verb == "replay" {
		var out struct {
			Replayed int `json:"replayed"`
		}
		u := base + "/v1/dlq/replay?" + url.Values{"subscription": {subID}, "event": {evID}}.Encode()
		if err := call(ctx, http.MethodPost, u, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "replayed %d dead letter(s)\n", out.Replayed)
		return nil
	}
	return walkDeadLetters(ctx, func(ctx context.Context, after string) ([]webhookhttp.DeadLetterView, string, error) {
		var page webhookhttp.DeadLetterPage
		u := base + "/v1/dlq?" + url.Values{"limit": {strconv.Itoa(dlqPageSize)}, "after": {after}}.Encode()
		err := call(ctx, http.MethodGet, u, &page)
		views := page.DeadLetters[:0]
		for _, v := range page.DeadLetters {
			if (subID == "" || v.SubscriptionID == subID) && (evID == "" || v.Event.ID == evID) {
				views = append(views, v)
			}
		}
		return views, page.Next, err
	}, func(page []webhookhttp.DeadLetterView) error { return printDeadLetters(stdout, page) })
}
