package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// runAttemptLogSuite checks what every AttemptLog promises; mk returns an
// empty log with room for at least 1,000 attempts kept for an hour.
func runAttemptLogSuite(t *testing.T, mk func(t *testing.T) webhook.AttemptLog) {
	t.Run("WalksNewestFirstEachOnceAtEveryLimit", func(t *testing.T) {
		l := mk(t)
		want := recordSpread(t, l, 60, 0)
		for _, q := range []webhook.AttemptQuery{
			{}, {SubscriptionID: "s1"}, {EventID: "e7"}, {Outcome: webhook.Failed},
			{SubscriptionID: "s2", Outcome: webhook.Delivered}, {Status: 503}, {SubscriptionID: "s0", Status: 200},
		} {
			exp := filterAttempts(want, q)
			for _, limit := range []int{1, 2, 3, 7, 100} {
				q.Limit = limit
				got := walkAttempts(t, l, q, nil)
				if !sameAttempts(got, exp) {
					t.Fatalf("query %+v: walked %s, want %s", q, attemptKeys(got), attemptKeys(exp))
				}
			}
		}
	})
	t.Run("AttemptsRecordedDuringAWalkWaitForTheNext", func(t *testing.T) {
		l := mk(t)
		want := recordSpread(t, l, 30, 0)
		n := 0
		got := walkAttempts(t, l, webhook.AttemptQuery{Limit: 4}, func() {
			n++
			recordSpread(t, l, 3, 1000*n)
		})
		if !sameAttempts(got, filterAttempts(want, webhook.AttemptQuery{})) {
			t.Fatalf("walk returned %s, want the %d recorded before it", attemptKeys(got), len(want))
		}
	})
	t.Run("KeepsWhatWasSent", func(t *testing.T) {
		l := mk(t)
		a := webhook.Attempt{
			EventID: "evt:1{x}ü", EventName: "order.created", SubscriptionID: "sub:{a}", Attempt: 2,
			At: time.Now().UTC().Truncate(time.Millisecond), Duration: 1500 * time.Microsecond, Outcome: webhook.Failed,
			URL: "https://example.test/hook", RequestHeaders: http.Header{"Webhook-Id": {"msg_1"}},
			Status: 500, ResponseHeaders: http.Header{"Content-Type": {"text/plain"}},
			ResponseBody: "<script>alert(1)</script>", ResponseBodyTruncated: true, Error: "HTTP 500",
		}
		ev := pubsub.Event{ID: a.EventID, Name: a.EventName, Payload: []byte(`{"n":1}`),
			Meta: pubsub.Meta{CreatedAtUTC: a.At, CorrelationID: "c1"}}
		if err := l.Record(context.Background(), webhook.AttemptBatch{Events: []pubsub.Event{ev}, Attempts: []webhook.Attempt{a}}); err != nil {
			t.Fatal(err)
		}
		page, err := l.Query(context.Background(), webhook.AttemptQuery{EventID: a.EventID})
		if err != nil || len(page.Attempts) != 1 {
			t.Fatalf("query by event: %v, %d attempts", err, len(page.Attempts))
		}
		got := page.Attempts[0]
		if got.ID == "" {
			t.Error("the log gave the attempt no ID")
		}
		got.ID = ""
		got.At = got.At.UTC()
		if fmt.Sprint(got) != fmt.Sprint(a) {
			t.Errorf("got  %+v\nwant %+v", got, a)
		}
		back, err := l.Event(context.Background(), ev.ID)
		if err != nil || back.ID != ev.ID || string(back.Payload) != string(ev.Payload) || back.Meta.CorrelationID != "c1" {
			t.Errorf("Event = %+v, %v; want %+v", back, err, ev)
		}
		if _, err := l.Event(context.Background(), "never"); !errors.Is(err, webhook.ErrNotFound) {
			t.Errorf("Event of an unknown id: %v, want ErrNotFound", err)
		}
		if n, err := l.Len(context.Background()); err != nil || n != 1 {
			t.Errorf("Len = %d, %v; want 1", n, err)
		}
	})
	t.Run("RefusesBadQueries", func(t *testing.T) {
		l := mk(t)
		now := time.Now()
		for _, q := range []webhook.AttemptQuery{
			{Cursor: "nope"}, {Cursor: "1-2-3"}, {Outcome: "lost"}, {Status: 42},
			{Since: now, Until: now.Add(-time.Second)},
		} {
			if _, err := l.Query(context.Background(), q); err == nil {
				t.Errorf("query %+v: no error", q)
			}
		}
		if _, err := l.Query(context.Background(), webhook.AttemptQuery{Cursor: "x"}); !errors.Is(err, webhook.ErrInvalidAttemptCursor) {
			t.Errorf("a bad cursor: %v, want ErrInvalidAttemptCursor", err)
		}
	})
	t.Run("TimeRange", func(t *testing.T) {
		l := mk(t)
		before := time.Now().Add(-time.Second)
		want := recordSpread(t, l, 10, 0)
		after := time.Now().Add(time.Second)
		if got := walkAttempts(t, l, webhook.AttemptQuery{Since: before, Until: after, Limit: 3}, nil); !sameAttempts(got, filterAttempts(want, webhook.AttemptQuery{})) {
			t.Errorf("the window around them returned %s", attemptKeys(got))
		}
		if got := walkAttempts(t, l, webhook.AttemptQuery{Since: after}, nil); len(got) != 0 {
			t.Errorf("a window after them returned %s", attemptKeys(got))
		}
		if got := walkAttempts(t, l, webhook.AttemptQuery{Until: before}, nil); len(got) != 0 {
			t.Errorf("a window before them returned %s", attemptKeys(got))
		}
	})
}

// recordSpread records n attempts, one per batch of three at most, over
// subscriptions s0..s2 and events e0..e9 with outcomes and statuses
// varying; tag makes their event names unique to this call. It returns
// them oldest first, as recorded.
func recordSpread(t *testing.T, l webhook.AttemptLog, n, tag int) []webhook.Attempt {
	t.Helper()
	outcomes := []webhook.Outcome{webhook.Delivered, webhook.Failed, webhook.Delivered, webhook.TimedOut, webhook.DeadLettered}
	statuses := []int{200, 503, 200, 0, 503}
	var all []webhook.Attempt
	for i := 0; i < n; {
		var batch webhook.AttemptBatch
		for ; i < n && len(batch.Attempts) < 3; i++ {
			k := i % len(outcomes)
			batch.Attempts = append(batch.Attempts, webhook.Attempt{
				EventID: pubsub.ID(fmt.Sprintf("e%d", i%10)), EventName: pubsub.Name(fmt.Sprintf("n%d-%d", tag, i)),
				SubscriptionID: fmt.Sprintf("s%d", i%3), Attempt: 1, At: time.Now(),
				Outcome: outcomes[k], Status: statuses[k],
			})
		}
		if err := l.Record(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		all = append(all, batch.Attempts...)
	}
	return all
}

// filterAttempts returns what q selects of recorded (oldest first),
// newest first, ignoring the time range.
func filterAttempts(recorded []webhook.Attempt, q webhook.AttemptQuery) []webhook.Attempt {
	var out []webhook.Attempt
	for _, a := range slices.Backward(recorded) {
		if (q.SubscriptionID == "" || a.SubscriptionID == q.SubscriptionID) && (q.EventID == "" || a.EventID == q.EventID) &&
			(q.Outcome == "" || a.Outcome == q.Outcome) && (q.Status == 0 || a.Status == q.Status) {
			out = append(out, a)
		}
	}
	return out
}

// walkAttempts follows q's pages to the end, calling between (when not
// nil) after each page; it fails t on a page over the limit, an ID out of
// order, or a walk that does not end.
func walkAttempts(t *testing.T, l webhook.AttemptLog, q webhook.AttemptQuery, between func()) []webhook.Attempt {
	t.Helper()
	var all []webhook.Attempt
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatalf("query %+v: the walk does not end", q)
		}
		page, err := l.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("query %+v: %v", q, err)
		}
		if q.Limit > 0 && len(page.Attempts) > q.Limit {
			t.Fatalf("query %+v: a page of %d", q, len(page.Attempts))
		}
		all = append(all, page.Attempts...)
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
		if between != nil {
			between()
		}
	}
	return all
}

// sameAttempts compares by event, name and subscription, in order.
func sameAttempts(a, b []webhook.Attempt) bool {
	return slices.Equal(attemptKeys(a), attemptKeys(b))
}

func attemptKeys(as []webhook.Attempt) []string {
	keys := make([]string, len(as))
	for i, a := range as {
		keys[i] = string(a.EventName) + "/" + a.SubscriptionID
	}
	return keys
}

func TestMemoryAttemptLog(t *testing.T) {
	runAttemptLogSuite(t, func(t *testing.T) webhook.AttemptLog {
		l, err := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{MaxLen: 1000, MaxAge: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}
