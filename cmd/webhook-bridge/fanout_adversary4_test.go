package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/httpsink"
)

// The bridge is killed (SIGKILL) mid-fan-out at other moments than
// TestKillMidFanOutLosesNothingAndRepeatsLittle: before the fan-out log
// holds anything, and once it holds deliveries that were deferred (their
// retries waiting in Redis). Restarted, it reaches every subscription;
// none the log had recorded at the kill is delivered twice.
func TestKillMidFanOutAtOtherMoments(t *testing.T) {
	for _, moment := range []string{"before any log write", "with deferrals logged"} {
		t.Run(moment, func(t *testing.T) {
			const quickSubs, crawlSubs = 150, 6
			quick := httpsink.New(t, func(int, *http.Request, http.ResponseWriter) { time.Sleep(10 * time.Millisecond) })
			crawl := httpsink.New(t, func(int, *http.Request, http.ResponseWriter) { time.Sleep(600 * time.Millisecond) })
			cfg := backendConfig("redis")
			stream := strings.TrimPrefix(strings.Split(cfg, "\n")[2], "stream: ")
			var b strings.Builder
			b.WriteString(cfg + "listen: LISTEN\nper_endpoint: 2\nmax_in_flight: 4\nsubscriptions:\n")
			for i := range quickSubs {
				fmt.Fprintf(&b, "  - {id: q%d, topic: order.created, url: %s/q%d}\n", i, quick.URL, i)
			}
			for i := range crawlSubs {
				fmt.Fprintf(&b, "  - {id: c%d, topic: order.created, url: %s/c%d}\n", i, crawl.URL, i)
			}
			p := startBridge(t, b.String())
			client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
			defer client.Close()
			ctx := context.Background()
			logged := func() []string {
				keys, err := client.Keys(ctx, "{"+stream+"}:webhook:fanout:*").Result()
				if err != nil || len(keys) != 1 {
					return nil
				}
				m, _ := client.SMembers(ctx, keys[0]).Result()
				return m
			}
			p.emit(t, "", `{"name": "order.created", "payload": {"n": 1}}`)
			switch moment {
			case "before any log write":
				quick.WaitFor(t, 3, wait)
			case "with deferrals logged":
				deadline := time.Now().Add(wait)
				for !strings.Contains(" "+strings.Join(logged(), " ")+" ", " c") {
					if time.Now().After(deadline) {
						t.Fatalf("no deferred delivery logged: %v", logged())
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			p.stop(syscall.SIGKILL)
			atKill := logged()
			before := map[string]int{}
			for _, h := range append(quick.Hits(), crawl.Hits()...) {
				before[h.Path]++
			}
			// The dead process's lease on the consumer name would hold the
			// restart back 10s; it lapses at once here.
			if err := client.Del(ctx, "{"+stream+"}:consumer:webhook-bridge:c1").Err(); err != nil {
				t.Fatal(err)
			}
			restarted := time.Now()
			runBridge(t, p.config, p.addr)
			t.Logf("restarted in %s", time.Since(restarted))
			reached := func() map[string]int {
				got := map[string]int{}
				for _, h := range append(quick.Hits(), crawl.Hits()...) {
					got[h.Path]++
				}
				return got
			}
			deadline := time.Now().Add(wait)
			for len(reached()) < quickSubs+crawlSubs {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d subscriptions reached after the restart", len(reached()), quickSubs+crawlSubs)
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("every subscription reached %s after the restart", time.Since(restarted))
			var firstQ, lastQ, lastC time.Time
			for _, h := range quick.Hits() {
				if h.At.After(restarted) {
					if firstQ.IsZero() {
						firstQ = h.At
					}
					lastQ = h.At
				}
			}
			for _, h := range crawl.Hits() {
				lastC = h.At
			}
			t.Logf("quick: first %s, last %s after the restart; crawl last %s", firstQ.Sub(restarted), lastQ.Sub(restarted), lastC.Sub(restarted))
			time.Sleep(time.Second) // late duplicates, if any
			got := reached()
			for _, sub := range atKill {
				if got["/"+sub] != 1 {
					t.Errorf("%s, in the fan-out log at the kill, delivered %d times", sub, got["/"+sub])
				}
			}
			twice := 0
			for _, n := range got {
				twice += n - 1
			}
			t.Logf("at the kill: %d deliveries made, %d logged; %d made twice in all", len(before), len(atKill), twice)
		})
	}
}
