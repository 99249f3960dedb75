package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// idleBridge is a bridge whose events the test hands to Handle itself;
// its retries and deferrals go to a memory broker nobody reads.
func idleBridge(t *testing.T, cfg webhook.Config) (*webhook.Bridge, *countingObserver) {
	t.Helper()
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	idle, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idle.Close() })
	obs := &countingObserver{}
	cfg.Subscriber, cfg.Publisher, cfg.Observer = idle, broker, obs
	b, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b, obs
}

// An event with more deliveries than the queues hold (16 × MaxInFlight)
// "goes in alone": it waits until nothing at all is queued. Under a
// steady trickle of small events, each of which fits in the room left,
// the queues are never empty, and the big event waits for as long as the
// trickle lasts: it is starved, though the one endpoint answers at once
// and the bridge gets through hundreds of small events meanwhile.
func TestBigEventIsNotStarvedBySmallOnes(t *testing.T) {
	s := newSink(t, func(int, *http.Request, http.ResponseWriter) { time.Sleep(2 * time.Millisecond) })
	subs := []webhook.Subscription{{ID: "small", Topic: "small", URL: s.URL + "/small"}}
	const big = 17 // > 16 × MaxInFlight
	for i := range big {
		subs = append(subs, webhook.Subscription{ID: fmt.Sprintf("big%d", i), Topic: "big", URL: fmt.Sprintf("%s/big%d", s.URL, i)})
	}
	b, _ := idleBridge(t, webhook.Config{MaxInFlight: 1, PerEndpoint: 1, Subscriptions: subs})
	ctx := context.Background()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var small atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := b.Handle(ctx, pubsub.NewEvent(ctx, "small", []byte(`{}`))); err != nil {
					t.Error(err)
					return
				}
				small.Add(1)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // the trickle is going
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- b.Handle(ctx, pubsub.NewEvent(ctx, "big", []byte(`{}`))) }()
	var took time.Duration
	select {
	case err := <-done:
		took = time.Since(start)
		if err != nil {
			t.Error(err)
		}
	case <-time.After(3 * time.Second):
		took = -1
	}
	close(stop)
	wg.Wait()
	if took < 0 {
		<-done
		t.Errorf("an event of %d deliveries to an endpoint answering in 2ms was still waiting to be queued after 3s, "+
			"while %d small events went through: it waits for the queues to be empty, which a steady trickle never lets happen",
			big, small.Load())
	}
}

// With MaxInFlight no greater than PerEndpoint (here both 2, as the
// end-to-end test's 4 and 4), one hanging endpoint takes every worker: an
// event for another endpoint, which answers at once, waits until the hung
// requests time out (deferred and re-emitted every SlotWait+1s in the
// meantime). The promise is that a slow endpoint never keeps events for
// other endpoints waiting long.
func TestHangingEndpointDoesNotTakeEveryWorker(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		perEndpoint, maxInFlight int
		hanging                  int // endpoints
	}{
		{"one hanging endpoint, max_in_flight = per_endpoint", 2, 2, 1},
		{"max_in_flight / per_endpoint hanging endpoints", 2, 4, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			var subs []webhook.Subscription
			var hung []sink
			for i := range tc.hanging {
				h := newSink(t, func(int, *http.Request, http.ResponseWriter) { <-release })
				hung = append(hung, h)
				subs = append(subs, webhook.Subscription{ID: fmt.Sprintf("hang%d", i), Topic: fmt.Sprintf("hang%d", i), URL: h.URL})
			}
			fast := newSink(t, nil)
			subs = append(subs, webhook.Subscription{ID: "fast", Topic: "fast", URL: fast.URL})
			h := newHarness(t, webhook.Config{PerEndpoint: tc.perEndpoint, MaxInFlight: tc.maxInFlight,
				Timeout: 8 * time.Second, Subscriptions: subs})
			t.Cleanup(func() { close(release) }) // before the bridge and the sinks close
			ctx := context.Background()
			for i := range tc.hanging {
				for range tc.perEndpoint {
					h.emit(t, pubsub.NewEvent(ctx, pubsub.Name(fmt.Sprintf("hang%d", i)), nil))
				}
			}
			for _, s := range hung {
				s.waitFor(t, tc.perEndpoint)
			}
			start := time.Now()
			h.emit(t, pubsub.NewEvent(ctx, "fast", nil))
			fast.WaitUntil(t, 3*time.Second, "the fast endpoint's delivery, while another hangs", func(h []hit) bool { return len(h) > 0 })
			t.Logf("the fast endpoint got its delivery after %s", time.Since(start))
		})
	}
}

// One event for 900 subscriptions of one receiver that answers within
// 10ms, in a bridge that is busy all round (fifteen other endpoints, as
// quick, with events coming steadily): the docs promise such a busy
// endpoint, "or a bridge busy all round, gets through its queues without
// deferrals". But an endpoint's pace is its share of the workers, and the
// endpoint with most of the queue always looks more than twice as slow as
// all the queues together (k endpoints with work: k times as slow): its
// deliveries are deferred, re-emitted and queued again. (900, not 1,000:
// an event of more than 16 × MaxInFlight waits for empty queues, see
// TestBigEventIsNotStarvedBySmallOnes.)
func TestBusyReceiverInABusyBridgeIsNotDeferred(t *testing.T) {
	quick := func(int, *http.Request, http.ResponseWriter) { time.Sleep(10 * time.Millisecond) }
	a := newSink(t, quick)
	var subs []webhook.Subscription
	const many = 900
	for i := range many {
		subs = append(subs, webhook.Subscription{ID: fmt.Sprintf("a%d", i), Topic: "big", URL: fmt.Sprintf("%s/a%d", a.URL, i)})
	}
	const others = 15
	for i := range others {
		o := newSink(t, quick)
		subs = append(subs, webhook.Subscription{ID: fmt.Sprintf("o%d", i), Topic: fmt.Sprintf("o%d", i), URL: o.URL})
	}
	b, obs := idleBridge(t, webhook.Config{Subscriptions: subs}) // 16 per endpoint, 64 in all
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 6 * others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := b.Handle(ctx, pubsub.NewEvent(ctx, pubsub.Name(fmt.Sprintf("o%d", i%others)), []byte(`{}`))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	err := b.Handle(ctx, pubsub.NewEvent(ctx, "big", []byte(`{}`)))
	took := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	deferred := 0
	for i := range many {
		deferred += obs.count(fmt.Sprintf("a%d", i), webhook.Deferred)
	}
	sent := len(a.snapshot())
	t.Logf("the %d-subscription event took %s: %d sent, %d deferred", many, took, sent, deferred)
	if deferred > 0 {
		t.Errorf("%d of the busy receiver's %d deliveries deferred (it answers within 10ms; the bridge is busy all round), want none", deferred, many)
	}
}

// countingSinks are receivers sharing one count of requests in flight, so
// the test sees the most in flight per endpoint and in all.
type countingSinks struct {
	mu       sync.Mutex
	inFlight int
	most     int
	quickIn  int // in flight at the endpoints that answer within a window
	quick    int // the most of those
	per      map[string]int
	perMost  map[string]int
	got      map[string]int // by path and webhook-id
}

func (c *countingSinks) new(t *testing.T, name string, respond func(n int, w http.ResponseWriter)) sink {
	return newSink(t, func(n int, r *http.Request, w http.ResponseWriter) {
		if name == "hang" { // the bridge gives up on it (timeout) while it still runs: not counted
			respond(n, w)
			return
		}
		c.mu.Lock()
		c.inFlight++
		c.most = max(c.most, c.inFlight)
		if name != "crawl" {
			c.quickIn++
			c.quick = max(c.quick, c.quickIn)
		}
		c.per[name]++
		c.perMost[name] = max(c.perMost[name], c.per[name])
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.inFlight--
			if name != "crawl" {
				c.quickIn--
			}
			c.per[name]--
			c.mu.Unlock()
		}()
		respond(n, w)
		c.mu.Lock()
		if w.Header().Get("X-Failed") == "" {
			c.got[r.URL.Path+" "+r.Header.Get("Webhook-Id")]++
		}
		c.mu.Unlock()
	})
}

// Many events, from many goroutines, to quick, crawling, hanging and
// failing endpoints, while the subscriptions are replaced over and over:
// never more than PerEndpoint in flight at an endpoint nor MaxInFlight in
// all; every delivery to the endpoints that answer made exactly once
// (deferrals take back only deliveries not sent), the failing ones'
// retried until they succeed; nothing stalls; InFlight ends at 0.
func TestDispatcherUnderMixedLoad(t *testing.T) {
	const waitAll = 20 * time.Second // a stall bound: deferred deliveries come back a second later, often more than once under a loaded -race run
	for _, tc := range []struct {
		name                     string
		maxInFlight, perEndpoint int
		events, quickSubs        int
		slow                     bool // a crawling and a hanging endpoint too
	}{
		{"3 workers, 2 per endpoint", 3, 2, 48, 8, true},
		// With one worker, a slow endpoint holds up every other (see
		// TestHangingEndpointDoesNotTakeEveryWorker).
		{"1 worker, 1 per endpoint", 1, 1, 40, 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &countingSinks{per: map[string]int{}, perMost: map[string]int{}, got: map[string]int{}}
			release := make(chan struct{})
			quick := func(int, http.ResponseWriter) { time.Sleep(time.Millisecond) }
			fast1 := c.new(t, "fast1", quick)
			fast2 := c.new(t, "fast2", quick)
			crawl := c.new(t, "crawl", func(int, http.ResponseWriter) { time.Sleep(150 * time.Millisecond) })
			hang := c.new(t, "hang", func(n int, w http.ResponseWriter) {
				if n%4 == 0 {
					select {
					case <-release:
					case <-time.After(2 * time.Second):
					}
				}
			})
			flaky := c.new(t, "flaky", func(n int, w http.ResponseWriter) {
				if n%3 == 0 {
					w.Header().Set("X-Failed", "1")
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			})
			var subs []webhook.Subscription
			add := func(id, url string, timeout time.Duration) {
				subs = append(subs, webhook.Subscription{ID: id, Topic: "e.*", URL: url + "/" + id, Timeout: webhook.Duration(timeout)})
			}
			for i := range tc.quickSubs {
				add(fmt.Sprintf("f1-%d", i), fast1.URL, 0)
				add(fmt.Sprintf("f2-%d", i), fast2.URL, 0)
			}
			if tc.slow {
				add("crawl", crawl.URL, 0)
				add("hang", hang.URL, 300*time.Millisecond)
			}
			add("flaky", flaky.URL, 0)
			h := newHarness(t, webhook.Config{MaxInFlight: tc.maxInFlight, PerEndpoint: tc.perEndpoint, SlotWait: 50 * time.Millisecond,
				Retry: webhook.RetryPolicy{Schedule: []time.Duration{50 * time.Millisecond}, MaxAttempts: 100}, Subscriptions: subs})
			t.Cleanup(func() { close(release) })
			ctx := context.Background()

			stopChurn := make(chan struct{})
			churned := make(chan struct{})
			go func() { // the same subscriptions, and one more that comes and goes
				defer close(churned)
				for i := 0; ; i++ {
					select {
					case <-stopChurn:
						return
					case <-time.After(5 * time.Millisecond):
					}
					list := slices.Clone(subs)
					if i%2 == 0 {
						list = append(list, webhook.Subscription{ID: "other", Topic: "x", URL: fast1.URL})
					}
					if err := h.bridge.SetSubscriptions(list); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			var ids []string
			var wg sync.WaitGroup
			var mu sync.Mutex
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range tc.events / 8 {
						ev := pubsub.NewEvent(ctx, pubsub.Name(fmt.Sprintf("e.%d.%d", g, i)), []byte(`{}`))
						mu.Lock()
						ids = append(ids, string(ev.ID))
						mu.Unlock()
						h.emit(t, ev)
					}
				}()
			}
			wg.Wait()
			var missing []string
			deadline := time.Now().Add(waitAll)
			for {
				missing = missing[:0]
				c.mu.Lock()
				for _, id := range ids {
					for _, s := range subs {
						if s.ID == "hang" {
							continue
						}
						if c.got["/"+s.ID+" "+webhook.MessageID(pubsub.ID(id))] == 0 {
							missing = append(missing, s.ID+" "+id)
						}
					}
				}
				c.mu.Unlock()
				if len(missing) == 0 || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			close(stopChurn)
			<-churned
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(missing) > 0 {
				t.Errorf("%d deliveries never made within %s, e.g. %v", len(missing), waitAll, missing[:min(5, len(missing))])
			}
			for k, n := range c.got {
				if n > 1 && !strings.HasPrefix(k, "/hang") {
					t.Errorf("%s made %d times", k, n)
				}
			}
			// MaxInFlight bounds the deliveries to endpoints that answer;
			// those stuck at one that answered nothing for SlotWait (the
			// crawling one answers every 100ms or more) get workers
			// beside them, up to twice MaxInFlight in all.
			if c.quick > tc.maxInFlight {
				t.Errorf("%d requests in flight at once at the endpoints that answer, MaxInFlight is %d", c.quick, tc.maxInFlight)
			}
			if c.most > 2*tc.maxInFlight {
				t.Errorf("%d requests in flight at once, more than twice MaxInFlight (%d)", c.most, tc.maxInFlight)
			}
			for name, n := range c.perMost {
				if n > tc.perEndpoint {
					t.Errorf("%d requests in flight at %s, PerEndpoint is %d", n, name, tc.perEndpoint)
				}
			}
			deferred := 0
			per := map[string]int{}
			for _, s := range subs {
				deferred += h.obs.count(s.ID, webhook.Deferred)
				per[s.ID[:2]] += h.obs.count(s.ID, webhook.Deferred)
			}
			t.Logf("deferrals by subscription kind: %v", per)
			t.Logf("%d events, %d deliveries, at most %d in flight; %d deferrals", len(ids), len(c.got), c.most, deferred)
		})
	}
}

// Events for ten subscriptions of a receiver answering within a
// millisecond and one of a receiver taking 200ms: the crawling one can
// take only PerEndpoint (2) of the 4 workers, so the quick one always has
// two. The deferrals fall on the crawling endpoint, never on the quick
// one, though its queue is ten times as long.
func TestQuickEndpointIsNotDeferredForACrawlingOne(t *testing.T) {
	quick := newSink(t, nil)
	crawl := newSink(t, func(int, *http.Request, http.ResponseWriter) { time.Sleep(200 * time.Millisecond) })
	subs := []webhook.Subscription{{ID: "crawl", Topic: "t", URL: crawl.URL}}
	for i := range 10 {
		subs = append(subs, webhook.Subscription{ID: fmt.Sprintf("q%d", i), Topic: "t", URL: fmt.Sprintf("%s/q%d", quick.URL, i)})
	}
	b, obs := idleBridge(t, webhook.Config{MaxInFlight: 4, PerEndpoint: 2, Subscriptions: subs})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Handle(ctx, pubsub.NewEvent(ctx, "t", []byte(`{}`))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	quickDeferred := 0
	for i := range 10 {
		quickDeferred += obs.count(fmt.Sprintf("q%d", i), webhook.Deferred)
	}
	t.Logf("deferred: %d at the quick endpoint (of 400), %d at the crawling one (of 40)", quickDeferred, obs.count("crawl", webhook.Deferred))
	if quickDeferred > 0 {
		t.Errorf("%d deliveries to the endpoint answering at once deferred, with two workers always free for it", quickDeferred)
	}
}

// InFlight counts the deliveries being made, not those waiting in a
// queue; Close, mid-fan-out, returns once the ones being made are
// recorded, the queued ones deferred rather than waited for.
func TestInFlightAndCloseMidFanOut(t *testing.T) {
	release := make(chan struct{})
	s := newSink(t, func(int, *http.Request, http.ResponseWriter) { <-release })
	var subs []webhook.Subscription
	for i := range 10 {
		subs = append(subs, webhook.Subscription{ID: fmt.Sprintf("s%d", i), Topic: "t", URL: fmt.Sprintf("%s/s%d", s.URL, i)})
	}
	broker := memory.NewBroker(memory.Options{})
	t.Cleanup(func() { _ = broker.Close() })
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "bridge", Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	obs := &countingObserver{}
	b, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: broker, Observer: obs, PerEndpoint: 2, Subscriptions: subs})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{})
	go func() { defer close(ran); b.Run(context.Background()) }()
	if err := broker.Emit(context.Background(), pubsub.NewEvent(context.Background(), "t", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, 2)
	time.Sleep(50 * time.Millisecond)
	if n := b.InFlight(); n != 2 {
		t.Errorf("InFlight = %d with 2 requests out and 8 queued, want 2", n)
	}
	closed := make(chan struct{})
	go func() { _ = b.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned with 2 deliveries in flight")
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not return 3s after the deliveries in flight finished")
	}
	<-ran
	delivered, deferred := 0, 0
	for i := range 10 {
		delivered += obs.count(fmt.Sprintf("s%d", i), webhook.Delivered)
		deferred += obs.count(fmt.Sprintf("s%d", i), webhook.Deferred)
	}
	if n := b.InFlight(); n != 0 {
		t.Errorf("InFlight = %d after Close, want 0", n)
	}
	if delivered+deferred != 10 {
		t.Errorf("%d delivered and %d deferred of 10", delivered, deferred)
	}
	t.Logf("%d delivered, %d deferred, %d requests", delivered, deferred, len(s.snapshot()))
}

// One event for 10,000 subscriptions of one receiver answering at once:
// each is sent once or deferred once (deferred only should the receiver
// take more than 40 × SlotWait to get through them, as on a loaded
// machine), never both.
func TestTenThousandSubscriptionsOneReceiver(t *testing.T) {
	s := newSink(t, nil)
	var subs []webhook.Subscription
	const n = 10_000
	for i := range n {
		subs = append(subs, webhook.Subscription{ID: fmt.Sprintf("s%d", i), Topic: "t", URL: fmt.Sprintf("%s/s%d", s.URL, i),
			Filter: fmt.Sprintf("data.n == %d or true", i%3)})
	}
	b, obs := idleBridge(t, webhook.Config{Subscriptions: subs})
	ctx := context.Background()
	if err := b.Handle(ctx, pubsub.NewEvent(ctx, "t", []byte(`{"n": 1}`))); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, h := range s.snapshot() {
		seen[h.Path]++
	}
	deferred := 0
	for i := range n {
		d := obs.count(fmt.Sprintf("s%d", i), webhook.Deferred)
		if c := seen[fmt.Sprintf("/s%d", i)]; c+d != 1 {
			t.Fatalf("s%d: %d deliveries, %d deferrals", i, c, d)
		}
		deferred += d
	}
	t.Logf("%d deferred", deferred)
	if c := obs.consumedEvents(); len(c) != 1 || c[0].matched != n || c[0].filteredOut != 0 {
		t.Errorf("EventConsumed %v", c)
	}
}
