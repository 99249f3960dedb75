package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

func TestPartitionConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"negative", "partitions: -1\n", "config: partitions is negative"},
		{"too many", "partitions: 300\n", "config: partitions 300: at most 256"},
		{"not a number", "partitions: six\n", "config: partitions (line 1): cannot unmarshal !!str `six` into int"},
		{"drain negative", "partitions: 3\ndrain_partitions: -2\n", "config: drain_partitions is negative"},
		{"drain not above", "partitions: 6\ndrain_partitions: 6\n", "config: drain_partitions 6: want the number of partitions before partitions was lowered, above partitions (6)"},
		{"drain one", "drain_partitions: 1\n", "config: drain_partitions 1: want"},
		{"drain too many", "partitions: 3\ndrain_partitions: 1000\n", "config: drain_partitions 1000: at most 256"},
		{"key without partitions", "partition_key: data.customer\n", "config: partition_key is set but partitions is 0"},
		{"key does not compile", "partitions: 4\npartition_key: data.customer +\n", "config: partition_key: unexpected token EOF (line 1, column 15)"},
		{"key of a wrong type", "partitions: 4\npartition_key: event.created_at\n", "config: partition_key: the expression gives time.Time; want a string, a number or a bool"},
		{"key unknown name", "partitions: 4\npartition_key: customer\n", "config: partition_key: unknown name customer"},
		{"stream with a hash tag", "partitions: 4\nstream: \"{orders}\"\n", `config: stream "{orders}" holds a hash tag`},
		{"unknown key", "partitions: 4\npartition_keys: data.x\n", "config: unknown key partition_keys (line 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("parseConfig = %v, want one line with %q", err, tc.want)
			}
		})
	}
	t.Setenv("PART_SECRET", "never")
	cfg, err := parseConfig([]byte("partitions: 6\npartition_key: 'data.k ?? \"${PART_SECRET}\"'\ndrain_partitions: 12\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PartitionKey != `data.k ?? "${PART_SECRET}"` {
		t.Errorf("partition_key = %q: expressions are not templates", cfg.PartitionKey)
	}
	if got := strings.Join(cfg.drainedStreams(), ","); got != "events:6,events:7,events:8,events:9,events:10,events:11" {
		t.Errorf("drained = %s", got)
	}
	if got := cfg.readStreams()[:4]; !slices.Equal(got, []string{"events", "{events}:webhook:retries", "events:0", "{events:0}:webhook:retries"}) {
		t.Errorf("read streams begin %v: want the stream itself first, so that the consumer's lease stays beside it", got)
	}
	back, err := parseConfig([]byte("drain_partitions: 4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(back.eventStreams(), ","); got != "events,events:0,events:1,events:2,events:3" {
		t.Errorf("unpartitioned, draining 4: event streams %s", got)
	}
}

// master returns the address of the master that holds key.
func master(t *testing.T, client *goredis.ClusterClient, key string) string {
	t.Helper()
	m, err := client.MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return m.Options().Addr
}

// testCluster starts a Redis Cluster of three masters for the test, and
// a client of it.
func testCluster(t *testing.T) (*redistest.Cluster, *goredis.ClusterClient) {
	t.Helper()
	c, err := redistest.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = client.Close() })
	return c, client
}

// streamOverMasters returns a stream name whose n partitions fall evenly
// on the Cluster's masters: where a name's partitions fall is fixed by
// the name (the bridge's start log says it).
func streamOverMasters(t *testing.T, client *goredis.ClusterClient, n, masters int) string {
	t.Helper()
	name, err := redistest.Spread(context.Background(), client, masters, fmt.Sprint("part-", time.Now().UnixNano()),
		func(name string) []string { return redis.PartitionStreams(name, n) })
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// idsCovering returns ids "<prefix><k>", as few as it takes, that fall
// in every one of n partitions (at least per each).
func idsCovering(prefix string, n, per int) []string {
	count := make([]int, n)
	var out []string
	for k := 0; ; k++ {
		id := prefix + strconv.Itoa(k)
		p := webhook.PartitionOf(id, n)
		if count[p] < per {
			count[p]++
			out = append(out, id)
		}
		if len(out) == n*per {
			return out
		}
	}
}

// retryIDs returns the ids of the events whose retries stream holds, one
// per entry.
func retryIDs(t *testing.T, client goredis.UniversalClient, stream string) []string {
	t.Helper()
	entries, err := client.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		var r struct {
			Event struct {
				ID string `json:"id"`
			} `json:"event"`
		}
		if err := json.Unmarshal([]byte(e.Values["payload"].(string)), &r); err != nil {
			t.Fatalf("%s entry %s: %v", stream, e.ID, err)
		}
		out = append(out, r.Event.ID)
	}
	return out
}

// streamIDs returns the event ids of stream's entries, in stream order.
func streamIDs(t *testing.T, client goredis.UniversalClient, stream string) []string {
	t.Helper()
	entries, err := client.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		id, _ := e.Values["id"].(string)
		out = append(out, id)
	}
	return out
}

// walkDLQ walks GET /v1/dlq at limit, with kind when not "".
func walkDLQ(t *testing.T, p *proc, limit int, kind string) (all []webhookhttp.DeadLetterView, pages int) {
	t.Helper()
	after := ""
	for {
		q := url.Values{"limit": {strconv.Itoa(limit)}, "after": {after}}
		if kind != "" {
			q.Set("kind", kind)
		}
		status, body := p.do(t, http.MethodGet, "/v1/dlq?"+q.Encode(), "tok", "")
		if status != http.StatusOK {
			t.Fatalf("GET /v1/dlq = %d %s", status, body)
		}
		var page webhookhttp.DeadLetterPage
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		pages++
		all = append(all, page.DeadLetters...)
		if page.Next == "" {
			return all, pages
		}
		if pages > 1000 {
			t.Fatal("the walk does not end")
		}
		after = page.Next
	}
}

// TestPartitionsOnCluster runs the built bridge with partitions: 6 on a
// Redis Cluster of three masters: events posted spread over every
// partition and every master; a failing receiver's retries wait in the
// partition of their event (its retry stream's delayed set, in the
// partition's slot); exhausted deliveries are dead letters of that
// partition; GET /v1/dlq walks them all at limit 1; `dlq replay` and
// POST /v1/dlq/replay deliver them again. Nothing is lost.
func TestPartitionsOnCluster(t *testing.T) {
	c, client := testCluster(t)
	addrs := c.Addrs()
	ctx := context.Background()
	const n = 6
	stream := streamOverMasters(t, client, n, 3)

	ok := httpsink.New(t, nil)
	var failing atomic.Bool
	failing.Store(true)
	failIDs := idsCovering("fail-", n, 1)
	// One receiver per failing event, so that no endpoint fails five times
	// in a row and opens its circuit.
	var fails []*httpsink.Sink
	subs := "  - {id: ok, topic: order.created, url: \"" + ok.URL + "\"}\n"
	for i := range failIDs {
		fails = append(fails, httpsink.New(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
			if failing.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
		subs += fmt.Sprintf("  - {id: fail-%d, topic: order.failed, filter: 'event.id == %q', url: %q}\n", i, failIDs[i], fails[i].URL)
	}
	cfg := fmt.Sprintf("redis:\n  cluster_url: redis://%s?addr=%s&addr=%s\nstream: %s\nconsumer: c1\nlisten: LISTEN\npartitions: %d\n", addrs[0], addrs[1], addrs[2], stream, n) + `
auth:
  admin_token: tok
retry:
  schedule: [1s]
  max_attempts: 3
subscriptions:
` + subs
	p := startBridge(t, cfg)
	if !strings.Contains(p.logs(), `msg="webhook-bridge: partitions over the Cluster's masters" partitions=6 masters=3`) {
		t.Errorf("the start log does not say how the partitions spread:\n%s", p.logs())
	}

	// Events in batches and alone; the ids cover every partition.
	okIDs := idsCovering("ok-", n, 5)
	for i := 0; i < len(okIDs); i += 10 {
		var evs []string
		for _, id := range okIDs[i : i+10] {
			evs = append(evs, fmt.Sprintf(`{"name": "order.created", "id": %q, "payload": {"n": 1}}`, id))
		}
		p.emit(t, "", "["+strings.Join(evs, ",")+"]")
	}
	for _, id := range failIDs {
		p.emit(t, "", fmt.Sprintf(`{"name": "order.failed", "id": %q, "payload": {}}`, id))
	}
	delivered := func(hs []httpsink.Hit) map[string]bool {
		seen := map[string]bool{}
		for _, h := range hs {
			seen[h.Header.Get("Webhook-Id")] = true
		}
		return seen
	}
	ok.WaitUntil(t, wait, "every order.created", func(hs []httpsink.Hit) bool { return len(delivered(hs)) == len(okIDs) })

	// While the receivers fail, each retry waits in the delayed set of its
	// event's partition's retry stream.
	seenDelayed := map[string]int{} // failing id → partition it was seen waiting in
	deadline := time.Now().Add(wait)
	for len(seenDelayed) < len(failIDs) && time.Now().Before(deadline) {
		for i, s := range redis.PartitionStreams(stream, n) {
			members, err := client.ZRange(ctx, redis.DelayedKey(retryStreamOf(s)), 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range members {
				for _, id := range failIDs {
					if strings.Contains(m, `"id":"`+id+`"`) {
						seenDelayed[id] = i
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond) // polling the delayed sets
	}
	for _, id := range failIDs {
		i, ok := seenDelayed[id]
		switch {
		case !ok:
			t.Errorf("no retry of %s seen waiting in any partition's delayed set", id)
		case i != webhook.PartitionOf(id, n):
			t.Errorf("the retry of %s waited in partition %d, its event's is %d", id, i, webhook.PartitionOf(id, n))
		}
	}

	// Exhausted, each is a dead letter of its partition.
	for i, s := range redis.PartitionStreams(stream, n) {
		key := deadLetterKeyOf(s)
		deadline := time.Now().Add(wait)
		for client.XLen(ctx, key).Val() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no dead letter in %s", key)
			}
			time.Sleep(20 * time.Millisecond) // polling another process's writes
		}
		store := webhook.RedisDeadLetters{Client: client, Key: key}
		page, _, err := store.List(ctx, "", 10)
		if err != nil || len(page) != 1 || webhook.PartitionOf(string(page[0].Event.ID), n) != i || page[0].Kind != webhook.KindExhausted || page[0].Attempts != 3 {
			t.Errorf("dead letters of partition %d: %+v (%v); want one exhausted after 3 attempts, of an event of that partition", i, page, err)
		}
	}

	// What each partition holds sits in its slot; the partitions are on
	// every master.
	masters := map[string]bool{}
	for i, s := range redis.PartitionStreams(stream, n) {
		ids := streamIDs(t, client, s)
		if len(ids) == 0 {
			t.Errorf("partition %s received no event", s)
		}
		for _, id := range ids {
			if webhook.PartitionOf(id, n) != i {
				t.Errorf("%s holds %s, of partition %d", s, id, webhook.PartitionOf(id, n))
			}
		}
		retries := retryIDs(t, client, retryStreamOf(s))
		if len(retries) != 2 {
			t.Errorf("partition %d's retry stream holds %v, want the 2 retries of its failing event", i, retries)
		}
		for _, id := range retries {
			if webhook.PartitionOf(id, n) != i {
				t.Errorf("a retry of %s in partition %d, its event's is %d", id, i, webhook.PartitionOf(id, n))
			}
		}
		home := master(t, client, s)
		masters[home] = true
		for _, k := range []string{retryStreamOf(s), redis.DelayedKey(retryStreamOf(s)), deadLetterKeyOf(s), redis.DeadKey(s)} {
			if got := master(t, client, k); got != home || client.ClusterKeySlot(ctx, k).Val() != client.ClusterKeySlot(ctx, s).Val() {
				t.Errorf("%s is not in the slot of %s", k, s)
			}
		}
	}
	if len(masters) != 3 {
		t.Errorf("the partitions are on %d masters, want 3", len(masters))
	}
	if n := client.XLen(ctx, stream).Val(); n != 0 {
		t.Errorf("the stream itself holds %d entries: events went around the partitions", n)
	}

	// Entries that are no events, in a partition and in another's retry
	// stream: the backend dead-letters them beside them, listed as
	// unhandled.
	parts := redis.PartitionStreams(stream, n)
	for _, k := range []string{parts[2], retryStreamOf(parts[4])} {
		if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: k, Values: []any{"payload", "no name"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitMetric(t, p, "webhook_bridge_unhandled_events_stored", 2)
	for _, k := range []string{redis.DeadKey(parts[2]), redis.DeadKey(retryStreamOf(parts[4]))} {
		if got := client.XLen(ctx, k).Val(); got != 1 {
			t.Errorf("%s holds %d entries, want the one dead-lettered there", k, got)
		}
	}

	// GET /v1/dlq walks every partition, one dead letter a page.
	all, pages := walkDLQ(t, p, 1, "")
	var got []string
	ids := map[string]bool{}
	kinds := map[string]int{}
	for _, dl := range all {
		kinds[string(dl.Kind)]++
		if dl.Kind == webhook.KindExhausted {
			got = append(got, dl.Event.ID)
		}
		if ids[dl.ID] {
			t.Errorf("dead letter id %s twice", dl.ID)
		}
		ids[dl.ID] = true
	}
	slices.Sort(got)
	want := slices.Clone(failIDs)
	slices.Sort(want)
	if !slices.Equal(got, want) || kinds["unhandled"] != 2 || len(all) != 8 || pages < 8 {
		t.Errorf("GET /v1/dlq walk at limit 1: exhausted %v, kinds %v, in %d pages; want %v and 2 unhandled", got, kinds, pages, want)
	}
	if exhausted, _ := walkDLQ(t, p, 2, "exhausted"); len(exhausted) != len(failIDs) {
		t.Errorf("kind=exhausted: %d dead letters, want %d", len(exhausted), len(failIDs))
	}
	if unhandled, _ := walkDLQ(t, p, 1, "unhandled"); len(unhandled) != 2 {
		t.Errorf("kind=unhandled: %v, want 2", unhandled)
	}
	if lines := dlqLines(t, cli(t, "dlq", "list", "--config", p.config)); len(lines) != 8 {
		t.Errorf("dlq list printed %d, want 8", len(lines))
	}

	// Replayed, by the command and through the API, each is delivered.
	failing.Store(false)
	if out := cli(t, "dlq", "replay", "--config", p.config, "--event", failIDs[0]); !strings.Contains(out, "replayed 1 dead letter(s)") {
		t.Errorf("dlq replay --event said %q", out)
	}
	if status, body := p.do(t, http.MethodPost, "/v1/dlq/replay", "tok", ""); status != http.StatusOK || !strings.Contains(body, `{"replayed":5}`) {
		t.Errorf("POST /v1/dlq/replay = %d %s, want the other 5", status, body)
	}
	for i, s := range fails {
		s.WaitUntil(t, wait, "the replayed "+failIDs[i], func(hs []httpsink.Hit) bool {
			if len(hs) != 4 {
				return false
			}
			last := hs[3]
			return last.Header.Get("Webhook-Attempt") == "1" && last.Header.Get("Webhook-Id") == failIDs[i]
		})
	}
	if left, _ := walkDLQ(t, p, 100, ""); len(left) != 2 || left[0].Kind != webhook.KindUnhandled || left[1].Kind != webhook.KindUnhandled {
		t.Errorf("dead letters left after the replays: %v, want the 2 unhandled entries", left)
	}
	for i, id := range okIDs {
		if !delivered(ok.Hits())[id] {
			t.Errorf("event %d, %s, lost", i, id)
		}
	}
	deadline = time.Now().Add(wait)
	for {
		_, text := p.do(t, http.MethodGet, "/metrics", "", "")
		if v, ok := metricValue(text, "webhook_bridge_consumer_lag"); ok && v == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook_bridge_consumer_lag never 0 once everything was delivered")
		}
		time.Sleep(20 * time.Millisecond) // polling another process's metrics
	}
	p.stop(syscall.SIGTERM)
}

// TestPartitionKeyOnAPayloadField: with partition_key: data.customer,
// the events of one customer land in one partition in the order posted,
// and so do their retries; an event without the field is placed by its
// id, and counted.
func TestPartitionKeyOnAPayloadField(t *testing.T) {
	sink := httpsink.New(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		if firstOfFlaky(httpsink.Hit{Header: r.Header}) {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	const n = 4
	p := startBridge(t, backendConfig("redis")+`listen: LISTEN
partitions: 4
partition_key: data.customer
retry:
  schedule: [100ms]
subscriptions:
  - {id: all, topic: "*", url: "`+sink.URL+`"}
`)
	c, client := bridgeRedis(t, p)
	customers := []string{"acme", "globex", "initech", "umbrella", "hooli"}
	posted := map[string][]string{}
	var all []string
	for i := range 40 {
		cust := customers[i%len(customers)]
		id := fmt.Sprintf("%s-%02d", cust, i)
		posted[cust] = append(posted[cust], id)
		all = append(all, id)
		body := fmt.Sprintf(`{"name": "order.created", "id": %q, "payload": {"customer": %q, "n": %d}}`, id, cust, i)
		if i%2 == 0 {
			p.emit(t, "", body)
		} else {
			p.emit(t, "", "["+body+"]")
		}
	}
	// A batch mixing customers keeps each one's order too.
	var batch []string
	for i := 40; i < 60; i++ {
		cust := customers[i%len(customers)]
		id := fmt.Sprintf("%s-%02d", cust, i)
		posted[cust] = append(posted[cust], id)
		all = append(all, id)
		batch = append(batch, fmt.Sprintf(`{"name": "order.created", "id": %q, "payload": {"customer": %q}}`, id, cust))
	}
	p.emit(t, "", "["+strings.Join(batch, ",")+"]")
	keyless := []string{"nokey-1", "nokey-2", "nokey-3"}
	for _, id := range keyless {
		p.emit(t, "", fmt.Sprintf(`{"name": "order.created", "id": %q, "payload": {"other": 1}}`, id))
		all = append(all, id)
	}
	p.emit(t, "", `{"name": "order.flaky", "id": "flaky-1", "payload": {"customer": "acme"}}`)
	all = append(all, "flaky-1")
	sink.WaitUntil(t, wait, "every event", func(hs []httpsink.Hit) bool {
		seen := map[string]bool{}
		for _, h := range hs {
			if !firstOfFlaky(h) {
				seen[h.Header.Get("Webhook-Id")] = true
			}
		}
		return len(seen) == len(all)
	})

	where := map[string]int{}
	order := map[int][]string{}
	for i, s := range redis.PartitionStreams(c.Stream, n) {
		for _, id := range streamIDs(t, client, s) {
			where[id] = i
			order[i] = append(order[i], id)
		}
	}
	for cust, ids := range posted {
		want := webhook.PartitionOf(cust, n)
		var inStream []string
		for _, id := range order[want] {
			if strings.HasPrefix(id, cust+"-") {
				inStream = append(inStream, id)
			}
		}
		if !slices.Equal(inStream, ids) {
			t.Errorf("customer %s: partition %d holds %v, want every one of its events in the order posted: %v", cust, want, inStream, ids)
		}
	}
	for _, id := range keyless {
		if got, ok := where[id]; !ok || got != webhook.PartitionOf(id, n) {
			t.Errorf("%s without the field in partition %d (%v), want its id's %d", id, got, ok, webhook.PartitionOf(id, n))
		}
	}
	acme := webhook.PartitionOf("acme", n)
	if where["flaky-1"] != acme {
		t.Errorf("flaky-1 in partition %d, want acme's %d", where["flaky-1"], acme)
	}
	if got := retryIDs(t, client, retryStreamOf(redis.PartitionStreams(c.Stream, n)[acme])); !slices.Equal(got, []string{"flaky-1"}) {
		t.Errorf("acme's partition's retry stream holds %v, want the retry of flaky-1", got)
	}
	// Each keyless event is placed once, as it is posted.
	text := waitMetric(t, p, "webhook_bridge_partition_key_fallbacks_total", float64(len(keyless)))
	if v, _ := metricValue(text, "webhook_bridge_partition_key_fallbacks_total"); v != float64(len(keyless)) {
		t.Errorf("webhook_bridge_partition_key_fallbacks_total = %v, want %d", v, len(keyless))
	}
	if lines := strings.Count(p.logs(), "partition key expression gave no key"); lines != 1 {
		t.Errorf("%d warnings for %d keyless events within a minute, want 1", lines, len(keyless))
	}
}

// firstOfFlaky reports whether h is the first attempt of a flaky- event,
// which the receiver fails.
func firstOfFlaky(h httpsink.Hit) bool {
	return strings.HasPrefix(h.Header.Get("Webhook-Id"), "flaky-") && h.Header.Get("Webhook-Attempt") == "1"
}

// TestDrainPartitions lowers partitions from 6 to 3: without
// drain_partitions the bridge refuses to start, naming the setting; with
// it, the events and the delayed retries left in partitions 3 to 5 are
// delivered, nothing new is written there, and the bridge says when
// they are empty.
func TestDrainPartitions(t *testing.T) {
	failsFirst := func(h http.Header) bool {
		return strings.HasPrefix(h.Get("Webhook-Id"), "retry-") && h.Get("Webhook-Attempt") == "1"
	}
	sink := httpsink.New(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		if failsFirst(r.Header) {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	base := backendConfig("redis") + "listen: LISTEN\nretry:\n  schedule: [4s]\nsubscriptions:\n  - {id: all, topic: \"*\", url: \"" + sink.URL + "\"}\n"
	six := startBridge(t, base+"partitions: 6\n")
	c, client := bridgeRedis(t, six)
	ctx := context.Background()
	streams := redis.PartitionStreams(c.Stream, 6)

	// A retry waiting in each of partitions 3, 4 and 5.
	var retryIDs []string
	for k := 0; len(retryIDs) < 3; k++ {
		id := "retry-" + strconv.Itoa(k)
		if webhook.PartitionOf(id, 6) == 3+len(retryIDs) {
			retryIDs = append(retryIDs, id)
		}
	}
	for _, id := range retryIDs {
		six.emit(t, "", fmt.Sprintf(`{"name": "order.created", "id": %q, "payload": {}}`, id))
	}
	deadline := time.Now().Add(wait)
	for _, s := range streams[3:] {
		for client.ZCard(ctx, redis.DelayedKey(retryStreamOf(s))).Val() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("no retry waiting in %s", s)
			}
			time.Sleep(20 * time.Millisecond) // polling another process's writes
		}
	}
	six.stop(syscall.SIGTERM)
	if code := exitedWithin(t, six, wait); code != 0 {
		t.Fatalf("the bridge exited %d", code)
	}
	// Events a producer adds to the upper partitions meanwhile.
	var direct []string
	for i, s := range streams[3:] {
		id := "direct-" + strconv.Itoa(i)
		direct = append(direct, id)
		if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: s, Values: []any{"id", id, "name", "order.created", "payload", "{}"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// Lowered without drain_partitions: refused, saying what to set.
	three := strings.ReplaceAll(base+"partitions: 3\n", "LISTEN", freeAddr(t))
	_, stderr, code := runCLI(t, "--config", writeConfig(t, three))
	if code != 1 || !strings.Contains(stderr, "partitions 3 (2), 4 (2), 5 (2) hold 6 events not yet delivered, pending or waiting to retry") ||
		!strings.Contains(stderr, "set drain_partitions: 6") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("lowered without drain_partitions: exit %d, %q; want 1 and one line naming drain_partitions: 6", code, stderr)
	}
	// And so is a drain that stops short.
	if _, stderr, code := runCLI(t, "--config", writeConfig(t, strings.ReplaceAll(three, "partitions: 3\n", "partitions: 3\ndrain_partitions: 5\n"))); code != 1 || !strings.Contains(stderr, "set drain_partitions: 6") {
		t.Errorf("drain_partitions 5: exit %d, %q; want a refusal naming 6", code, stderr)
	}

	// What a drained partition holds: its entries, and its delayed
	// retries, which move from the delayed set to the retry stream.
	held := func(s string) int64 {
		return client.XLen(ctx, s).Val() + client.XLen(ctx, retryStreamOf(s)).Val() + client.ZCard(ctx, redis.DelayedKey(retryStreamOf(s))).Val() +
			client.ZCard(ctx, redis.DelayedKey(s)).Val()
	}
	before := map[string]int64{}
	for _, s := range streams[3:] {
		before[s] = held(s)
	}
	p := startBridge(t, base+"partitions: 3\ndrain_partitions: 6\n")
	if !strings.Contains(p.logs(), "drain_partitions=6") {
		t.Errorf("the start log does not say drain_partitions:\n%s", p.logs())
	}
	var fresh []string
	for i := range 12 {
		id := "fresh-" + strconv.Itoa(i)
		fresh = append(fresh, id)
		p.emit(t, "", fmt.Sprintf(`{"name": "order.created", "id": %q, "payload": {}}`, id))
	}
	delivered := func(hs []httpsink.Hit) map[string]int {
		seen := map[string]int{}
		for _, h := range hs {
			if !failsFirst(h.Header) {
				seen[h.Header.Get("Webhook-Id")]++
			}
		}
		return seen
	}
	sink.WaitUntil(t, 2*wait, "every event", func(hs []httpsink.Hit) bool {
		seen := delivered(hs)
		for _, id := range slices.Concat(retryIDs, direct, fresh) {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
	waitLog(t, p, "the drained partitions are empty: drain_partitions can be removed")
	if !strings.Contains(p.logs(), `msg="webhook-bridge: draining partitions: read, not written; keep drain_partitions until they are empty" partitions="`+streams[3]+" to "+streams[5]+`"`) {
		t.Errorf("no line on what is left to drain:\n%s", p.logs())
	}
	for _, s := range streams[3:] {
		if got := held(s); got != before[s] {
			t.Errorf("partition %s went from %d to %d entries and delayed events: a drained partition was written", s, before[s], got)
		}
	}
	for i, s := range streams[:3] {
		for _, id := range streamIDs(t, client, s) {
			if strings.HasPrefix(id, "fresh-") && webhook.PartitionOf(id, 3) != i {
				t.Errorf("%s in %s, want partition %d of 3", id, s, webhook.PartitionOf(id, 3))
			}
		}
	}
	for id, times := range delivered(sink.Hits()) {
		if times != 1 {
			t.Errorf("%s delivered %d times", id, times)
		}
	}
	p.stop(syscall.SIGTERM)
	if code := exitedWithin(t, p, wait); code != 0 {
		t.Fatalf("the bridge exited %d", code)
	}
	// Once empty, the setting can go.
	final := startBridge(t, base+"partitions: 3\n")
	final.stop(syscall.SIGTERM)
}

// Raising partitions while retries wait: each waiting retry is delivered
// from the partition it waits in, its next retry goes to its event's
// partition among the new N, none is lost or made twice, and new events
// spread over all N.
func TestRaisingPartitionsKeepsWaitingRetries(t *testing.T) {
	// Events named retry-* fail their first two attempts.
	sink := httpsink.New(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		if strings.HasPrefix(r.Header.Get("Webhook-Id"), "retry-") && r.Header.Get("Webhook-Attempt") != "3" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	base := backendConfig("redis") + "listen: LISTEN\nretry:\n  schedule: [3s, 200ms]\nsubscriptions:\n  - {id: all, topic: \"*\", url: \"" + sink.URL + "\"}\n"
	two := startBridge(t, base+"partitions: 2\n")
	c, client := bridgeRedis(t, two)
	ctx := context.Background()
	twoStreams, fiveStreams := redis.PartitionStreams(c.Stream, 2), redis.PartitionStreams(c.Stream, 5)

	// Events whose partition among 5 is not the one among 2, so that
	// their next retry moves.
	var retried []string
	for k := 0; len(retried) < 4; k++ {
		id := "retry-" + strconv.Itoa(k)
		if webhook.PartitionOf(id, 2) != webhook.PartitionOf(id, 5) {
			retried = append(retried, id)
			two.emit(t, "", fmt.Sprintf(`{"name": "order.created", "id": %q, "payload": {}}`, id))
		}
	}
	waiting := func(streams []string) int64 {
		var n int64
		for _, s := range streams {
			n += client.ZCard(ctx, redis.DelayedKey(retryStreamOf(s))).Val()
		}
		return n
	}
	deadline := time.Now().Add(wait)
	for waiting(twoStreams) != int64(len(retried)) {
		if time.Now().After(deadline) {
			t.Fatalf("%d retries waiting, want %d", waiting(twoStreams), len(retried))
		}
		time.Sleep(20 * time.Millisecond) // polling another process's writes
	}
	two.stop(syscall.SIGTERM)
	if code := exitedWithin(t, two, wait); code != 0 {
		t.Fatalf("the bridge exited %d", code)
	}

	five := startBridge(t, base+"partitions: 5\n")
	var fresh []string
	for i := range 20 {
		id := "fresh-" + strconv.Itoa(i)
		fresh = append(fresh, id)
		five.emit(t, "", fmt.Sprintf(`{"name": "order.created", "id": %q, "payload": {}}`, id))
	}
	attempts := func(hs []httpsink.Hit) map[string][]string {
		seen := map[string][]string{}
		for _, h := range hs {
			id := h.Header.Get("Webhook-Id")
			seen[id] = append(seen[id], h.Header.Get("Webhook-Attempt"))
		}
		return seen
	}
	sink.WaitUntil(t, 3*wait, "every event, the retried ones at their third attempt", func(hs []httpsink.Hit) bool {
		seen := attempts(hs)
		for _, id := range retried {
			if len(seen[id]) < 3 {
				return false
			}
		}
		for _, id := range fresh {
			if len(seen[id]) == 0 {
				return false
			}
		}
		return true
	})
	seen := attempts(sink.Hits())
	for _, id := range retried {
		if got := strings.Join(seen[id], ","); got != "1,2,3" {
			t.Errorf("%s: attempts %s, want 1,2,3", id, got)
		}
		// Its third attempt was scheduled in its partition among 5.
		if ids := retryIDs(t, client, retryStreamOf(fiveStreams[webhook.PartitionOf(id, 5)])); !slices.Contains(ids, id) {
			t.Errorf("%s: the retry after the change is not in partition %d of 5 (it holds retries of %v)", id, webhook.PartitionOf(id, 5), ids)
		}
	}
	for _, id := range fresh {
		if len(seen[id]) != 1 {
			t.Errorf("%s delivered %d times", id, len(seen[id]))
		}
	}
	used := map[int]bool{}
	for i, s := range fiveStreams {
		for _, id := range streamIDs(t, client, s) {
			if strings.HasPrefix(id, "fresh-") {
				used[i] = true
				if want := webhook.PartitionOf(id, 5); want != i {
					t.Errorf("%s in partition %d, want %d of 5", id, i, want)
				}
			}
		}
	}
	if len(used) < 4 {
		t.Errorf("20 new events went to %d of 5 partitions", len(used))
	}
	if n := waiting(fiveStreams); n != 0 {
		t.Errorf("%d retries still waiting once all were delivered", n)
	}
	for _, s := range fiveStreams {
		if n := client.XLen(ctx, deadLetterKeyOf(s)).Val(); n != 0 {
			t.Errorf("%d dead letters in %s", n, deadLetterKeyOf(s))
		}
	}
}
