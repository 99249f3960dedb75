package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// checkSubscription returns an error unless id names a subscription: one
// of the config file's, or one made through the admin API, which lives in
// Redis (the hash subscriptionsKey) or, in memory, in the running bridge
// (asked with GET /v1/subscriptions/{id}). So that `dlq list|replay
// --subscription` with a mistyped id fails instead of finding nothing.
func checkSubscription(ctx context.Context, cfg *Config, id string) error {
	for _, s := range cfg.Subscriptions {
		if s.ID == id {
			return nil
		}
	}
	notFound := fmt.Errorf("dlq: no subscription %q in the config or made through the admin API", id)
	if cfg.onRedis() {
		client, err := redisClient(cfg)
		if err != nil {
			return err
		}
		defer client.Close()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ok, err := client.HExists(ctx, subscriptionsKey(cfg), id).Result()
		switch {
		case err != nil:
			return fmt.Errorf("dlq: looking for subscription %q in %s: %w", id, subscriptionsKey(cfg), err)
		case !ok:
			return notFound
		}
		return nil
	}
	if cfg.Auth.AdminToken == "" {
		return nil // the dead letters cannot be reached either, which dlqOverHTTP says
	}
	ctx, cancel := context.WithTimeout(ctx, dlqHTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cfg.Listen+"/v1/subscriptions/"+url.PathEscape(id), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Auth.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("dlq: asking the bridge at %s for subscription %q: %w", cfg.Listen, id, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		return notFound
	}
	return fmt.Errorf("dlq: asking the bridge for subscription %q: %w", id, errors.New(resp.Status))
}
