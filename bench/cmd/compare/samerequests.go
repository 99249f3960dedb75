package main

import (
	"context"
	"time"

	"github.com/switchyard-go/switchyard/internal/barehook"
)

// --- a bare client sending the bridge's requests -----------------------------

// bareSameRequests is the bare client of "Webhook deliveries to a local
// sink" sending the bridge's requests (internal/barehook).
func bareSameRequests(ctx context.Context, e *env, size int) ([]float64, error) {
	n := min(e.n, 50000)
	srv, done := sink(n, nil)
	defer srv.Close()
	p := payload(size)
	c, err := barehook.New(ctx, "bench", p, bridgeConcurrency)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	start := time.Now()
	if err := parallel(n, bridgeConcurrency, func(i int) error { return c.Post(ctx, srv.URL, i, p) }); err != nil {
		return nil, err
	}
	<-done
	return []float64{rate(n, time.Since(start))}, nil
}

// bareSameRequestsSpread is bareClientSpread sending the bridge's
// requests.
func bareSameRequestsSpread(ctx context.Context, e *env, size int) ([]float64, error) {
	n := min(e.n, 50000)
	sinks := newSinkSet(subsEndpoints, n)
	defer sinks.close()
	p := subsPayload(0, size)
	c, err := barehook.New(ctx, "order.created", p, subsPerEndpoint)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	start := time.Now()
	err = parallel(n, bridgeConcurrency, func(i int) error {
		return c.Post(ctx, sinks.srvs[i%subsEndpoints].URL, i, p)
	})
	if err != nil {
		return nil, err
	}
	if err := sinks.wait(); err != nil {
		return nil, err
	}
	return []float64{rate(n, time.Since(start))}, nil
}
