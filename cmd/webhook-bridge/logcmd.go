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
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// logFlags are the flags of `webhook-bridge log`.
type logFlags struct {
	config, event, subscription, outcome, since, until string
	status, limit                                      int
	json                                               bool
}

func newLogFlags() (*flag.FlagSet, *logFlags) {
	f := &logFlags{}
	fs := newFlagSet("webhook-bridge log")
	fs.StringVar(&f.config, "config", "", "path of the bridge's YAML `FILE` (required)")
	fs.StringVar(&f.event, "event", "", "only the attempts of event `ID`")
	fs.StringVar(&f.subscription, "subscription", "", "only the attempts of subscription `ID`")
	fs.StringVar(&f.outcome, "outcome", "", "only attempts with this `OUTCOME`: "+strings.ReplaceAll(outcomeNames(), ", ", "|"))
	fs.IntVar(&f.status, "status", 0, "only attempts answered with this HTTP `STATUS`")
	fs.StringVar(&f.since, "since", "", "only attempts recorded from `WHEN` on: an RFC 3339 time, or a duration ago (1h)")
	fs.StringVar(&f.until, "until", "", "only attempts recorded before `WHEN` (as --since)")
	fs.IntVar(&f.limit, "limit", 100, "print at most `N` attempts, newest first (0: all)")
	fs.BoolVar(&f.json, "json", false, "print one JSON object per line, as GET /v1/attempts shows them")
	return fs, f
}

func outcomeNames() string {
	s := make([]string, len(webhook.Outcomes))
	for i, o := range webhook.Outcomes {
		s[i] = string(o)
	}
	return strings.Join(s, ", ")
}

// logHTTPTimeout bounds each request of `log` to the running bridge.
const logHTTPTimeout = time.Minute

// runLog prints delivery attempts, newest first: from Redis directly when
// the config names a Redis, else from the running bridge's admin API.
func runLog(args []string, stdout io.Writer) error {
	fs, f := newLogFlags()
	if err := parseFlags(fs, args, stdout); err != nil {
		if errors.Is(err, errHelp) {
			return nil
		}
		return err
	}
	if f.config == "" || fs.NArg() > 0 {
		return errors.New("usage: webhook-bridge log --config FILE [--event ID] [--subscription ID] [--since 1h] ... (see webhook-bridge --help)")
	}
	if f.limit < 0 {
		return fmt.Errorf("log: --limit %d: want 0 (all) or more", f.limit)
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	if cfg.DeliveryLog.Disabled {
		return errors.New("log: delivery_log.disabled is set in the config: no attempt is recorded")
	}
	params := url.Values{}
	for k, v := range map[string]string{"event_id": f.event, "subscription_id": f.subscription, "outcome": f.outcome, "since": f.since, "until": f.until} {
		if v != "" {
			params.Set(k, v)
		}
	}
	if f.status != 0 {
		params.Set("status", strconv.Itoa(f.status))
	}
	q, err := webhookhttp.ParseAttemptQuery(params, time.Now())
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var query func(context.Context, webhook.AttemptQuery) (webhook.AttemptPage, error)
	if cfg.onRedis() {
		client, err := redisClient(cfg)
		if err != nil {
			return err
		}
		defer client.Close()
		l, err := redisDeliveryLog(cfg, client)
		if err != nil {
			return err
		}
		query = l.Query
	} else {
		query, err = attemptsOverHTTP(cfg, params)
		if err != nil {
			return err
		}
	}
	out := newAttemptPrinter(stdout, f.json)
	printed := 0
	for {
		q.Limit = webhook.MaxAttemptPage // all: full pages
		if f.limit > 0 {
			q.Limit = min(f.limit-printed, webhook.MaxAttemptPage)
		}
		page, err := query(ctx, q)
		if err != nil {
			return fmt.Errorf("log: %w", err)
		}
		for _, a := range page.Attempts {
			if err := out.print(a); err != nil {
				return err
			}
		}
		printed += len(page.Attempts)
		if page.Next == "" || (f.limit > 0 && printed >= f.limit) {
			break
		}
		q.Cursor = page.Next
	}
	return out.flush()
}

// attemptsOverHTTP queries the running bridge, whose delivery log lives
// in its memory, through GET /v1/attempts.
func attemptsOverHTTP(cfg *Config, params url.Values) (func(context.Context, webhook.AttemptQuery) (webhook.AttemptPage, error), error) {
	if cfg.Auth.AdminToken == "" {
		return nil, errors.New("log: on the in-memory backend the delivery log lives in the running bridge, whose admin API needs auth.admin_token")
	}
	client := &http.Client{Timeout: logHTTPTimeout}
	return func(ctx context.Context, q webhook.AttemptQuery) (webhook.AttemptPage, error) {
		p := url.Values{}
		for k, v := range params {
			p[k] = v
		}
		p.Set("limit", strconv.Itoa(max(q.Limit, 1)))
		if q.Cursor != "" {
			p.Set("cursor", q.Cursor)
		}
		u := "http://" + cfg.Listen + "/v1/attempts?" + p.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return webhook.AttemptPage{}, err
		}
		req.Header.Set("Authorization", "Bearer "+cfg.Auth.AdminToken)
		resp, err := client.Do(req)
		if err != nil {
			return webhook.AttemptPage{}, fmt.Errorf("asking the bridge at %s: %w", cfg.Listen, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return webhook.AttemptPage{}, fmt.Errorf("the bridge answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		var page webhookhttp.AttemptPage
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
			return webhook.AttemptPage{}, err
		}
		out := webhook.AttemptPage{Next: page.Next}
		for _, v := range page.Attempts {
			out.Attempts = append(out.Attempts, v.Record())
		}
		return out, nil
	}, nil
}

// attemptPrinter prints attempts as a table for terminals, or as JSON
// lines.
type attemptPrinter struct {
	json bool
	enc  *json.Encoder
	tw   *tabwriter.Writer
	w    io.Writer
}

func newAttemptPrinter(w io.Writer, asJSON bool) *attemptPrinter {
	p := &attemptPrinter{json: asJSON, w: w, enc: json.NewEncoder(w)}
	if !asJSON {
		p.tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(p.tw, "TIME\tSUBSCRIPTION\tEVENT\tNAME\tATTEMPT\tOUTCOME\tSTATUS\tTOOK\tRESPONSE / ERROR")
	}
	return p
}

func (p *attemptPrinter) print(a webhook.Attempt) error {
	if p.json {
		return p.enc.Encode(webhookhttp.AttemptViewOf(a))
	}
	status, took := "-", "-"
	if a.Status != 0 {
		status = strconv.Itoa(a.Status)
	}
	if a.Duration > 0 {
		took = a.Duration.Round(100 * time.Microsecond).String()
	}
	// The receiver's own words say most; the error, when it said none.
	detail := a.ResponseBody
	if detail == "" {
		detail = a.Error
	}
	_, err := fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", a.At.UTC().Format(time.RFC3339), cell(a.SubscriptionID, 24),
		cell(string(a.EventID), 28), cell(string(a.EventName), 24), a.Attempt, a.Outcome, status, took, cell(detail, 60))
	return err
}

// flush ends the table; with no attempt, the header alone says so.
func (p *attemptPrinter) flush() error {
	if p.json {
		return nil
	}
	return p.tw.Flush()
}

// cell makes s one printable table cell of at most n runes: control
// characters (a receiver's answer is untrusted) become escapes.
func cell(s string, n int) string {
	q := strconv.QuoteToGraphic(s)
	q = q[1 : len(q)-1]
	if r := []rune(q); len(r) > n {
		q = string(r[:n-1]) + "…"
	}
	if q == "" {
		return "-"
	}
	return q
}
