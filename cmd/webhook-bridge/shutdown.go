package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// stopping is whether the bridge has been told to stop: from then on
// it is not ready, whatever its backend says.
type stopping struct{ on atomic.Bool }

// errDraining is what GET /readyz says once SIGTERM came.
var errDraining = errors.New("shutting down")

// ready wraps the backend's readiness check (nil: always ready).
func (d *stopping) ready(backend func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		if d.on.Load() {
			return errDraining
		}
		if backend == nil {
			return nil
		}
		return backend(ctx)
	}
}

// delayShutdown marks the bridge not ready and lets it go on taking and
// delivering events for delay, so that load balancers stop sending it
// requests before it stops listening. A second signal during the delay
// stops the process at once, as during the shutdown.
func delayShutdown(log *slog.Logger, d *stopping, delay time.Duration) {
	d.on.Store(true)
	if delay <= 0 {
		return
	}
	log.Info("webhook-bridge: stopping after shutdown_delay: /readyz answers 503 meanwhile, events are still taken and delivered", "delay", delay)
	t := time.NewTimer(delay)
	defer t.Stop()
	<-t.C
}

// shutDown stops taking events and lets the deliveries in flight finish,
// within timeout. On Redis the bridge stops reading at once (what ingest
// still accepts waits in the stream for the next reader); in memory it
// reads until the HTTP requests in progress are done, since the events
// they accept are nowhere else, and then until the events they accepted
// are all read (queued, not nil, counts them). HTTP requests still in
// progress at the timeout (a client trickling its body, say) are cut;
// that abandons no delivery. Once the deliveries are done, closeBridge writes their
// attempts to the delivery log, within what is left of timeout. It
// returns an error only when deliveries were still in flight, or events
// still queued in memory, at the timeout.
func shutDown(log *slog.Logger, srv *http.Server, stopRun func(), bridgeDone <-chan struct{}, closeBridge func() error, inFlight func() int, queued func() int, timeout time.Duration) error {
	memory := queued != nil
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	httpDone := make(chan struct{})
	go func() { defer close(httpDone); _ = srv.Shutdown(ctx) }()
	if memory {
		select {
		case <-httpDone:
		case <-ctx.Done():
		}
		// The events accepted and not yet read are in this process only:
		// read them before stopping.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for queued() > 0 && ctx.Err() == nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
		if n := queued(); n > 0 {
			stopRun()
			log.Error("webhook-bridge: shutdown_timeout reached: stopping; events accepted and not yet delivered are lost on the in-memory backend", "queued", n, "in_flight", inFlight())
			return fmt.Errorf("events still queued at the shutdown timeout (%s)", timeout)
		}
	}
	stopRun()
	select {
	case <-bridgeDone:
	case <-ctx.Done():
		select {
		case <-bridgeDone: // done just as the timeout came: nothing abandoned
		default:
			n := inFlight()
			if n == 0 && !memory {
				// Every delivery is done: what is left is Redis, which has
				// not answered (the last acknowledgements, say).
				log.Error("webhook-bridge: shutdown_timeout reached: stopping; every delivery is done, but Redis has not answered in time: events whose acknowledgement it did not take stay pending and will be delivered again", "in_flight", n)
				return fmt.Errorf("redis had not answered at the shutdown timeout (%s)", timeout)
			}
			log.Error("webhook-bridge: shutdown_timeout reached: stopping; "+abandonedWhat(memory), "in_flight", n)
			return fmt.Errorf("deliveries still in flight at the shutdown timeout (%s)", timeout)
		}
	}
	closed := make(chan struct{})
	go func() { defer close(closed); _ = closeBridge() }()
	select {
	case <-closed:
	case <-ctx.Done():
		log.Warn("webhook-bridge: shutdown_timeout reached while the last attempts were written to the delivery log: some may be missing from it (their deliveries are done)")
	}
	select {
	case <-httpDone:
	case <-ctx.Done():
		_ = srv.Close()
		log.Warn("webhook-bridge: HTTP requests still in progress at shutdown_timeout were cut (no delivery was in flight)")
	}
	log.Info("webhook-bridge: stopped")
	return nil
}
