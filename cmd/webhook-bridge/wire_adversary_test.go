package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/httpsink"
)

// ADVERSARY: what the config accepts reaches the receiver as valid,
// unambiguous headers. A subscription id with non-ASCII bytes or a C1
// control (NEL) goes raw into Webhook-Subscription; a header given in two
// spellings is sent with whichever value map order picks, differently
// from one delivery to the next; a value with outer spaces is trimmed.
func TestAdversarySubscriptionHeadersOnTheWire(t *testing.T) {
	sink := httpsink.New(t, nil)
	p := startBridge(t, `
listen: LISTEN
subscriptions:
  - id: "sübscription\u0085"
    topic: t
    url: `+sink.URL+`
    secret: `+testSecret+`
    headers:
      X-Tenant: a
      x-tenant: b
      X-Pad: " padded "
`)
	const n = 30
	for i := range n {
		p.emit(t, "", fmt.Sprintf(`{"name": "t", "payload": {"i": %d}}`, i))
	}
	hits := sink.WaitFor(t, n, wait)
	tenants, pads := map[string]int{}, map[string]int{}
	reported := false
	for _, h := range hits {
		if problems := strictHeaders(h, testSecret); len(problems) > 0 && !reported {
			reported = true
			t.Errorf("delivery %s (and others): %v", h.Header.Get("Webhook-Id"), problems)
		}
		tenants[strings.Join(h.Header.Values("X-Tenant"), ",")]++
		pads[h.Header.Get("X-Pad")]++
	}
	if pads[" padded "] != len(hits) {
		t.Errorf("X-Pad configured as %q arrives as %v", " padded ", pads)
	}
	if len(tenants) != 1 {
		t.Errorf("X-Tenant differs between deliveries of one subscription: %v", tenants)
	}
}

// ADVERSARY: every error answer is {"error", "status"} JSON. Header
// blocks over 64 KiB get net/http's own plain-text 431, and a request
// net/http cannot parse its plain-text 400.
func TestAdversaryServerLevelErrorsAreJSON(t *testing.T) {
	p := startBridge(t, "listen: LISTEN\n")
	raw := func(req string) (int, string, string) {
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(wait))
		go func() { _, _ = io.WriteString(conn, req) }()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("Content-Type")
	}
	for name, req := range map[string]string{
		"header block over 64 KiB": "POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\nContent-Length: 2\r\n\r\n{}",
		"bad request line":         "POST /v1/events HTTP/9.9\r\nHost: x\r\n\r\n",
		"header without colon":     "POST /v1/events HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n",
	} {
		status, body, ct := raw(req)
		var pr struct {
			Error  string `json:"error"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal([]byte(body), &pr); err != nil || ct != "application/json" || pr.Status != status || pr.Error == "" {
			t.Errorf("%s: %d %q (%s), want {error, status} JSON", name, status, body, ct)
		}
	}
	// odd paths through the real server
	for _, c := range []struct{ method, path string }{
		{http.MethodHead, "/v1/events"}, {http.MethodOptions, "/v1/events"}, {http.MethodPost, "/v1/events/"},
		{http.MethodPost, "/v1%2Fevents"}, {http.MethodGet, "/v1/subscriptions"}, {http.MethodPost, "/v1/dlq/replay"},
	} {
		status, body := p.do(t, c.method, c.path, "", "")
		if c.method == http.MethodHead {
			if status != http.StatusMethodNotAllowed {
				t.Errorf("HEAD /v1/events = %d", status)
			}
			continue
		}
		var pr struct {
			Error  string `json:"error"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal([]byte(body), &pr); err != nil || pr.Status != status || status < 400 {
			t.Errorf("%s %s: %d %q, want an error in the JSON shape", c.method, c.path, status, body)
		}
	}
}

// ADVERSARY: the same id posted through two bridge processes on one
// Redis, concurrently and again after Redis restarted, is emitted once.
func TestAdversaryDedupeAcrossProcessesAndRestart(t *testing.T) {
	stream := fmt.Sprintf("adv-dedupe-%d", time.Now().UnixNano())
	cfg := func(consumer string) string {
		return fmt.Sprintf("redis:\n  url: redis://%s/0\nstream: %s\nconsumer: %s\nlisten: LISTEN\n", redisServer.Addr, stream, consumer)
	}
	a := startBridge(t, cfg("a"))
	b := startBridge(t, cfg("b"))
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = client.Close() })
	const ids = 30
	answered := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range ids {
		id := fmt.Sprintf("p-%d", i)
		body := fmt.Sprintf(`[{"name":"x","payload":1,"id":%q},{"name":"x","payload":2,"id":%q}]`, id, id)
		for r := range 4 {
			p := a
			if r%2 == 1 {
				p = b
			}
			wg.Go(func() {
				for {
					req, _ := http.NewRequest(http.MethodPost, "http://"+p.addr+"/v1/events", strings.NewReader(body))
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Errorf("post: %v", err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					switch resp.StatusCode {
					case http.StatusConflict:
						continue
					case http.StatusAccepted, http.StatusOK:
						mu.Lock()
						answered[id] = true
						mu.Unlock()
					default:
						t.Errorf("post %s: %d", id, resp.StatusCode)
					}
					return
				}
			})
		}
	}
	wg.Wait()
	if err := redisServer.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	deadline := time.Now().Add(wait)
	for client.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis not back")
		}
	}
	// after the restart, post every id again, through both
	for i := range ids {
		for _, p := range []*proc{a, b} {
			for {
				status, body := p.post(t, "/v1/events", "", fmt.Sprintf(`{"name":"x","payload":3,"id":"p-%d"}`, i))
				if status == http.StatusServiceUnavailable || status == http.StatusConflict {
					if time.Now().After(deadline) {
						t.Fatalf("post after restart: %d %s", status, body)
					}
					continue
				}
				if status != http.StatusOK {
					t.Errorf("p-%d posted again after a Redis restart: %d %s, want 200 duplicate", i, status, body)
				}
				break
			}
		}
	}
	msgs, err := client.XRange(ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, m := range msgs {
		id, _ := m.Values["id"].(string)
		count[id]++
	}
	for id := range answered {
		if count[id] != 1 {
			t.Errorf("%s emitted %d times", id, count[id])
		}
	}
	if len(answered) != ids {
		t.Errorf("%d ids answered, want %d", len(answered), ids)
	}
}
