package webhookhttp_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/faultproxy"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// streamIDs counts the entries of stream by their id field.
func streamIDs(t *testing.T, client *goredis.Client, stream string) map[string]int {
	t.Helper()
	msgs, err := client.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range msgs {
		id, _ := m.Values["id"].(string)
		out[id]++
	}
	return out
}

// ADVERSARY: the doc says "a request whose emit failed (503) can simply be
// posted again". A client that gives up while the emit is on its way
// cancels the request's context; the coalescing publisher then returns
// ctx.Err() although the XADD still lands ("the event may still be
// written"), the handler releases the claim, and the client's retry
// emits the event a second time. Lost must be 0 and duplicates must be 0.
func TestAdversaryClientGoneMidEmitThenRepostEmitsTwice(t *testing.T) {
	// The publisher's client is the binary's: goredis defaults.
	direct, proxy, viaProxy := proxiedRedis(t, goredis.Options{})
	stream := fmt.Sprintf("adv-lost-%d", seq.Add(1))
	pub, err := redis.NewPublisher(viaProxy, redis.PublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := api(t, webhookhttp.Config{
		Publisher: pub,
		Dedupe:    webhookhttp.RedisDedupe{Client: direct, Prefix: "{" + stream + "}:webhook:ingest:"},
	})

	const ev = `{"name": "order.created", "payload": {"n": 1}, "id": "order-lost-1"}`
	ctx := context.Background()
	// Redis answers slowly; the client gives up (disconnects) while the
	// XADD is on its way.
	proxy.SetLatency(300 * time.Millisecond)
	reqCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(reqCtx, http.MethodPost, ts.URL+"/v1/events", strings.NewReader(ev))
		if resp, err := ts.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	key := "{" + stream + "}:webhook:ingest:order-lost-1"
	for direct.Exists(ctx, key).Val() == 0 { // claimed: the emit is under way
		runtime.Gosched()
	}
	cancel()
	<-done
	for direct.XLen(ctx, stream).Val() == 0 { // the XADD lands anyway
		runtime.Gosched()
	}
	for direct.Exists(ctx, key).Val() != 0 { // and the claim was released, not committed
		if direct.Get(ctx, key).Val() == "accepted" {
			break
		}
		runtime.Gosched()
	}
	proxy.SetLatency(0)
	// The client did not see an answer: it posts again, as it must.
	status2, body2, _ := call(t, ts, http.MethodPost, "/v1/events", "", ev)
	t.Logf("second post: %d %s", status2, strings.TrimSpace(body2))
	if n := streamIDs(t, direct, stream)["order-lost-1"]; n != 1 {
		t.Errorf("id order-lost-1 posted twice (the first post's client gone mid-emit, the second answered %d) is in the stream %d times, want exactly 1", status2, n)
	}
}

// blockingPublisher emits through next once release is closed.
type blockingPublisher struct {
	next    pubsub.Publisher
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingPublisher) Emit(ctx context.Context, evs ...pubsub.Event) error {
	b.once.Do(func() {
		close(b.entered)
		<-b.release
	})
	return b.next.Emit(ctx, evs...)
}
func (b *blockingPublisher) Close() error { return nil }

// ctxPublisher emits through next once release is closed, or gives up
// when its context ends first, as a publisher honouring its context does.
type ctxPublisher struct {
	next    pubsub.Publisher
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (p *ctxPublisher) Emit(ctx context.Context, evs ...pubsub.Event) error {
	first := false
	p.once.Do(func() { first = true; close(p.entered) })
	if first {
		select {
		case <-p.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return p.next.Emit(ctx, evs...)
}
func (p *ctxPublisher) Close() error { return nil }

// ADVERSARY: a request whose emit stalls must not hold its claim past
// ClaimTTL and then emit beside a second request that claimed the id
// meanwhile. The emit is bounded by EmitTimeout (well inside the claim):
// the stalled request answers 503 and emits nothing, the claim is freed,
// and the next post emits the id once.
func TestAdversaryClaimExpiresDuringSlowEmit(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = client.Close() })
	stream := fmt.Sprintf("adv-ttl-%d", seq.Add(1))
	real, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	prefix := "{" + stream + "}:webhook:ingest:"
	slow := &ctxPublisher{next: real, entered: make(chan struct{}), release: make(chan struct{})}
	defer close(slow.release)
	tsSlow, _ := api(t, webhookhttp.Config{Publisher: slow, EmitTimeout: 200 * time.Millisecond, Dedupe: webhookhttp.RedisDedupe{Client: client, Prefix: prefix}})
	tsFast, _ := api(t, webhookhttp.Config{Publisher: real, Dedupe: webhookhttp.RedisDedupe{Client: client, Prefix: prefix}})

	const ev = `{"name": "order.created", "payload": {"n": 1}, "id": "order-ttl-1"}`
	first := make(chan int, 1)
	go func() {
		s, _, _ := call(t, tsSlow, http.MethodPost, "/v1/events", "", ev)
		first <- s
	}()
	<-slow.entered
	// While the first request emits, the id is its own.
	if s, b, _ := call(t, tsFast, http.MethodPost, "/v1/events", "", ev); s != http.StatusConflict {
		t.Errorf("post during the first's emit: %d %s, want 409", s, b)
	}
	if s1 := <-first; s1 != http.StatusServiceUnavailable {
		t.Errorf("stalled emit answered %d, want 503", s1)
	}
	s2, b2, _ := call(t, tsFast, http.MethodPost, "/v1/events", "", ev)
	if s2 != http.StatusAccepted {
		t.Errorf("post after the stalled one: %d %s, want 202", s2, b2)
	}
	if n := streamIDs(t, client, stream)["order-ttl-1"]; n != 1 {
		t.Errorf("id order-ttl-1 is in the stream %d times, want 1", n)
	}
}

// ADVERSARY: concurrent posts of one id through two replicas sharing
// Redis, with batches repeating the id: each id answered 202 or 200 must be
// emitted exactly once.
func TestAdversaryConcurrentReplicasAndRepeatedBatches(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = client.Close() })
	stream := fmt.Sprintf("adv-conc-%d", seq.Add(1))
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	prefix := "{" + stream + "}:webhook:ingest:"
	a, _ := api(t, webhookhttp.Config{Publisher: pub, Dedupe: webhookhttp.RedisDedupe{Client: client, Prefix: prefix}})
	b, _ := api(t, webhookhttp.Config{Publisher: pub, Dedupe: webhookhttp.RedisDedupe{Client: client, Prefix: prefix}})
	const ids = 40
	var mu sync.Mutex
	answered := map[string]bool{}
	var wg sync.WaitGroup
	for i := range ids {
		id := fmt.Sprintf("c-%d", i)
		body := fmt.Sprintf(`[{"name":"x","payload":1,"id":%q},{"name":"x","payload":2,"id":%q},{"name":"x","payload":3,"id":%q}]`, id, id, id)
		for r := range 6 {
			ts := a
			if r%2 == 1 {
				ts = b
			}
			wg.Go(func() {
				for {
					s, _, _ := call(t, ts, http.MethodPost, "/v1/events", "", body)
					if s == http.StatusConflict {
						continue // "post again"
					}
					if s == http.StatusAccepted || s == http.StatusOK {
						mu.Lock()
						answered[id] = true
						mu.Unlock()
					} else {
						t.Errorf("post %s: %d", id, s)
					}
					return
				}
			})
		}
	}
	wg.Wait()
	got := streamIDs(t, client, stream)
	for id := range answered {
		if got[id] != 1 {
			t.Errorf("id %s emitted %d times, want 1", id, got[id])
		}
	}
}

var _ = webhook.MessageID

// signalDedupe tells when a Commit has failed.
type signalDedupe struct {
	webhookhttp.Deduper
	failed chan struct{}
	once   sync.Once
}

func (d *signalDedupe) Commit(ctx context.Context, token string, ids []string, window time.Duration) error {
	err := d.Deduper.Commit(ctx, token, ids, window)
	if err != nil {
		d.once.Do(func() { close(d.failed) })
	}
	return err
}

// ADVERSARY: Redis stops answering the dedupe client between the emit and
// the commit (a failover, a restart, a network blip) and comes back within
// the commit's retries: the id is remembered, and posting it again emits
// nothing. (Beyond the retries, the bridge logs that it may emit twice;
// the doc says so.)
func TestAdversaryCommitLostThenRepostEmitsTwice(t *testing.T) {
	direct, proxy, viaProxy := proxiedRedis(t, goredis.Options{MaxRetries: -1})
	stream := fmt.Sprintf("adv-commit-%d", seq.Add(1))
	real, err := redis.NewPublisher(direct, redis.PublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	prefix := "{" + stream + "}:webhook:ingest:"
	slow := &blockingPublisher{next: real, entered: make(chan struct{}), release: make(chan struct{})}
	dedupe := &signalDedupe{Deduper: webhookhttp.RedisDedupe{Client: viaProxy, Prefix: prefix}, failed: make(chan struct{})}
	ts, _ := api(t, webhookhttp.Config{Publisher: slow, Dedupe: dedupe})

	const ev = `{"name": "order.created", "payload": {"n": 1}, "id": "order-commit-1"}`
	first := make(chan int, 1)
	go func() {
		s, _, _ := call(t, ts, http.MethodPost, "/v1/events", "", ev)
		first <- s
	}()
	<-slow.entered
	proxy.StopListening()
	proxy.ResetAll() // the dedupe store is unreachable from here on
	close(slow.release)
	<-dedupe.failed
	if err := proxy.StartListening(); err != nil {
		t.Fatal(err)
	}
	s1 := <-first
	s2, b2, _ := call(t, ts, http.MethodPost, "/v1/events", "", ev)
	if s1 != http.StatusAccepted || s2 != http.StatusOK || !strings.Contains(b2, `"duplicates":["order-commit-1"]`) {
		t.Errorf("first post %d, second %d %s; want 202, then 200 naming a duplicate", s1, s2, strings.TrimSpace(b2))
	}
	if n := streamIDs(t, direct, stream)["order-commit-1"]; n != 1 {
		t.Errorf("id order-commit-1 is in the stream %d times, want 1", n)
	}
}

// proxiedRedis returns a client of the shared redis-server, a fault proxy
// in front of it, and a client (opts, its address set) through the proxy.
func proxiedRedis(t *testing.T, opts goredis.Options) (direct *goredis.Client, proxy *faultproxy.Proxy, viaProxy *goredis.Client) {
	t.Helper()
	direct = goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = direct.Close() })
	proxy, err := faultproxy.New(redisServer.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	opts.Addr = proxy.Addr()
	viaProxy = goredis.NewClient(&opts)
	t.Cleanup(func() { _ = viaProxy.Close() })
	return direct, proxy, viaProxy
}
