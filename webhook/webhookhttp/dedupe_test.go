package webhookhttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

func accepted(t *testing.T, body string) webhookhttp.Accepted {
	t.Helper()
	var a webhookhttp.Accepted
	if err := json.Unmarshal([]byte(body), &a); err != nil || a.IDs == nil || a.Duplicates == nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	return a
}

func dedupers(t *testing.T) map[string]func() webhookhttp.Deduper {
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = client.Close() })
	prefix := fmt.Sprintf("{dedupe-%d}:webhook:ingest:", seq.Add(1))
	mem := webhookhttp.NewMemoryDedupe()
	return map[string]func() webhookhttp.Deduper{
		"memory": func() webhookhttp.Deduper { return mem },
		"redis":  func() webhookhttp.Deduper { return webhookhttp.RedisDedupe{Client: client, Prefix: prefix} },
	}
}

// The same id posted twice within the window is emitted once, and the
// second answer says so.
func TestIngestIsIdempotentOnIDs(t *testing.T) {
	for name, dedupe := range dedupers(t) {
		t.Run(name, func(t *testing.T) {
			ts, rec := api(t, webhookhttp.Config{Dedupe: dedupe()})
			const ev = `{"name": "order.created", "payload": {"n": 1}, "id": "order-1"}`
			status, body, _ := call(t, ts, http.MethodPost, "/v1/events", "", ev)
			if a := accepted(t, body); status != http.StatusAccepted || len(a.Duplicates) != 0 {
				t.Fatalf("first post: %d %s", status, body)
			}
			status, body, _ = call(t, ts, http.MethodPost, "/v1/events", "", ev)
			if a := accepted(t, body); status != http.StatusOK || !slices.Equal(a.Duplicates, []pubsub.ID{"order-1"}) || !slices.Equal(a.IDs, []pubsub.ID{"order-1"}) {
				t.Errorf("second post: %d %s, want 200 naming order-1 a duplicate", status, body)
			}
			// In a batch: new ones emitted, known and repeated ones not;
			// events without an id are never duplicates.
			status, body, _ = call(t, ts, http.MethodPost, "/v1/events", "",
				`[{"name": "a", "payload": 1, "id": "order-1"}, {"name": "a", "payload": 2, "id": "order-2"}, {"name": "a", "payload": 3, "id": "order-2"}, {"name": "a", "payload": 4}, {"name": "a", "payload": 4}]`)
			if a := accepted(t, body); status != http.StatusAccepted || !slices.Equal(a.Duplicates, []pubsub.ID{"order-1", "order-2"}) || len(a.IDs) != 5 {
				t.Errorf("batch: %d %s", status, body)
			}
			var payloads []string
			for _, ev := range rec.emitted() {
				payloads = append(payloads, string(ev.Payload))
			}
			if !slices.Equal(payloads, []string{`{"n": 1}`, "2", "4", "4"}) {
				t.Errorf("emitted payloads %q", payloads)
			}
		})
	}
}

// An id whose emit failed is not remembered: posting again emits it.
func TestIngestForgetsIDsItCouldNotEmit(t *testing.T) {
	for name, dedupe := range dedupers(t) {
		t.Run(name, func(t *testing.T) {
			ts, rec := api(t, webhookhttp.Config{Dedupe: dedupe()})
			rec.fail = 1
			const ev = `{"name": "a", "payload": 1, "id": "retry-me"}`
			if status, body, ct := call(t, ts, http.MethodPost, "/v1/events", "", ev); status != http.StatusServiceUnavailable {
				t.Fatalf("failing emit: %d %s", status, body)
			} else {
				problem(t, status, body, ct)
			}
			status, body, _ := call(t, ts, http.MethodPost, "/v1/events", "", ev)
			if a := accepted(t, body); status != http.StatusAccepted || len(a.Duplicates) != 0 || len(rec.emitted()) != 1 {
				t.Errorf("post after the failure: %d %s, %d emitted", status, body, len(rec.emitted()))
			}
		})
	}
}

// Replicas sharing Redis emit a posted id once, however many posts race.
func TestIngestIsIdempotentAcrossReplicas(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = client.Close() })
	prefix := fmt.Sprintf("{replicas-%d}:webhook:ingest:", seq.Add(1))
	type replica struct {
		ts  *httptest.Server
		rec *recorder
	}
	var replicas []replica
	for range 3 {
		ts, rec := api(t, webhookhttp.Config{Dedupe: webhookhttp.RedisDedupe{Client: client, Prefix: prefix}})
		replicas = append(replicas, replica{ts, rec})
	}
	const ids, posts = 50, 6
	var wg sync.WaitGroup
	statuses := make(chan int, ids*posts)
	for i := range ids {
		for p := range posts {
			wg.Go(func() {
				status, _, _ := call(t, replicas[p%len(replicas)].ts, http.MethodPost, "/v1/events", "", fmt.Sprintf(`{"name": "a", "payload": %d, "id": "race-%d"}`, i, i))
				statuses <- status
			})
		}
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	emitted := map[pubsub.ID]int{}
	for _, r := range replicas {
		for _, ev := range r.rec.emitted() {
			emitted[ev.ID]++
		}
	}
	if len(emitted) != ids {
		t.Errorf("%d ids emitted, want %d", len(emitted), ids)
	}
	for id, n := range emitted {
		if n != 1 {
			t.Errorf("%s emitted %d times", id, n)
		}
	}
	if counts[http.StatusAccepted] != ids || counts[http.StatusAccepted]+counts[http.StatusOK]+counts[http.StatusConflict] != ids*posts {
		t.Errorf("answers %v: want %d accepted, the rest 200 (duplicate) or 409 (being accepted)", counts, ids)
	}
}

// lostReplyDedupe takes the claims it is asked for, then fails as if the
// reply had been lost (a timeout, a dropped connection, the client gone).
type lostReplyDedupe struct {
	webhookhttp.Deduper
	lost int // Claims still to fail
}

func (d *lostReplyDedupe) Claim(ctx context.Context, token string, ids []string) ([]webhookhttp.ClaimState, error) {
	states, err := d.Deduper.Claim(ctx, token, ids)
	if err == nil && d.lost > 0 {
		d.lost--
		return nil, errors.New("i/o timeout")
	}
	return states, err
}

// A request whose claims were taken though the store's answer was lost
// frees them: posting it again emits the events at once rather than be
// told for 30 s that another request is emitting them.
func TestIngestFreesClaimsWhoseAnswerWasLost(t *testing.T) {
	for name, dedupe := range dedupers(t) {
		t.Run(name, func(t *testing.T) {
			ts, rec := api(t, webhookhttp.Config{Dedupe: &lostReplyDedupe{Deduper: dedupe(), lost: 1}})
			const ev = `[{"name": "a", "payload": 1, "id": "lost-1"}, {"name": "a", "payload": 2, "id": "lost-2"}]`
			if status, body, _ := call(t, ts, http.MethodPost, "/v1/events", "", ev); status != http.StatusServiceUnavailable {
				t.Fatalf("post whose claim answer was lost: %d %s, want 503", status, body)
			}
			status, body, _ := call(t, ts, http.MethodPost, "/v1/events", "", ev)
			if a := accepted(t, body); status != http.StatusAccepted || len(a.Duplicates) != 0 {
				t.Errorf("posted again: %d %s, want 202 emitting both", status, body)
			}
			if n := len(rec.emitted()); n != 2 {
				t.Errorf("%d events emitted, want 2", n)
			}
		})
	}
}
