// Command receiver is a webhook receiver to start from: it checks each
// delivery's Standard Webhooks signature and timestamp, answers 204, and
// prints what it got. Point a subscription at it:
//
//	WEBHOOK_SECRET=whsec_... go run ./examples/receiver   # listens on 127.0.0.1:8081
//
//	subscriptions:
//	  - id: my-service
//	    topic: "*"
//	    url: http://127.0.0.1:8081/webhook
//	    secret: whsec_...
//
// For a subscription that signs with an ed25519 key (secret: whsk_...,
// signatures "v1a"), give the receiver its public key instead:
// WEBHOOK_SECRET=whpk_... (webhook.Verify takes either).
package main

import (
	"flag"
	"io"
	"log"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/switchyard-go/switchyard/webhook"
)

// tolerance is how old (or how far in the future) a delivery's timestamp
// may be; older ones are refused as possible replays.
const tolerance = 5 * time.Minute

func main() {
	addr := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	flag.Parse()
	secret := os.Getenv("WEBHOOK_SECRET")
	if secret == "" {
		log.Print("WEBHOOK_SECRET is not set: deliveries are accepted without checking signatures")
	}

	http.HandleFunc("POST /webhook", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		if secret != "" {
			sec, err := strconv.ParseInt(ts, 10, 64)
			if err != nil || math.Abs(time.Since(time.Unix(sec, 0)).Seconds()) > tolerance.Seconds() {
				http.Error(w, "timestamp missing or too old", http.StatusBadRequest)
				return
			}
			if !webhook.Verify(secret, id, sec, body, r.Header.Get("webhook-signature")) {
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
		}
		// Deliveries can repeat (at-least-once): make the work idempotent
		// by webhook-id before acting on it.
		// ce-* headers and x-correlation-id are percent-encoded (CloudEvents
		// HTTP binding): "ce.discount 100%" arrives as "ce.discount%20100%25".
		log.Printf("delivery %s type=%q attempt=%s correlation=%q body=%s",
			id, decoded(r.Header.Get("ce-type")), r.Header.Get("webhook-attempt"), decoded(r.Header.Get("x-correlation-id")), body)
		w.WriteHeader(http.StatusNoContent)
	})
	log.Printf("receiver listening on http://%s/webhook", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}

// decoded undoes the percent-encoding of a ce-* header; a value that does
// not decode is shown as it came.
func decoded(v string) string {
	if d, err := url.PathUnescape(v); err == nil {
		return d
	}
	return v
}
