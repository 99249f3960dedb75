package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// shutdownWork is what a forced stop abandons: serve registers it once
// the bridge exists (noteShutdownWork).
type shutdownWork struct {
	mu       sync.Mutex
	inFlight func() int
	memory   bool
}

type shutdownWorkKey struct{}

// notifyShutdown returns a context that is done at the first SIGINT or
// SIGTERM, which starts the graceful shutdown. A second one, while the
// bridge shuts down, ends the process at once through exit(1), after a
// line saying how many deliveries in flight it abandons and what becomes
// of them. stop undoes both.
func notifyShutdown(log *slog.Logger, exit func(int)) (ctx context.Context, stop func()) {
	work := &shutdownWork{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), shutdownWorkKey{}, work))
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-ch:
			n, memory := work.snapshot()
			log.Error("webhook-bridge: second "+signalName(sig)+" during the shutdown: stopping at once; "+abandonedWhat(memory), "in_flight", n)
			exit(1)
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			cancel()
		})
	}
}

// noteShutdownWork tells a forced stop how to count the deliveries in
// flight and which backend holds their events. It does nothing on a
// context that notifyShutdown did not make.
func noteShutdownWork(ctx context.Context, inFlight func() int, memory bool) {
	w, ok := ctx.Value(shutdownWorkKey{}).(*shutdownWork)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inFlight, w.memory = inFlight, memory
}

func (w *shutdownWork) snapshot() (inFlight int, memory bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight == nil {
		return 0, w.memory // no bridge yet, so nothing in flight
	}
	return w.inFlight(), w.memory
}

// abandonedWhat says what becomes of the events of abandoned deliveries.
func abandonedWhat(memory bool) string {
	if memory {
		return "deliveries in flight abandoned: on the in-memory backend their events are lost"
	}
	return "deliveries in flight abandoned: their events were not acknowledged and will be redelivered"
}

func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}
