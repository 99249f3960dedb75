package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// demoReceiver is the receiving end of the demo: it checks each
// delivery's Standard Webhooks signature and logs what arrived.
func (s *server) demoReceiver(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id, ts := r.Header.Get("Webhook-Id"), r.Header.Get("Webhook-Timestamp")
	verified := "unsigned"
	if s.cfg.Demo.Secret != "" {
		sec, _ := strconv.ParseInt(ts, 10, 64)
		if !webhook.Verify(s.cfg.Demo.Secret, id, sec, body, r.Header.Get("Webhook-Signature")) {
			s.log.Warn("demo receiver: signature does NOT verify", "webhook_id", id)
			writeError(w, http.StatusUnauthorized, "bad signature")
			return
		}
		verified = "signature verified"
	}
	s.log.Info("demo receiver: got a delivery", "check", verified, "webhook_id", id, "type", r.Header.Get("Ce-Type"),
		"attempt", r.Header.Get(webhook.HeaderAttempt), "body", string(body))
	w.WriteHeader(http.StatusNoContent)
}

// demoEmitter emits a sample event every interval until ctx is done.
func (s *server) demoEmitter(ctx context.Context) {
	t := time.NewTicker(time.Duration(s.cfg.Demo.Interval))
	defer t.Stop()
	for n := 1; ; n++ {
		payload := fmt.Appendf(nil, `{"body":{"n":%d,"kind":"demo"},"headers":{"source":"webhook-bridge demo"}}`, n)
		if err := s.be.pub.Emit(ctx, pubsub.NewEvent(ctx, "demo.ping", payload)); err != nil && ctx.Err() == nil {
			s.log.Error("demo: emitting a sample event", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
