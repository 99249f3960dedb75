package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// demoReceiver is the receiving end of the demo: it checks each
// delivery's Standard Webhooks signature and logs what arrived.
func demoReceiver(secret string, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id, ts := r.Header.Get("Webhook-Id"), r.Header.Get("Webhook-Timestamp")
		verified := "unsigned"
		if secret != "" {
			sec, _ := strconv.ParseInt(ts, 10, 64)
			if !webhook.Verify(secret, id, sec, body, r.Header.Get("Webhook-Signature")) {
				log.Warn("demo receiver: signature does NOT verify", "webhook_id", id)
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
			verified = "signature verified"
		}
		log.Info("demo receiver: got a delivery", "check", verified, "webhook_id", id, "type", r.Header.Get("Ce-Type"),
			"attempt", r.Header.Get(webhook.HeaderAttempt), "body", string(body))
		w.WriteHeader(http.StatusNoContent)
	}
}

// demoEmitter emits a sample event every interval until ctx is done.
func demoEmitter(ctx context.Context, pub pubsub.Publisher, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 1; ; n++ {
		payload := fmt.Appendf(nil, `{"body":{"n":%d,"kind":"demo"},"headers":{"source":"webhook-bridge demo"}}`, n)
		if err := pub.Emit(ctx, pubsub.NewEvent(ctx, "demo.ping", payload)); err != nil && ctx.Err() == nil {
			log.Error("demo: emitting a sample event", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
