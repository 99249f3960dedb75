package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

var (
	strictWebhookID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$|^sw_[0-9a-f]{32}$`)
	strictPct       = regexp.MustCompile(`^(?:[\x21\x23\x24\x26-\x7e]|%[0-9A-F]{2})*$`)
)

// strictHeaders reports what is wrong with a delivery's headers, read as
// a strict receiver would: tokens for names, visible ASCII for values,
// one value per bridge header, a webhook-id without '.', a signature that
// verifies, and ce-* percent-encoding that decodes to UTF-8.
func strictHeaders(h httpsink.Hit, secret string) []string {
	var bad []string
	for k, vs := range h.Header {
		for i := 0; i < len(k); i++ {
			if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(k[i])) && !(k[i] >= '0' && k[i] <= '9' || k[i] >= 'a' && k[i] <= 'z' || k[i] >= 'A' && k[i] <= 'Z') {
				bad = append(bad, fmt.Sprintf("header name %q", k))
			}
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if (v[i] < 0x20 && v[i] != '\t') || v[i] >= 0x7f {
					bad = append(bad, fmt.Sprintf("header %s: byte %d is %#x", k, i, v[i]))
					break
				}
			}
		}
		if strings.HasPrefix(strings.ToLower(k), "webhook-") || strings.HasPrefix(strings.ToLower(k), "ce-") {
			if len(vs) != 1 {
				bad = append(bad, fmt.Sprintf("header %s has %d values", k, len(vs)))
			}
		}
	}
	id := h.Header.Get("Webhook-Id")
	if !strictWebhookID.MatchString(id) {
		bad = append(bad, fmt.Sprintf("webhook-id %q", id))
	}
	ts := h.Header.Get("Webhook-Timestamp")
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		bad = append(bad, fmt.Sprintf("webhook-timestamp %q", ts))
	}
	if !webhook.Verify(secret, id, n, h.Body, h.Header.Get("Webhook-Signature")) {
		bad = append(bad, "signature does not verify for webhook-id "+id)
	}
	for _, k := range []string{"Ce-Id", "Ce-Type", "Ce-Time", "X-Correlation-Id"} {
		v := h.Header.Get(k)
		if !strictPct.MatchString(v) {
			bad = append(bad, fmt.Sprintf("%s %q is not percent-encoded printable ASCII", k, v))
			continue
		}
		if d, err := url.PathUnescape(v); err != nil || !utf8.ValidString(d) {
			bad = append(bad, fmt.Sprintf("%s %q does not decode to UTF-8", k, v))
		}
	}
	return bad
}

func advRedisConfig(stream string, sinkURL string) string {
	return fmt.Sprintf(`redis:
  url: redis://%s/0
stream: %s
consumer: c1
listen: LISTEN
auth:
  admin_token: admin-secret
retry:
  schedule: [50ms]
subscriptions:
  - id: healthy
    topic: "*"
    url: %s
    secret: %s
`, redisServer.Addr, stream, sinkURL, testSecret)
}

// listDLQ walks GET /v1/dlq.
func listDLQ(t *testing.T, p *proc) []webhookhttp.DeadLetterView {
	t.Helper()
	var out []webhookhttp.DeadLetterView
	after := ""
	for {
		status, body := p.do(t, http.MethodGet, "/v1/dlq?limit=1000&after="+url.QueryEscape(after), "admin-secret", "")
		if status != http.StatusOK {
			t.Fatalf("GET /v1/dlq: %d %s", status, body)
		}
		var page webhookhttp.DeadLetterPage
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		out = append(out, page.DeadLetters...)
		if page.Next == "" {
			return out
		}
		after = page.Next
	}
}

// ADVERSARY: entries written straight into the stream with hostile ids,
// names and correlation ids never reach a receiver with an invalid header;
// what cannot be delivered is dead-lettered at once, never retried, and
// never opens the endpoint's circuit: the healthy receiver keeps getting
// valid events promptly (no deferred deliveries).
//
// The attack that breaks it: an id longer than MaxEventIDLen. Ingest
// refuses ids over 128 bytes, and eventid.go says an event beyond the
// limits that arrives through the stream is dead-lettered as
// undeliverable; but CheckDeliverable checks only the name's and the
// correlation ID's length, so such an id is sent, percent-encoded, in
// ce-id. Past the receiver's header limit (1 MB for net/http, 8-16 KB for
// most proxies) every attempt is answered 431, counted as a failure,
// retried, and five of them open the circuit of a healthy endpoint.
func TestAdversaryStreamDoorHostileEntries(t *testing.T) {
	sink := httpsink.New(t, nil)
	stream := fmt.Sprintf("adv-stream-%d", time.Now().UnixNano())
	p := startBridge(t, advRedisConfig(stream, sink.URL))
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()

	type entry struct {
		id, name, corr string
		noID           bool
		deliverable    bool
		huge           bool
	}
	var entries []entry
	huge := strings.Repeat("é", 200_000) // 400 KB; 1.2 MB once percent-encoded in ce-id
	bad := []entry{
		{id: "a\r\nX-Evil: 1", name: "n"},
		{id: "ok", name: "n\r\nX-Evil: 1"},
		{id: "ok2", name: "n", corr: "c\r\nX-Evil: 1"},
		{id: "ok3", name: "n\x00"},
		{id: "ok4", name: "n\u0085"},
		{id: "ok5", name: "n", corr: "\x1b[31m"},
		{id: "ok6", name: strings.Repeat("N", 10_000)},
		{id: "ok7", name: "n", corr: strings.Repeat("c", 10_000)},
		{id: "ok8", name: ""},
		{id: "bad\xff", name: "n"},
		{id: "ok9", name: "n\xc3"},
		{id: "\x7f", name: "n"},
	}
	for i := 0; len(entries) < 100; i++ {
		e := bad[i%len(bad)]
		if !hasAnyByte(e.id, "\r\n\x00\x7f\xff") {
			e.id = fmt.Sprintf("%s-%d", e.id, i)
		}
		entries = append(entries, e)
	}
	for i := range 6 {
		entries = append(entries, entry{id: huge + strconv.Itoa(i), name: "n", huge: true})
	}
	// deliverable ones, with odd but valid text: valid headers expected
	for i, e := range []entry{
		{id: "a.b", name: "n.dot"}, {id: "é-ü", name: "ünïcødé"}, {id: "has space", name: "n", corr: "c d"},
		{noID: true, name: "n"}, {id: "x\u2028y", name: "n\u2028", corr: "\u2028"}, {id: "%41", name: "%", corr: "%0A"},
		{id: "ｆｕｌｌ", name: "n"}, {id: strings.Repeat("i", 129), name: "n"}, {id: "\"quoted\"", name: "\"q\""},
	} {
		e.deliverable = true
		if !e.noID {
			e.id = fmt.Sprintf("%s-%d", e.id, i)
		}
		entries = append(entries, e)
	}
	xadd := func(huge bool) {
		for k, e := range entries {
			if e.huge != huge {
				continue
			}
			vals := []any{"name", e.name, "payload", fmt.Sprintf(`{"k": %d}`, k)}
			if !e.noID {
				vals = append(vals, "id", e.id)
			}
			if e.corr != "" {
				vals = append(vals, "correlation_id", e.corr)
			}
			if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: vals}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	settled := func(what string, cond func(lag, deadOrFailed float64) bool) {
		t.Helper()
		deadline := time.Now().Add(wait)
		for {
			_, text := p.do(t, http.MethodGet, "/metrics", "", "")
			lag, ok1 := metricValue(text, "webhook_bridge_consumer_lag")
			unhandled, ok2 := metricValue(text, "webhook_bridge_unhandled_events_stored")
			undeliverable, _ := metricValue(text, `webhook_bridge_dead_letters_total{kind="undeliverable",subscription="healthy"}`)
			failed, _ := metricValue(text, `webhook_bridge_deliveries_total{outcome="failed",subscription="healthy"}`)
			if ok1 && ok2 && cond(lag, unhandled+undeliverable+failed) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s: lag %v, unhandled %v, undeliverable %v, failed %v", what, wait, lag, unhandled, undeliverable, failed)
			}
		}
	}
	// First the small hostile entries and the odd but deliverable ones:
	// the deliverable ones delivered, the hostile ones dead-lettered.
	xadd(false)
	sink.WaitFor(t, 9, wait)
	settled("100 small hostile entries", func(lag, n float64) bool { return lag == 0 && n >= 100 })
	// Then the 6 with ids over MaxEventIDLen: each dead-lettered at once,
	// or (the defect) tried and failed.
	xadd(true)
	settled("6 huge-id entries", func(lag, n float64) bool { return lag == 0 && n >= 106 })
	// The healthy receiver keeps getting valid events promptly.
	start := time.Now()
	var good []string
	for i := range 20 {
		good = append(good, p.emit(t, "", fmt.Sprintf(`{"name": "good", "payload": {"good": %d}, "id": "good-%d"}`, i, i))...)
	}
	want := map[string]bool{}
	for _, id := range good {
		want[id] = true
	}
	prompt := 5 * time.Second
	waitUntil := func(hs []httpsink.Hit) bool {
		n := 0
		for _, h := range hs {
			if want[h.Header.Get("Webhook-Id")] {
				n++
			}
		}
		return n >= len(want)
	}
	got := make(chan struct{})
	go func() {
		defer close(got)
		sink.WaitUntil(softTB{t}, wait+40*time.Second, "the good events", waitUntil)
	}()
	select {
	case <-got:
	case <-time.After(prompt):
		t.Errorf("the 20 good events did not all reach the healthy receiver within %s of being posted", prompt)
		<-got
	}
	t.Logf("good events delivered %s after posting", time.Since(start).Round(time.Millisecond))
	_, text := p.do(t, http.MethodGet, "/metrics", "", "")
	for _, outcome := range []string{"deferred", "failed"} {
		if v, _ := metricValue(text, `webhook_bridge_deliveries_total{outcome="`+outcome+`",subscription="healthy"}`); v != 0 {
			t.Errorf("%v %s deliveries to the healthy receiver (circuit opened or attempts failed)", v, outcome)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "webhook_bridge_deliveries_total") || strings.HasPrefix(line, "webhook_bridge_dead_letters_total") || strings.HasPrefix(line, "webhook_bridge_retries") {
			t.Log(line)
		}
	}

	// Every delivery the receiver got has valid headers, and no two
	// events share a webhook-id.
	byWebhookID := map[string]string{}
	for _, h := range sink.Hits() {
		if problems := strictHeaders(h, testSecret); len(problems) > 0 {
			t.Errorf("delivery %.60q: %v", h.Header.Get("Ce-Id"), problems)
		}
		ceID, _ := url.PathUnescape(h.Header.Get("Ce-Id"))
		if prev, ok := byWebhookID[h.Header.Get("Webhook-Id")]; ok && prev != ceID {
			t.Errorf("webhook-id %s carries two events: %.40q and %.40q", h.Header.Get("Webhook-Id"), prev, ceID)
		}
		byWebhookID[h.Header.Get("Webhook-Id")] = ceID
		var body struct {
			K *int `json:"k"`
		}
		if json.Unmarshal(h.Body, &body) == nil && body.K != nil && !entries[*body.K].deliverable {
			t.Errorf("hostile entry %d (id %.40q) reached the receiver (attempt %s)", *body.K, entries[*body.K].id, h.Header.Get("Webhook-Attempt"))
		}
	}
	// Every hostile entry is listed by GET /v1/dlq, with a kind, at once.
	listed := map[int]webhookhttp.DeadLetterView{}
	for _, dl := range listDLQ(t, p) {
		var body struct {
			K *int `json:"k"`
		}
		if json.Unmarshal(dl.Event.Payload, &body) == nil && body.K != nil {
			listed[*body.K] = dl
		}
	}
	for k, e := range entries {
		dl, ok := listed[k]
		switch {
		case e.deliverable && ok:
			t.Errorf("deliverable entry %d (id %q) dead-lettered: %s %s", k, e.id, dl.Kind, dl.LastError)
		case !e.deliverable && !ok:
			t.Errorf("hostile entry %d (id %.40q, name %.40q) not in /v1/dlq", k, e.id, e.name)
		case !e.deliverable && dl.Kind != webhook.KindUndeliverable && dl.Kind != webhook.KindUnhandled:
			t.Errorf("hostile entry %d: kind %s (attempts %d): %.200s", k, dl.Kind, dl.Attempts, dl.LastError)
		}
	}
}

// softTB turns a helper's Fatalf in a goroutine of the test's into an
// error and the end of that goroutine.
type softTB struct{ testing.TB }

func (s softTB) Fatalf(format string, args ...any) {
	s.TB.Helper()
	s.TB.Errorf(format, args...)
	runtime.Goexit()
}

// hasAnyByte reports whether s holds one of the bytes of set.
func hasAnyByte(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) >= 0 {
			return true
		}
	}
	return false
}
