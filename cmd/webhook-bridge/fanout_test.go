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

// An event matching 300 subscriptions, whose deliveries take most of a
// second to go out, is killed mid-fan-out (SIGKILL); restarted, the bridge
// takes the event back and delivers it to every subscription it had not
// reached: none is lost, and none of those the fan-out log had recorded
// when the process died is delivered again (a logged delivery is one
// made, or one deferred, whose retry waits in Redis and is made once).
func TestKillMidFanOutLosesNothingAndRepeatsLittle(t *testing.T) {
	const subs = 300
	s := httpsink.New(t, func(int, *http.Request, http.ResponseWriter) {
		time.Sleep(10 * time.Millisecond) // the receiver's own work
	})
	cfg := backendConfig("redis")
	stream := strings.TrimPrefix(strings.Split(cfg, "\n")[2], "stream: ")
	var b strings.Builder
	b.WriteString(cfg + "listen: LISTEN\nper_endpoint: 4\nmax_in_flight: 4\nsubscriptions:\n")
	for i := range subs {
		fmt.Fprintf(&b, "  - {id: s%d, topic: order.created, url: %s/s%d}\n", i, s.URL, i)
	}
	p := startBridge(t, b.String())
	id := p.emit(t, "", `{"name": "order.created", "payload": {"n": 1}}`)[0]

	// Killed once a third of the deliveries are made and the fan-out log
	// holds some of them.
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	defer client.Close()
	ctx := context.Background()
	logKey := func() string {
		keys, err := client.Keys(ctx, "{"+stream+"}:webhook:fanout:*").Result()
		if err != nil || len(keys) != 1 {
			return ""
		}
		return keys[0]
	}
	s.WaitUntil(t, wait, "a third of the deliveries, some of them logged", func(h []httpsink.Hit) bool {
		return len(h) >= subs/3 && logKey() != ""
	})
	p.stop(syscall.SIGKILL)
	key := logKey()
	logged, err := client.SMembers(ctx, key).Result()
	if err != nil || len(logged) == 0 {
		t.Fatalf("fan-out log %q: %v %v", key, logged, err)
	}
	before := map[string]int{}
	for _, h := range s.Hits() {
		before[h.Path]++
	}
	for _, sub := range logged {
		if before["/"+sub] > 1 {
			t.Fatalf("the log has %s, which the receiver got %d times", sub, before["/"+sub])
		}
	}

	runBridge(t, p.config, p.addr)
	hits := s.WaitUntil(t, 2*wait, "every subscription reached", func(h []httpsink.Hit) bool {
		seen := map[string]bool{}
		for _, x := range h {
			seen[x.Path] = true
		}
		return len(seen) == subs
	})
	got := map[string]int{}
	for _, h := range hits {
		if h.Header.Get("Webhook-Id") != id {
			t.Fatalf("a delivery of %s, want only %s", h.Header.Get("Webhook-Id"), id)
		}
		got[h.Path]++
	}
	for _, sub := range logged {
		if got["/"+sub] != 1 {
			t.Errorf("%s, in the fan-out log at the kill, was delivered %d times", sub, got["/"+sub])
		}
	}
	again := len(hits) - subs
	t.Logf("%d deliveries before the kill, %d of them logged; %d delivered twice", len(before), len(logged), again)
	if again > len(before)-len(logged) {
		t.Errorf("%d delivered twice, more than the %d made but not logged before the kill", again, len(before)-len(logged))
	}
	// Once the event is through, its log entry is gone.
	deadline := time.Now().Add(wait)
	for client.Exists(ctx, key).Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the fan-out log entry outlived its event")
		}
		time.Sleep(20 * time.Millisecond) // polling another process's write
	}
}
