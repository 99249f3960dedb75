package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
)

// countIDs counts the event ids over the streams.
func countIDs(t *testing.T, client goredis.UniversalClient, streams []string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, s := range streams {
		if client.Type(context.Background(), s).Val() != "stream" {
			continue
		}
		for _, id := range streamIDs(t, client, s) {
			out[id]++
		}
	}
	return out
}

// TestPostHalfWrittenThenRepostedAdversary5: a batch posted over 4
// partitions one of which cannot be written (a key of the wrong type
// where its stream goes) is refused; the same batch posted again once the
// partition is fixed must write each event exactly once: those of the
// partitions written the first time must not be written a second time.
func TestPostHalfWrittenThenRepostedAdversary5(t *testing.T) {
	const n = 4
	p := startBridge(t, backendConfig("redis")+"listen: LISTEN\npartitions: 4\n")
	c, client := bridgeRedis(t, p)
	ctx := context.Background()
	streams := redis.PartitionStreams(c.Stream, n)
	ids := idsCovering("half-", n, 2)
	var evs []string
	for _, id := range ids {
		evs = append(evs, fmt.Sprintf(`{"name": "order.created", "id": %q, "payload": {}}`, id))
	}
	body := "[" + strings.Join(evs, ",") + "]"

	// Partition 2's stream is a string: its writes fail with WRONGTYPE.
	if err := client.Del(ctx, streams[2]).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.Set(ctx, streams[2], "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	status, resp := p.post(t, "/v1/events", "", body)
	if status == http.StatusAccepted || status == http.StatusOK {
		t.Fatalf("a batch one partition of which was not written answered %d %s", status, resp)
	}
	for _, id := range ids {
		if webhook.PartitionOf(id, n) == 2 {
			if !strings.Contains(resp, id) {
				t.Errorf("the answer %d %s does not name %s, which was not written", status, resp, id)
			}
		}
	}
	first := countIDs(t, client, streams)
	for _, id := range ids {
		want := 1
		if webhook.PartitionOf(id, n) == 2 {
			want = 0
		}
		if first[id] != want {
			t.Errorf("after the failed post, %s is in the partitions %d times, want %d", id, first[id], want)
		}
	}
	t.Logf("first post: %d %s", status, resp)

	// Fixed, the same batch posted again (as a client does after a 503).
	if err := client.Del(ctx, streams[2]).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for {
		status, resp = p.post(t, "/v1/events", "", body)
		if status == http.StatusAccepted || status == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the bridge may need a moment to read partition 2 again
	}
	if status != http.StatusAccepted && status != http.StatusOK {
		t.Fatalf("the post again after the fix answered %d %s", status, resp)
	}
	got := countIDs(t, client, streams)
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("after posting again, %s is in the partitions %d times, want exactly once", id, got[id])
		}
	}
}

// TestHostileDLQCursorsAdversary5: cursors that are not of this walk get
// a 400 naming the cursor, never a 5xx.
func TestHostileDLQCursorsAdversary5(t *testing.T) {
	p := startBridge(t, backendConfig("redis")+"listen: LISTEN\npartitions: 3\nauth:\n  admin_token: tok\n")
	for _, after := range []string{
		"p999:", "p-1:", "p01:", "p1", "p:", "p3:", "p4:", "pé:", "p0:abc", "p0:1-0..zz", "p0:zz..1-0",
		"p0:1-0..2-0..3-0", "p1:" + strings.Repeat("9", 5000), "p0:" + strings.Repeat("1-0", 2000),
		"p0:18446744073709551616-0", "p0:-1-0", "p0:1-0|", "p0:|", "|", "p0:1-0|a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t",
		"unhandled:0:", "unhandled:99:", "unhandled:1:zz", "unhandled:1:1-0..x", "p0:\x00", "p0:1-0\n", "p+1:", "p0x1:", "p1:1-0..", "p1:..1-0",
		"p2:0-0..0-0", "p0:1-18446744073709551616",
	} {
		for _, limit := range []string{"1", "2", "7", "500"} {
			q := url.Values{"after": {after}, "limit": {limit}}
			status, body := p.do(t, http.MethodGet, "/v1/dlq?"+q.Encode(), "tok", "")
			if status != http.StatusBadRequest && status != http.StatusOK {
				t.Errorf("GET /v1/dlq after %q limit %s = %d %s; want 400", after, limit, status, body)
			}
			if status == http.StatusOK && after != "p1:" {
				t.Logf("after %q limit %s = 200 %s", after, limit, body)
			}
		}
	}
}

// TestStrandedPartitionsAboveSixtyFourAdversary5: partitions lowered from
// 100 to 30 leave events in partition 80; the bridge must refuse to start
// (it reads none of them), not start and strand them.
func TestStrandedPartitionsAboveSixtyFourAdversary5(t *testing.T) {
	base := backendConfig("redis") + "listen: LISTEN\n"
	cfg, err := parseConfig([]byte(strings.ReplaceAll(base, "LISTEN", "127.0.0.1:1")))
	if err != nil {
		t.Fatal(err)
	}
	client, err := redisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	stranded := cfg.Stream + ":80"
	if err := client.XAdd(context.Background(), &goredis.XAddArgs{Stream: stranded, Values: []any{"id", "stranded-1", "name", "order.created", "payload", "{}"}}).Err(); err != nil {
		t.Fatal(err)
	}
	// The bridge either refuses at once or runs; ten seconds tell which.
	runCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(runCtx, binary, "--config", writeConfig(t, strings.ReplaceAll(base+"partitions: 30\n", "LISTEN", freeAddr(t))))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if runCtx.Err() != nil || !strings.Contains(stderr.String(), "set drain_partitions: 81") {
		t.Errorf("partitions: 30 with an event left in %s: %v (still running after 10s: %v), stderr %q; want a refusal naming drain_partitions: 81",
			stranded, err, runCtx.Err() != nil, stderr.String())
	}
}

// TestMemoryWithPartitionKeyAdversary5: partitions and partition_key on
// the memory backend are warned about and ignored; events are delivered.
func TestMemoryWithPartitionKeyAdversary5(t *testing.T) {
	sink := httpsink.New(t, nil)
	p := startBridge(t, backendConfig("memory")+"listen: LISTEN\npartitions: 4\npartition_key: data.customer\nsubscriptions:\n  - {id: all, topic: \"*\", url: \""+sink.URL+"\"}\n")
	if !strings.Contains(p.logs(), "partitions and drain_partitions are Redis streams: ignored in memory") {
		t.Errorf("no warning that partitions are ignored in memory:\n%s", p.logs())
	}
	p.emit(t, "", `[{"name": "a", "id": "m-1", "payload": {"customer": "x"}}, {"name": "a", "id": "m-2", "payload": {}}]`)
	sink.WaitFor(t, 2, wait)
}
