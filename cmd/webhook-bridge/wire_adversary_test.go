package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/httpsink"
)

// ADVERSARY: what the config accepts reaches the receiver as valid,
// unambiguous headers, the same on every delivery. (A subscription id with
// non-ASCII bytes or a C1 control, a header in two spellings and padded
// values are refused at load: TestAdversaryConfigRefusesBadSubscriptions.)
func TestAdversarySubscriptionHeadersOnTheWire(t *testing.T) {
	sink := httpsink.New(t, nil)
	p := startBridge(t, `
listen: LISTEN
subscriptions:
  - id: sub.scription-1
    topic: t
    url: `+sink.URL+`
    secret: `+testSecret+`
    headers:
      X-Tenant: a
      X-Pad: "pad ded"
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
	if pads["pad ded"] != len(hits) {
		t.Errorf("X-Pad configured as %q arrives as %v", "pad ded", pads)
	}
	if len(tenants) != 1 {
		t.Errorf("X-Tenant differs between deliveries of one subscription: %v", tenants)
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
