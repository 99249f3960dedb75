package webhookui_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// BenchmarkPages renders the console's pages over a delivery log of
// benchLogSize attempts (SWITCHYARD_CONSOLE_BENCH_LOG overrides it: the
// committed size keeps scripts/test's one pass short), through the whole
// stack: session check, the internal API call, the log's query, the
// template.
func BenchmarkPages(b *testing.B) {
	size := 100_000
	if s := os.Getenv("SWITCHYARD_CONSOLE_BENCH_LOG"); s != "" {
		size, _ = strconv.Atoi(s)
	}
	e := newEnv(b)
	e.subscribe(b, "s1", "")
	var batch webhook.AttemptBatch
	for i := range size {
		id := pubsub.ID(fmt.Sprintf("ev%d", i))
		a := webhook.Attempt{EventID: id, EventName: "order.created", SubscriptionID: "s1", Attempt: 1, At: time.Now(),
			Outcome: webhook.Delivered, Status: 200, ResponseBody: "ok"}
		if i%10 == 0 {
			batch.Events = append(batch.Events, pubsub.Event{ID: id, Name: "order.created", Payload: []byte(`{"n":1}`)})
			a.Outcome, a.Status = webhook.Failed, 500
		}
		batch.Attempts = append(batch.Attempts, a)
		if len(batch.Attempts) == 10_000 {
			if err := e.log.Record(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = webhook.AttemptBatch{}
		}
	}
	if len(batch.Attempts) > 0 {
		_ = e.log.Record(context.Background(), batch)
	}
	br := e.browser(b)
	br.login()
	last := fmt.Sprintf("ev%d", size-size%10-10)
	for _, path := range []string{"/ui/log", "/ui/log?outcome=failed", "/ui/log?event_id=" + last, "/ui/events/" + last, "/ui/", "/ui/subscriptions"} {
		b.Run(path, func(b *testing.B) {
			for b.Loop() {
				if a := br.get(path); a.status != http.StatusOK {
					b.Fatalf("GET %s: %d", path, a.status)
				}
			}
		})
	}
}
