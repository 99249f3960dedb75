package webhook_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// subsEndpoints is how many endpoints (httptest servers) the
// subscriptions' URLs are spread over, at most.
const subsEndpoints = 100

// subsPerEndpoint is the bridge's PerEndpoint in BenchmarkSubscriptions.
const subsPerEndpoint = 16

// subsStall fails a run of BenchmarkSubscriptions in which no delivery
// arrived for this long: deferred deliveries come back a second later, so
// a run may take a while, but never stalls.
const subsStall = 30 * time.Second

// sinkSet is subsEndpoints servers answering 204 at once, counting the
// requests of all of them together.
type sinkSet struct {
	urls   []string
	count  atomic.Int64
	target atomic.Int64
	done   atomic.Pointer[chan struct{}]
}

func newSinkSet(b *testing.B, n int) *sinkSet {
	s := &sinkSet{}
	s.arm(0)
	for range n {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
			if s.count.Add(1) == s.target.Load() {
				close(*s.done.Load())
			}
		}))
		b.Cleanup(srv.Close)
		s.urls = append(s.urls, srv.URL)
	}
	return s
}

// arm restarts the count; the returned channel is closed once n requests
// arrived. Nothing may be in flight.
func (s *sinkSet) arm(n int) <-chan struct{} {
	done := make(chan struct{})
	s.done.Store(&done)
	s.count.Store(0)
	s.target.Store(int64(n))
	return done
}

// await waits for done, failing b when no request arrives for subsStall.
func (s *sinkSet) await(b *testing.B, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, since := s.count.Load(), time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			if n := s.count.Load(); n != last {
				last, since = n, now
			} else if now.Sub(since) >= subsStall {
				b.Fatalf("%d of %d deliveries arrived, none for %s", n, s.target.Load(), subsStall)
			}
		}
	}
}

// subsObserver counts what BenchmarkSubscriptions reports beside the rates.
type subsObserver struct {
	webhook.NopObserver
	matched, deferred, other atomic.Int64
}

func (o *subsObserver) EventConsumed(matched, _ int) { o.matched.Add(int64(matched)) }

func (o *subsObserver) Delivery(_ string, outcome webhook.Outcome, _ int, _ time.Duration) {
	switch outcome {
	case webhook.Delivered:
	case webhook.Deferred:
		o.deferred.Add(1)
	default:
		o.other.Add(1)
	}
}

// goroutinePeak samples runtime.NumGoroutine every millisecond until
// stop is called, which returns the highest count seen.
func goroutinePeak() (stop func() int) {
	var peak atomic.Int64
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if n := int64(runtime.NumGoroutine()); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() int { close(quit); <-finished; return int(peak.Load()) }
}

// subsShape is one way of filtering: filter(i) is subscription i's, and
// payload(k) the k-th distinct payload, of payloads.
type subsShape struct {
	name     string
	filter   func(i int) string
	payloads func(subs int) int
	payload  func(k int) []byte
	// matching is how many of subs subscriptions each event matches.
	matching func(subs int) int
	// perDelivery: report deliveries/s beside events/s.
	perDelivery bool
}

// subsPayload is JSON of about 256 bytes naming tenant t<k> and group
// g<k%10>.
func subsPayload(k int) []byte {
	head := fmt.Sprintf(`{"tenant":"t%d","group":"g%d","amount":12.5,"note":"`, k, k%10)
	return []byte(head + strings.Repeat("n", 200) + `"}`)
}

var subsShapes = []subsShape{
	{
		// Each event names one tenant: exactly one subscription matches.
		name:     "one-matching",
		filter:   func(i int) string { return fmt.Sprintf(`data.tenant == "t%d"`, i) },
		payloads: func(subs int) int { return subs },
		payload:  subsPayload,
		matching: func(int) int { return 1 },
	},
	{
		// Each event names one group of ten: a tenth of the subscriptions
		// match. With fewer than ten subscriptions the events name only
		// as many groups, so that each still matches one (all of one).
		name:        "ten-percent",
		filter:      func(i int) string { return fmt.Sprintf(`data.group == "g%d"`, i%10) },
		payloads:    func(subs int) int { return min(subs, 10) },
		payload:     subsPayload,
		matching:    func(subs int) int { return subs / min(subs, 10) },
		perDelivery: true,
	},
}

// subsEndpoint is the endpoint of subscription i of n: with n ≥ 100, the
// subscriptions of each group spread over every endpoint (i%100 would
// send a group to only ten of them).
func subsEndpoint(i, n int) int {
	if n < subsEndpoints {
		return i
	}
	return (i/10 + 10*(i%10)) % subsEndpoints
}

// subsRig is a bridge on a memory broker with n subscriptions of a shape,
// built once per size and reused for every b.N.
type subsRig struct {
	broker   *memory.Broker
	bridge   *webhook.Bridge
	obs      *subsObserver
	payloads [][]byte
	run      atomic.Int64 // makes event IDs unique across runs
	closed   chan struct{}
}

func newSubsRig(b *testing.B, sinks *sinkSet, shape subsShape, n int) *subsRig {
	subs := make([]webhook.Subscription, n)
	for i := range subs {
		subs[i] = webhook.Subscription{
			ID: "s" + strconv.Itoa(i), Topic: "order.created", Filter: shape.filter(i),
			URL: sinks.urls[subsEndpoint(i, n)], Secrets: webhook.Secrets{vectorSecret},
		}
	}
	broker := memory.NewBroker(memory.Options{Buffer: 4096})
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "bridge", Concurrency: benchConcurrency})
	if err != nil {
		b.Fatal(err)
	}
	obs := &subsObserver{}
	bridge, err := webhook.New(webhook.Config{
		Subscriber: sub, Publisher: broker, PerEndpoint: subsPerEndpoint, Observer: obs, Subscriptions: subs,
	})
	if err != nil {
		b.Fatal(err)
	}
	r := &subsRig{broker: broker, bridge: bridge, obs: obs, closed: make(chan struct{})}
	for k := range shape.payloads(n) {
		r.payloads = append(r.payloads, shape.payload(k))
	}
	go func() { defer close(r.closed); bridge.Run(context.Background()) }()
	return r
}

func (r *subsRig) close() {
	_ = r.bridge.Close()
	<-r.closed
	_ = r.broker.Close()
}

// BenchmarkSubscriptions measures the bridge (memory backend, signed
// deliveries, 64 events at once, PerEndpoint 16) with 1 to 10,000
// subscriptions on one topic, told apart by their filters. b.N counts
// events, and each run waits until every delivery arrived.
//
// one-matching: each event matches one subscription (data.tenant ==
// "t<i>"). ten-percent: each matches a tenth of them (data.group ==
// "g<i%10>"), their URLs spread over 100 endpoints. bare-client posts
// the same body with one header to the same 100 endpoints round-robin
// from 64 goroutines, bare-client-same-requests sends the bridge's own
// requests there (internal/barehook); there b.N counts deliveries.
//
// Beside the rates it reports deferred/op, the deliveries deferred per
// event (slots full or circuit open: each comes back a second later), and
// peak-goroutines, the most runtime.NumGoroutine saw during the run (the
// servers' and client connections' goroutines included).
func BenchmarkSubscriptions(b *testing.B) {
	sinks := newSinkSet(b, subsEndpoints)
	for _, shape := range subsShapes {
		b.Run(shape.name, func(b *testing.B) {
			for _, n := range []int{1, 100, 1000, 10000} {
				var rig *subsRig
				b.Run(strconv.Itoa(n), func(b *testing.B) {
					if rig == nil {
						rig = newSubsRig(b, sinks, shape, n)
					}
					benchSubsRun(b, sinks, rig, shape.matching(n), shape.perDelivery)
				})
				if rig != nil {
					rig.close()
				}
			}
		})
	}
	b.Run("bare-client", func(b *testing.B) { benchBareClient(b, sinks, false) })
	b.Run("bare-client-same-requests", func(b *testing.B) { benchBareClient(b, sinks, true) })
}

// benchSubsRun emits b.N events through rig and waits for their
// b.N×matching deliveries.
func benchSubsRun(b *testing.B, sinks *sinkSet, rig *subsRig, matching int, perDelivery bool) {
	want := b.N * matching
	done := sinks.arm(want)
	rig.obs.matched.Store(0)
	rig.obs.deferred.Store(0)
	rig.obs.other.Store(0)
	prefix := "r" + strconv.FormatInt(rig.run.Add(1), 10) + "-"
	ev := pubsub.NewEvent(context.Background(), "order.created", nil)
	peak := goroutinePeak()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev.ID = pubsub.ID(prefix + strconv.Itoa(i))
		ev.Payload = rig.payloads[i%len(rig.payloads)]
		if err := rig.broker.Emit(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
	sinks.await(b, done)
	b.StopTimer()
	peakGoroutines := peak()
	if got := rig.obs.matched.Load(); got != int64(want) {
		b.Fatalf("events matched %d deliveries, want %d", got, want)
	}
	if n := rig.obs.other.Load(); n > 0 {
		b.Fatalf("%d deliveries neither delivered nor deferred", n)
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "events/s")
	if perDelivery {
		b.ReportMetric(float64(want)/secs, "deliveries/s")
	}
	b.ReportMetric(float64(rig.obs.deferred.Load())/float64(b.N), "deferred/op")
	b.ReportMetric(float64(peakGoroutines), "peak-goroutines")
}

// benchBareClient posts the body to the sinks round-robin from
// benchConcurrency goroutines; with same, it sends the bridge's requests
// (internal/barehook): what the protocol itself costs, with no bridge
// around it.
func benchBareClient(b *testing.B, sinks *sinkSet, same bool) {
	body := subsPayload(0)
	post := barePost(b, "order.created", body, subsPerEndpoint, same)
	done := sinks.arm(b.N)
	postConcurrently(b, func(i int) error { return post(sinks.urls[i%subsEndpoints], i, body) })
	sinks.await(b, done)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
