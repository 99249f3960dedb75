package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
)

// dlqLine is one dead letter as `dlq list` prints it.
type dlqLine struct {
	ID             string    `json:"id"`
	EventID        string    `json:"event_id"`
	EventName      string    `json:"event_name"`
	SubscriptionID string    `json:"subscription_id"`
	Attempts       int       `json:"attempts"`
	LastStatus     int       `json:"last_status"`
	LastError      string    `json:"last_error"`
	At             time.Time `json:"at"`
}

// runDLQ lists or replays dead letters: from Redis directly when the
// config has redis.url, else through the running bridge's admin API.
func runDLQ(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		return errors.New("usage: webhook-bridge dlq list|replay --config FILE [--subscription ID] [--event ID]")
	}
	verb := args[0]
	fs := flag.NewFlagSet("webhook-bridge dlq "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path of the bridge's YAML config (required)")
	subID := fs.String("subscription", "", "replay only this subscription's dead letters")
	evID := fs.String("event", "", "replay only this event's dead letters")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *configPath == "" {
		return errors.New("dlq: --config is required")
	}
	if verb == "list" && (*subID != "" || *evID != "") {
		return errors.New("dlq list takes no --subscription or --event")
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if cfg.Redis.URL == "" {
		return dlqOverHTTP(ctx, cfg, verb, *subID, *evID, stdout)
	}
	client, err := redisClient(cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	store := webhook.RedisDeadLetters{Client: client, Key: deadLetterKey(cfg)}
	if verb == "list" {
		dls, err := store.List(ctx)
		if err != nil {
			return err
		}
		return printDeadLetters(stdout, dls)
	}
	pub, err := redis.NewPublisher(client, publisherConfig(cfg))
	if err != nil {
		return err
	}
	defer pub.Close()
	n, err := webhook.ReplayDeadLetters(ctx, store, pub, replayMatch(*subID, *evID))
	fmt.Fprintf(stdout, "replayed %d dead letter(s)\n", n)
	return err
}

func printDeadLetters(w io.Writer, dls []webhook.DeadLetter) error {
	enc := json.NewEncoder(w)
	for _, dl := range dls {
		if err := enc.Encode(dlqLine{
			ID: dl.ID, EventID: string(dl.Event.ID), EventName: string(dl.Event.Name), SubscriptionID: dl.SubscriptionID,
			Attempts: dl.Attempts, LastStatus: dl.LastStatus, LastError: dl.LastError, At: dl.At,
		}); err != nil {
			return err
		}
	}
	return nil
}

// dlqOverHTTP asks the running bridge, whose dead letters live in its
// memory.
func dlqOverHTTP(ctx context.Context, cfg *Config, verb, subID, evID string, stdout io.Writer) error {
	if cfg.Auth.AdminToken == "" {
		return errors.New("dlq: on the in-memory backend the dead letters live in the running bridge, whose admin API needs auth.admin_token")
	}
	base := "http://" + cfg.Listen
	method, u := http.MethodGet, base+"/v1/dlq"
	if verb == "replay" {
		method, u = http.MethodPost, base+"/v1/dlq/replay?"+url.Values{"subscription": {subID}, "event": {evID}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Auth.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("dlq: asking the bridge at %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("dlq: the bridge answered %s: %s", resp.Status, b)
	}
	if verb == "replay" {
		var out struct {
			Replayed int `json:"replayed"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "replayed %d dead letter(s)\n", out.Replayed)
		return nil
	}
	var out struct {
		DeadLetters []webhook.DeadLetter `json:"dead_letters"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return err
	}
	return printDeadLetters(stdout, out.DeadLetters)
}
