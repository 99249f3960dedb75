package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
)

// A Cluster master that hangs mid-run (SIGSTOP: its connections stay open,
// nothing answers) for longer than the Cluster's node timeout, so that
// the Cluster reports itself down, then comes back, while producers post
// and a backlog over every partition is delivered: while it hangs, the
// other masters' partitions go on being delivered (their
// acknowledgements do not wait for it); once it is back, every event
// ingest acknowledged is delivered, none lost, without restarting the
// bridge.
func TestBridgeOnClusterWithAMasterHanging(t *testing.T) {
	c, client := testCluster(t)
	addrs := c.Addrs()
	const n = 6
	stream := streamOverMasters(t, client, n, 3)

	var mu sync.Mutex
	delivered := map[string]int{}
	// The receiver takes 50ms an answer, two at a time: a backlog is
	// still being delivered when the master hangs.
	sink := httpsink.New(t, func(_ int, r *http.Request, _ http.ResponseWriter) {
		time.Sleep(50 * time.Millisecond) // a receiver's work
		mu.Lock()
		delivered[r.Header.Get("Webhook-Id")]++
		mu.Unlock()
	})
	deliveredCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered)
	}
	p := startBridge(t, fmt.Sprintf("redis:\n  cluster_url: redis://%s?addr=%s&addr=%s\nstream: %s\nconsumer: c1\nlisten: LISTEN\npartitions: %d\n",
		addrs[0], addrs[1], addrs[2], stream, n)+
		"per_endpoint: 2\nsubscriptions:\n  - {id: all, topic: order.created, url: \""+sink.URL+"\"}\n")

	// A backlog over every partition, then producers posting one event
	// at a time, giving up on an answer after a second; one not
	// acknowledged goes to the back of its producer's queue, to be posted
	// again.
	var amu sync.Mutex
	acked := map[string]bool{}
	ackedCount := func() int {
		amu.Lock()
		defer amu.Unlock()
		return len(acked)
	}
	const backlog = 300
	for i := 0; i < backlog; i += 30 {
		var evs []string
		for k := i; k < i+30; k++ {
			evs = append(evs, fmt.Sprintf(`{"name": "order.created", "id": "b-%d", "payload": {"n": 1}}`, k))
		}
		for _, id := range p.emit(t, "", "["+strings.Join(evs, ",")+"]") {
			acked[id] = true
		}
	}
	const producers, each = 8, 40
	client2 := &http.Client{Timeout: time.Second}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var queue []string
			for i := range each {
				queue = append(queue, fmt.Sprintf("p%d-%d", g, i))
			}
			for len(queue) > 0 {
				select {
				case <-stop:
					return
				default:
				}
				id := queue[0]
				queue = queue[1:]
				body := fmt.Sprintf(`{"name": "order.created", "id": %q, "payload": {"n": 1}}`, id)
				resp, err := client2.Post("http://"+p.addr+"/v1/events", "application/json", strings.NewReader(body))
				if err == nil {
					resp.Body.Close()
				}
				// 200: every id a duplicate, the answer to a post whose
				// first try was accepted after this producer gave up on it.
				if err == nil && (resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK) {
					amu.Lock()
					acked[id] = true
					amu.Unlock()
					continue
				}
				queue = append(queue, id)
				time.Sleep(50 * time.Millisecond) // a producer's retry pause
			}
		}()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })

	untilTrue := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s (%d acknowledged, %d delivered)\n%s", what, d, ackedCount(), deliveredCount(), p.logs())
			}
			time.Sleep(20 * time.Millisecond) // polling the producers and the receiver
		}
	}
	untilTrue("the producers under way", wait, func() bool { return ackedCount() >= backlog+producers*each/4 })

	hung := c.Nodes[1]
	onHung := map[int]bool{} // the partitions on the master about to hang
	for i, s := range redis.PartitionStreams(stream, n) {
		onHung[i] = master(t, client, s) == hung.Addr
	}
	othersDelivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		k := 0
		for id := range delivered {
			if !onHung[webhook.PartitionOf(id, n)] {
				k++
			}
		}
		return k
	}
	if err := hung.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	t.Cleanup(func() { _ = hung.Resume() })
	// While it hangs, and before the Cluster's node timeout (5s) has it
	// say it is down, the events of the other masters' partitions go on
	// being delivered: the receiver takes 40 a second, and the backlog
	// holds more than that.
	before, ackedBefore, othersBefore := deliveredCount(), ackedCount(), othersDelivered()
	var perSecond []int
	for range 4 {
		at := othersDelivered()
		for s := time.Now(); time.Since(s) < time.Second; {
			time.Sleep(50 * time.Millisecond) // a second of the hang
		}
		perSecond = append(perSecond, othersDelivered()-at)
	}
	t.Logf("the other masters' partitions, events first delivered in each of the hang's first 4 seconds: %v", perSecond)
	for i, k := range perSecond {
		if k < 3 {
			t.Errorf("second %d of the hang: %d events of the other masters' partitions delivered, want them going on (%v)", i+1, k, perSecond)
		}
	}
	// Past the node timeout the Cluster says it is down (CLUSTERDOWN).
	for time.Since(paused) < 7*time.Second {
		time.Sleep(50 * time.Millisecond) // the master hangs for 7s
	}
	t.Logf("while the master hung (%s): %d deliveries (%d of the other partitions), %d events acknowledged", time.Since(paused).Round(time.Millisecond),
		deliveredCount()-before, othersDelivered()-othersBefore, ackedCount()-ackedBefore)
	if err := hung.Resume(); err != nil {
		t.Fatal(err)
	}

	untilTrue("every event acknowledged", 2*wait, func() bool { return ackedCount() == backlog+producers*each })
	untilTrue("every acknowledged event delivered", 2*wait, func() bool {
		amu.Lock()
		defer amu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		for id := range acked {
			if delivered[id] == 0 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	twice := 0
	for id, k := range delivered {
		if !strings.HasPrefix(id, "p") && !strings.HasPrefix(id, "b-") {
			t.Errorf("delivered %q, which no producer sent", id)
		}
		if k > 1 {
			twice++
		}
	}
	t.Logf("%d events delivered, %d of them more than once (at-least-once across the hang)", len(delivered), twice)
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Errorf("the Cluster after the hang: %v", err)
	}
}
