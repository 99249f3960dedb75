package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// recoverFlags are the flags of `webhook-bridge recover`.
type recoverFlags struct{ config, subscription, since, until string }

func newRecoverFlags() (*flag.FlagSet, *recoverFlags) {
	f := &recoverFlags{}
	fs := newFlagSet("webhook-bridge recover")
	fs.StringVar(&f.config, "config", "", "path of the bridge's YAML `FILE` (required)")
	fs.StringVar(&f.subscription, "subscription", "", "the subscription `ID` to deliver again to (required)")
	fs.StringVar(&f.since, "since", "", "the window's start `WHEN`: an RFC 3339 time, or a duration ago (24h) (required)")
	fs.StringVar(&f.until, "until", "", "the window's end `WHEN` (as --since; default now)")
	return fs, f
}

// runRecover delivers again what a subscription was offered in a window
// and never got: on Redis directly, else through the running bridge.
func runRecover(args []string, stdout io.Writer) error {
	fs, f := newRecoverFlags()
	if err := parseFlags(fs, args, stdout); err != nil {
		if errors.Is(err, errHelp) {
			return nil
		}
		return err
	}
	if f.config == "" || f.subscription == "" || f.since == "" || fs.NArg() > 0 {
		return errors.New("usage: webhook-bridge recover --config FILE --subscription ID --since 24h [--until T] (see webhook-bridge --help)")
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	if cfg.DeliveryLog.Disabled {
		return errors.New("recover: delivery_log.disabled is set in the config: there is nothing to recover from")
	}
	now := time.Now()
	q, err := webhookhttp.ParseAttemptQuery(url.Values{"since": {f.since}, "until": {f.until}}, now)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var rep webhook.RecoverReport
	if cfg.onRedis() {
		rep, err = recoverOnRedis(ctx, cfg, f.subscription, q.Since, q.Until)
	} else {
		rep, err = recoverOverHTTP(ctx, cfg, f.subscription, f.since, f.until)
	}
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	fmt.Fprintf(stdout, "scheduled %d event(s) again; %d still being retried; %d past the delivery log's retention\n",
		rep.Scheduled, rep.InProgress, rep.Expired)
	return nil
}

// recoverOnRedis checks that the subscription exists and is enabled (in
// the config, the admin API's store and its run-time disabled set), then
// recovers from the delivery log in Redis.
func recoverOnRedis(ctx context.Context, cfg *Config, id string, since, until time.Time) (webhook.RecoverReport, error) {
	client, err := redisClient(cfg)
	if err != nil {
		return webhook.RecoverReport{}, err
	}
	defer client.Close()
	store := webhookhttp.RedisStore{Client: client, Key: subscriptionsKey(cfg)}
	stored, err := store.List(ctx)
	if err != nil {
		return webhook.RecoverReport{}, fmt.Errorf("reading the subscriptions made through the admin API: %w", err)
	}
	off, err := store.DisabledSet(ctx)
	if err != nil {
		return webhook.RecoverReport{}, fmt.Errorf("reading the disabled subscriptions: %w", err)
	}
	var found *webhook.Subscription
	for _, s := range append(append([]webhook.Subscription(nil), cfg.Subscriptions...), stored...) {
		if s.ID == id {
			found = &s
			break
		}
	}
	if _, runtimeOff := off[id]; found == nil {
		return webhook.RecoverReport{}, fmt.Errorf("no subscription %q in the config or made through the admin API", id)
	} else if found.Disabled || runtimeOff {
		return webhook.RecoverReport{}, fmt.Errorf("subscription %q is disabled: enable it first, or its deliveries are only skipped again", id)
	}
	log, err := redisDeliveryLog(cfg, client)
	if err != nil {
		return webhook.RecoverReport{}, err
	}
	pub, err := newPublisher(cfg, client, cfg.partitionKey(nil))
	if err != nil {
		return webhook.RecoverReport{}, err
	}
	defer pub.Close()
	return webhook.Recover(ctx, webhook.Recovery{Log: log, DeadLetters: deadLetterStore(cfg, client), Publisher: pub},
		id, since, until)
}

// recoverOverHTTP asks the running bridge, whose delivery log lives in its
// memory.
func recoverOverHTTP(ctx context.Context, cfg *Config, id, since, until string) (webhook.RecoverReport, error) {
	var rep webhook.RecoverReport
	if cfg.Auth.AdminToken == "" {
		return rep, errors.New("on the in-memory backend the delivery log lives in the running bridge, whose admin API needs auth.admin_token")
	}
	body, _ := json.Marshal(webhookhttp.RecoverRequest{Since: since, Until: until})
	u := "http://" + cfg.Listen + "/v1/subscriptions/" + url.PathEscape(id) + "/recover"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return rep, err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Auth.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: logHTTPTimeout}).Do(req)
	if err != nil {
		return rep, fmt.Errorf("asking the bridge at %s: %w", cfg.Listen, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return rep, fmt.Errorf("the bridge answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return rep, json.NewDecoder(resp.Body).Decode(&rep)
}
