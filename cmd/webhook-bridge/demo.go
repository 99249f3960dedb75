package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// demoReceiver is the receiving end of the demo: it checks each
// delivery's Standard Webhooks signature and logs what arrived.
func demoReceiver(secret string, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			status := http.StatusBadRequest
			if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
				status = http.StatusRequestEntityTooLarge
			}
			demoError(w, status, "reading the body: "+err.Error())
			return
		}
		id, ts := r.Header.Get("Webhook-Id"), r.Header.Get("Webhook-Timestamp")
		verified := "unsigned"
		if secret != "" {
			sec, _ := strconv.ParseInt(ts, 10, 64)
			if !webhook.Verify(secret, id, sec, body, r.Header.Get("Webhook-Signature")) {
				log.Warn("demo receiver: signature does NOT verify", "webhook_id", id)
				demoError(w, http.StatusUnauthorized, "bad signature: the webhook-signature header does not verify with demo.secret")
				return
			}
			verified = "signature verified"
		}
		log.Info("demo receiver: got a delivery", "check", verified, "webhook_id", id, "type", r.Header.Get("Ce-Type"),
			"attempt", r.Header.Get(webhook.HeaderAttempt), "body", string(body))
		w.WriteHeader(http.StatusNoContent)
	}
}

// demoError answers the API's JSON error shape, as every route of the
// bridge does.
func demoError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(webhookhttp.Problem{Error: msg, Status: status})
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
