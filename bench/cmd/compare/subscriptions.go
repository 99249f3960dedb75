package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchyard-go/switchyard/internal/barehook"
	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// --- webhook bridge with many subscriptions ----------------------------------

const (
	subsSection = "Webhook bridge with many subscriptions"
	// subsEndpoints is how many local endpoints the subscriptions' URLs
	// spread over, at most.
	subsEndpoints = 100
	// subsPerEndpoint is the bridge's PerEndpoint (its default).
	subsPerEndpoint = 16
	// subsStall ends a run in which no delivery arrived for this long;
	// deferred deliveries come back after a second.
	subsStall = 30 * time.Second
)

// subsPayload is JSON of size bytes (at least about 60) naming tenant
// t<k> and group g<k%10>, padded with a note.
func subsPayload(k, size int) []byte {
	head := fmt.Sprintf(`{"tenant":"t%d","group":"g%d","amount":12.5,"note":"`, k, k%10)
	return []byte(head + strings.Repeat("n", max(size-len(head)-2, 0)) + `"}`)
}

// sinkSet is endpoints answering 204 at once; done is closed once n
// requests arrived at them together.
type sinkSet struct {
	srvs  []*httptest.Server
	count atomic.Int64
	n     int64
	done  chan struct{}
}

func newSinkSet(endpoints, n int) *sinkSet {
	s := &sinkSet{n: int64(n), done: make(chan struct{})}
	for range endpoints {
		s.srvs = append(s.srvs, httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
			if s.count.Add(1) == s.n {
				close(s.done)
			}
		})))
	}
	return s
}

func (s *sinkSet) close() {
	for _, srv := range s.srvs {
		srv.Close()
	}
}

// wait returns once every request arrived, or an error when none arrived
// for subsStall.
func (s *sinkSet) wait() error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, since := s.count.Load(), time.Now()
	for {
		select {
		case <-s.done:
			return nil
		case now := <-t.C:
			if got := s.count.Load(); got != last {
				last, since = got, now
			} else if now.Sub(since) >= subsStall {
				return fmt.Errorf("%d of %d deliveries arrived, none for %s", got, s.n, subsStall)
			}
		}
	}
}

// manySubs runs a bridge with n subscriptions to topic order.created.
// Without tenth, subscription i's filter is data.tenant == "t<i>" and
// the events cycle through the tenants, so each matches one; the figure
// is events/s. With tenth, it is data.group == "g<i%10>" and the events
// cycle through the groups (as many as there are subscriptions, up to
// ten), so each matches a tenth of them (all of one); the figure is
// deliveries/s. The URLs spread over 100 endpoints (n when fewer), each
// group's over all of them. Without tenth every run sends the same number
// of events whatever n (matching is indexed); with tenth, events are fewer
// as each makes more deliveries: about as many deliveries per run at any
// n.
func manySubs(n int, tenth bool) func(context.Context, *env, int) ([]float64, error) {
	return func(ctx context.Context, e *env, size int) ([]float64, error) {
		base := min(e.n, 50000)
		payloads, matching := n, 1
		events := base // matching is indexed: an event costs about the same whatever n
		if tenth {
			payloads = min(n, 10)
			matching = n / payloads
			events = max(1, base/matching)
		}
		sinks := newSinkSet(min(n, subsEndpoints), events*matching)
		defer sinks.close()
		subs := make([]webhook.Subscription, n)
		for i := range subs {
			filter := fmt.Sprintf(`data.tenant == "t%d"`, i)
			if tenth {
				filter = fmt.Sprintf(`data.group == "g%d"`, i%10)
			}
			// With n ≥ 100, i%100 would send each group to ten endpoints.
			ep := i
			if n >= subsEndpoints {
				ep = (i/10 + 10*(i%10)) % subsEndpoints
			}
			subs[i] = webhook.Subscription{ID: "s" + strconv.Itoa(i), Topic: "order.created", Filter: filter,
				URL: sinks.srvs[ep].URL, Secrets: webhook.Secrets{barehook.Secret}}
		}
		broker := memory.NewBroker(memory.Options{Buffer: 4096})
		defer broker.Close()
		sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "bridge", Concurrency: bridgeConcurrency})
		if err != nil {
			return nil, err
		}
		bridge, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: broker, PerEndpoint: subsPerEndpoint, Subscriptions: subs})
		if err != nil {
			return nil, err
		}
		stopped := make(chan struct{})
		go func() { defer close(stopped); bridge.Run(ctx) }()
		defer func() { _ = bridge.Close(); <-stopped }()
		bodies := make([][]byte, payloads)
		for k := range bodies {
			bodies[k] = subsPayload(k, size)
		}
		ev := pubsub.NewEvent(ctx, "order.created", nil)
		start := time.Now()
		for i := range events {
			ev.ID = pubsub.ID(strconv.Itoa(i))
			ev.Payload = bodies[i%len(bodies)]
			if err := broker.Emit(ctx, ev); err != nil {
				return nil, err
			}
		}
		if err := sinks.wait(); err != nil {
			return nil, err
		}
		took := time.Since(start)
		if tenth {
			return []float64{rate(events*matching, took)}, nil
		}
		return []float64{rate(events, took)}, nil
	}
}

// bareClientSpread posts to 100 endpoints round-robin from 64 goroutines,
// with a transport set as the bridge's, for the rows a tenth match.
func bareClientSpread(ctx context.Context, e *env, size int) ([]float64, error) {
	n := min(e.n, 50000)
	sinks := newSinkSet(subsEndpoints, n)
	defer sinks.close()
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost, t.MaxIdleConns = subsPerEndpoint, 0
	defer t.CloseIdleConnections()
	client := &http.Client{Transport: t}
	p := subsPayload(0, size)
	start := time.Now()
	err := parallel(n, bridgeConcurrency, func(i int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, sinks.srvs[i%subsEndpoints].URL, bytes.NewReader(p))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	})
	if err != nil {
		return nil, err
	}
	if err := sinks.wait(); err != nil {
		return nil, err
	}
	return []float64{rate(n, time.Since(start))}, nil
}
