package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// adv6Key names one attempt that reached a receiver.
type adv6Key struct {
	event   pubsub.ID
	sub     string
	attempt int
}

// TestAdv6LogHoldsExactlyTheAttemptsTheReceiversSaw delivers N events to
// receivers that succeed, fail once, hang once, only fail, answer 410, and
// to a disabled subscription, with dry runs among them; once every
// delivery settled and the bridge closed, the log holds each attempt a
// receiver saw exactly once, with its number, status and outcome, and the
// skips and dry runs, and nothing else.
func TestAdv6LogHoldsExactlyTheAttemptsTheReceiversSaw(t *testing.T) {
	const n, dry = 30, 5
	attemptOf := func(r *http.Request) int { a, _ := strconv.Atoi(r.Header.Get(webhook.HeaderAttempt)); return a }
	ok := newSink(t, nil)
	flaky := newSink(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		if attemptOf(r) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	hang := newSink(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		if attemptOf(r) == 1 {
			<-r.Context().Done()
		}
	})
	dead := newSink(t, httpStatus(http.StatusInternalServerError))
	gone := newSink(t, httpStatus(http.StatusGone))
	log, err := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	subs := []webhook.Subscription{
		{ID: "ok", Topic: "t", URL: ok.URL},
		{ID: "flaky", Topic: "t", URL: flaky.URL},
		{ID: "hang", Topic: "t", URL: hang.URL, Timeout: webhook.Duration(100 * time.Millisecond)},
		{ID: "dead", Topic: "t", URL: dead.URL, MaxAttempts: 3},
		{ID: "gone", Topic: "t", URL: gone.URL},
		{ID: "off", Topic: "t", URL: ok.URL, Disabled: true},
	}
	h := newHarness(t, webhook.Config{AttemptLog: log, Subscriptions: subs,
		Circuit: webhook.CircuitConfig{Failures: 1 << 30, Cooldown: time.Millisecond},
		Retry:   webhook.RetryPolicy{MaxAttempts: 5, Schedule: []time.Duration{5 * time.Millisecond}}})
	var evs []pubsub.Event
	for i := 0; i < n; i++ {
		evs = append(evs, pubsub.NewEvent(context.Background(), "t", []byte(fmt.Sprintf(`{"i":%d}`, i))))
	}
	for i := 0; i < dry; i++ {
		evs = append(evs, pubsub.NewEvent(pubsub.WithDryRun(context.Background(), true), "t", []byte(`{}`)))
	}
	h.emit(t, evs...)
	h.until(t, "every delivery settled", func() bool {
		for _, s := range []string{"ok", "flaky", "hang"} {
			if h.obs.count(s, webhook.Delivered) < n || h.obs.count(s, webhook.DryRun) < dry {
				return false
			}
		}
		return len(allDeadLetters(t, h.dead)) >= 2*n && h.obs.count("dead", webhook.DryRun) >= dry && h.obs.count("gone", webhook.DryRun) >= dry
	})
	_ = h.bridge.Close() // the recorder drains: nothing may be missing after this
	// The hanging receiver's handler returns, and its sink counts the
	// request, only once it notices the bridge gave up on it.
	hang.waitFor(t, 2*n)

	byMsgID := map[string]pubsub.ID{}
	for _, ev := range evs {
		byMsgID[webhook.MessageID(ev.ID)] = ev.ID
	}
	saw := map[adv6Key]int{}
	for _, s := range []sink{ok, flaky, hang, dead, gone} {
		for _, hit := range s.snapshot() {
			a, _ := strconv.Atoi(hit.Header.Get(webhook.HeaderAttempt))
			saw[adv6Key{byMsgID[hit.Header.Get("Webhook-Id")], hit.Header.Get(webhook.HeaderSubscription), a}]++
		}
	}
	all := walkAttempts(t, log, webhook.AttemptQuery{Limit: 7}, nil)
	logged := map[adv6Key]webhook.Attempt{}
	outcomes := map[string]map[webhook.Outcome]int{}
	for _, a := range all {
		if outcomes[a.SubscriptionID] == nil {
			outcomes[a.SubscriptionID] = map[webhook.Outcome]int{}
		}
		outcomes[a.SubscriptionID][a.Outcome]++
		if a.Attempt == 0 {
			if a.Status != 0 || a.Duration != 0 && a.Outcome != webhook.DeadLettered {
				t.Errorf("an attempt that sent nothing has a status or duration: %+v", a)
			}
			continue
		}
		k := adv6Key{a.EventID, a.SubscriptionID, a.Attempt}
		if _, dup := logged[k]; dup {
			t.Errorf("attempt %+v logged twice", k)
		}
		logged[k] = a
		if saw[k] != 1 {
			t.Errorf("logged attempt %+v (%s) reached its receiver %d times", k, a.Outcome, saw[k])
		}
	}
	for k, times := range saw {
		if _, ok := logged[k]; !ok || times != 1 {
			t.Errorf("attempt %+v reached its receiver %d times, logged: %v", k, times, ok)
		}
	}
	want := map[string]map[webhook.Outcome]int{
		"ok":    {webhook.Delivered: n, webhook.DryRun: dry},
		"flaky": {webhook.Failed: n, webhook.Delivered: n, webhook.DryRun: dry},
		"hang":  {webhook.TimedOut: n, webhook.Delivered: n, webhook.DryRun: dry},
		"dead":  {webhook.Failed: 2 * n, webhook.DeadLettered: n, webhook.DryRun: dry},
		"gone":  {webhook.DeadLettered: n, webhook.DryRun: dry},
		"off":   {webhook.Skipped: n + dry},
	}
	for sub, w := range want {
		if fmt.Sprint(outcomes[sub]) != fmt.Sprint(w) {
			t.Errorf("subscription %s: logged outcomes %v, want %v", sub, outcomes[sub], w)
		}
	}
	if len(outcomes) != len(want) {
		t.Errorf("logged subscriptions %v", outcomes)
	}
	for k, a := range logged {
		wantStatus := map[string]int{"ok": 200, "flaky": 503, "hang": 0, "dead": 500, "gone": 410}[k.sub]
		if a.Outcome == webhook.Delivered {
			wantStatus = 200
		}
		if a.Status != wantStatus {
			t.Errorf("attempt %+v (%s): status %d, want %d", k, a.Outcome, a.Status, wantStatus)
		}
		if k.sub == "dead" && (a.Outcome == webhook.DeadLettered) != (k.attempt == 3) {
			t.Errorf("attempt %+v: outcome %s", k, a.Outcome)
		}
	}
	if l, _ := log.Len(context.Background()); int(l) != len(all) {
		t.Errorf("Len %d, walked %d", l, len(all))
	}
}

func httpStatus(code int) func(int, *http.Request, http.ResponseWriter) {
	return func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(code) }
}

// TestAdv6NoCredentialEverReachesTheLog: a token in the URL's user name,
// a password, a signing secret and a header a subscription sets appear
// nowhere in what the log holds, for delivered and failed attempts alike.
func TestAdv6NoCredentialEverReachesTheLog(t *testing.T) {
	const token, password, header = "tok3nSECRETuser", "pa55SECRETword", "hdrSECRETvalue"
	s := newSink(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n%2 == 1 {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	u, _ := url.Parse(s.URL)
	log, _ := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	h := newHarness(t, webhook.Config{AttemptLog: log, Subscriptions: []webhook.Subscription{
		{ID: "user-only", Topic: "t", URL: "http://" + token + "@" + u.Host + "/in", Secrets: webhook.Secrets{vectorSecret},
			Headers: map[string]string{"Authorization": "Bearer " + header, "x-api-key": header}},
		{ID: "user-pass", Topic: "t", URL: "http://someone:" + password + "@" + u.Host + "/in"},
	}})
	h.emit(t, pubsub.NewEvent(context.Background(), "t", []byte(`{}`)))
	h.until(t, "deliveries", func() bool {
		return h.obs.count("user-only", webhook.Delivered) == 1 && h.obs.count("user-pass", webhook.Delivered) == 1
	})
	_ = h.bridge.Close()
	all := walkAttempts(t, log, webhook.AttemptQuery{}, nil)
	if len(all) != 4 {
		t.Fatalf("logged %d attempts, want 4", len(all))
	}
	raw, _ := json.Marshal(all)
	secret := strings.TrimPrefix(string(vectorSecret), "whsec_")
	for _, cred := range []string{token, password, header, secret} {
		if strings.Contains(string(raw), cred) {
			t.Errorf("the log holds the credential %q: %s", cred, raw)
		}
	}
	for _, a := range all {
		if a.URL == "" || !strings.Contains(a.URL, u.Host+"/in") {
			t.Errorf("the logged URL %q does not say where the attempt went", a.URL)
		}
	}
}

// adv6Log is an AttemptLog whose Record the test controls.
type adv6Log struct {
	*webhook.MemoryAttemptLog
	record func(ctx context.Context, b webhook.AttemptBatch) error
	calls  atomic.Int64
	called chan struct{} // closed at the first call
	once   sync.Once
}

func newAdv6Log(t *testing.T, record func(ctx context.Context, b webhook.AttemptBatch) error) *adv6Log {
	m, err := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &adv6Log{MemoryAttemptLog: m, record: record, called: make(chan struct{})}
}

func (l *adv6Log) Record(ctx context.Context, b webhook.AttemptBatch) error {
	l.calls.Add(1)
	l.once.Do(func() { close(l.called) })
	return l.record(ctx, b)
}

// TestAdv6CloseIsBoundedWhenTheLogHangs: "On shutdown the attempts still
// queued are written within 5s": a log that hangs (until its ctx is done)
// holds Close no longer than that.
func TestAdv6CloseIsBoundedWhenTheLogHangs(t *testing.T) {
	log := newAdv6Log(t, func(ctx context.Context, _ webhook.AttemptBatch) error {
		<-ctx.Done()
		return ctx.Err()
	})
	s := newSink(t, nil)
	h := newHarness(t, webhook.Config{AttemptLog: log, Subscriptions: []webhook.Subscription{{ID: "s", Topic: "t", URL: s.URL}}})
	h.emit(t, pubsub.NewEvent(context.Background(), "t", []byte(`{}`)))
	s.waitFor(t, 1)
	select {
	case <-log.called:
	case <-time.After(wait):
		t.Fatal("the log was never written to")
	}
	start := time.Now()
	_ = h.bridge.Close()
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("Close took %s with a hanging delivery log, want within the 5s bound", took)
	}
	h.until(t, "the drop counted", func() bool {
		h.obs.mu.Lock()
		defer h.obs.mu.Unlock()
		return h.obs.logDropped == 1
	})
}

// TestAdv6AFailingLogLosesNothingUncounted: with a log that refuses every
// write and more attempts queued than one batch, every attempt is either
// written or dropped and counted (LogObserver) by the time Close returns:
// none vanishes unaccounted for, and no delivery waited on the log.
func TestAdv6AFailingLogLosesNothingUncounted(t *testing.T) {
	const n = 3000
	log := newAdv6Log(t, func(context.Context, webhook.AttemptBatch) error { return errors.New("redis down") })
	s := newSink(t, nil)
	lr := &logRecorder{}
	h := newHarness(t, webhook.Config{AttemptLog: log, Logger: slog.New(lr), Subscriptions: []webhook.Subscription{{ID: "s", Topic: "t", URL: s.URL}}})
	evs := make([]pubsub.Event, n)
	for i := range evs {
		evs[i] = pubsub.NewEvent(pubsub.WithDryRun(context.Background(), true), "t", []byte(`{}`))
	}
	start := time.Now()
	h.emit(t, evs...)
	h.until(t, "dry runs", func() bool { return h.obs.count("s", webhook.DryRun) == n })
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("%d dry runs took %s with a failing log", n, took)
	}
	_ = h.bridge.Close()
	h.obs.mu.Lock()
	logged, dropped := h.obs.logged, h.obs.logDropped
	h.obs.mu.Unlock()
	if logged != n || dropped != n {
		t.Errorf("after Close, %d attempts accounted for (%d dropped) of %d refused: the rest vanished uncounted", logged, dropped, n)
	}
	warned := 0
	for _, l := range lr.lines("delivery log") {
		if v, err := strconv.Atoi(l.attrs["attempts"]); err == nil {
			warned += v
		}
	}
	if warned != n {
		t.Errorf("warnings name %d dropped attempts, want %d", warned, n)
	}
}

// TestAdv6ASlowLogDoesNotHoldDeliveries: while the log takes no batch at
// all, deliveries go on (far fewer than 8,192 attempts wait); once it
// takes them again, every attempt is written.
func TestAdv6ASlowLogDoesNotHoldDeliveries(t *testing.T) {
	const n = 400
	release := make(chan struct{})
	var log *adv6Log
	log = newAdv6Log(t, func(ctx context.Context, b webhook.AttemptBatch) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return log.MemoryAttemptLog.Record(ctx, b)
	})
	s := newSink(t, nil)
	h := newHarness(t, webhook.Config{AttemptLog: log, Subscriptions: []webhook.Subscription{{ID: "s", Topic: "t", URL: s.URL}}})
	evs := make([]pubsub.Event, n)
	for i := range evs {
		evs[i] = pubsub.NewEvent(context.Background(), "t", []byte(`{}`))
	}
	h.emit(t, evs...)
	s.waitFor(t, n)
	h.until(t, "deliveries", func() bool { return h.obs.count("s", webhook.Delivered) == n })
	close(release)
	_ = h.bridge.Close()
	got := walkAttempts(t, log, webhook.AttemptQuery{SubscriptionID: "s", Limit: webhook.MaxAttemptPage}, nil)
	if len(got) != n {
		t.Errorf("logged %d attempts, want %d", len(got), n)
	}
	seen := map[pubsub.ID]bool{}
	for _, a := range got {
		if seen[a.EventID] || a.Outcome != webhook.Delivered || a.Attempt != 1 {
			t.Errorf("attempt %+v (seen before: %v)", a, seen[a.EventID])
		}
		seen[a.EventID] = true
	}
}

// sorted IDs of a walk, for the paging tests.
func adv6IDs(as []webhook.Attempt) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

// TestAdv6PagingAtEveryLimitWhileWritingAndTrimming walks a memory log
// at every limit from 1 to 40 while another goroutine records and
// retention drops: no attempt is returned twice, the walk ends, attempts
// come newest first, and every attempt recorded before the walk and still
// held after it is returned.
func TestAdv6PagingAtEveryLimitWhileWritingAndTrimming(t *testing.T) {
	for _, l := range adv6Logs(t) {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			rec := func(sub string, k int) {
				var b webhook.AttemptBatch
				for i := 0; i < k; i++ {
					b.Attempts = append(b.Attempts, webhook.Attempt{EventID: pubsub.ID(fmt.Sprintf("e%d", i%7)), SubscriptionID: sub,
						Outcome: webhook.Outcomes[i%len(webhook.Outcomes)], Status: 200 + i%3, At: time.Now(), Attempt: 1})
				}
				if err := l.log.Record(ctx, b); err != nil {
					t.Error(err)
				}
			}
			for i := 0; i < 6; i++ {
				rec([]string{"a", "b:{x}%", "ü\x00"}[i%3], 50)
			}
			for limit := 1; limit <= 40; limit++ {
				for _, q := range []webhook.AttemptQuery{{}, {SubscriptionID: "b:{x}%"}, {SubscriptionID: "ü\x00", Status: 201},
					{Outcome: webhook.Failed}, {EventID: "e3"}, {EventID: "e3", SubscriptionID: "a"}} {
					q.Limit = limit
					before := walkAttempts(t, l.log, q, nil)
					pages := 0
					got := walkAttempts(t, l.log, q, func() {
						if pages++; pages%2 == 0 {
							rec("a", 13)
						}
					})
					after := walkAttempts(t, l.log, q, nil)
					ids := adv6IDs(got)
					seen := map[string]bool{}
					for i, id := range ids {
						if seen[id] {
							t.Fatalf("limit %d query %+v: %s returned twice", limit, q, id)
						}
						seen[id] = true
						if i > 0 && adv6Less(ids[i-1], id) {
							t.Fatalf("limit %d query %+v: %s after %s: not newest first", limit, q, id, ids[i-1])
						}
						if !adv6Matches(q, got[i]) {
							t.Fatalf("limit %d query %+v: %+v does not match", limit, q, got[i])
						}
					}
					held := map[string]bool{}
					for _, a := range after {
						held[a.ID] = true
					}
					for _, a := range before {
						if held[a.ID] && !seen[a.ID] {
							t.Fatalf("limit %d query %+v: %s, recorded before the walk and still held, was skipped", limit, q, a.ID)
						}
					}
				}
			}
			if n, _ := l.log.Len(ctx); n > l.maxLen+100 {
				t.Errorf("Len %d, MaxLen %d", n, l.maxLen)
			}
		})
	}
}

func adv6Less(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	x, _ := strconv.ParseUint(am, 10, 64)
	y, _ := strconv.ParseUint(bm, 10, 64)
	if x != y {
		return x < y
	}
	x, _ = strconv.ParseUint(as, 10, 64)
	y, _ = strconv.ParseUint(bs, 10, 64)
	return x < y
}

type adv6NamedLog struct {
	name   string
	log    webhook.AttemptLog
	maxLen int64
}

// adv6Logs are a memory log and a Redis log, each keeping at most 400
// attempts.
func adv6Logs(t *testing.T) []adv6NamedLog {
	m, err := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{MaxLen: 400})
	if err != nil {
		t.Fatal(err)
	}
	r, err := webhook.NewRedisAttemptLog(webhook.RedisAttemptLogConfig{Client: startRedis(t), Prefix: "{ev}:webhook:log", MaxLen: 400})
	if err != nil {
		t.Fatal(err)
	}
	return []adv6NamedLog{{"memory", m, 400}, {"redis", r, 400}}
}

// TestAdv6ForeignCursors: a cursor must be one the log made; garbage is
// refused with ErrInvalidAttemptCursor, and no cursor crashes a log.
func TestAdv6ForeignCursors(t *testing.T) {
	for _, l := range adv6Logs(t) {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			if err := l.log.Record(ctx, webhook.AttemptBatch{Attempts: []webhook.Attempt{{EventID: "e", SubscriptionID: "s", Outcome: webhook.Delivered}}}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []string{"x", "-", "1-", "-1", "+1-1", "1-1-1", "18446744073709551616-0", "\x00", "1 -2", "1-0x1"} {
				_, err := l.log.Query(ctx, webhook.AttemptQuery{Cursor: c})
				if !errors.Is(err, webhook.ErrInvalidAttemptCursor) {
					t.Errorf("cursor %q: %v, want ErrInvalidAttemptCursor", c, err)
				}
			}
			for _, c := range []string{"0-0", "18446744073709551615-18446744073709551615", "1-18446744073709551615"} {
				for _, q := range []webhook.AttemptQuery{{Cursor: c}, {Cursor: c, EventID: "e"}, {Cursor: c, SubscriptionID: "s"}} {
					if _, err := l.log.Query(ctx, q); err != nil && !errors.Is(err, webhook.ErrInvalidAttemptCursor) {
						t.Errorf("query %+v: %v", q, err)
					}
				}
			}
		})
	}
}

// adv6Matches is AttemptQuery's filter (time range aside), outside the
// package.
func adv6Matches(q webhook.AttemptQuery, a webhook.Attempt) bool {
	return (q.SubscriptionID == "" || a.SubscriptionID == q.SubscriptionID) &&
		(q.EventID == "" || a.EventID == q.EventID) &&
		(q.Outcome == "" || a.Outcome == q.Outcome) &&
		(q.Status == 0 || a.Status == q.Status)
}

// TestAdv6GarbageInTheRedisKeysNeverDuplicates: with each of the log's
// keys replaced by one of another type (or its entries by garbage), a
// Record either records the batch once or refuses it having written no
// attempt, so that the recorder's retries never record an attempt twice;
// Query, Event and Len answer without crashing.
func TestAdv6GarbageInTheRedisKeysNeverDuplicates(t *testing.T) {
	client := startRedis(t)
	ctx := context.Background()
	const prefix = "{ev}:webhook:log"
	for _, key := range []string{":a", ":idx", ":evs", ":s:s", ":o:failed", ":e:e1", ":ev:e1"} {
		t.Run(key, func(t *testing.T) {
			if err := client.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			log, err := webhook.NewRedisAttemptLog(webhook.RedisAttemptLogConfig{Client: client, Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			if err := client.HSet(ctx, prefix+key, "x", "\x00garbage").Err(); err != nil {
				t.Fatal(err)
			}
			b := webhook.AttemptBatch{Events: []pubsub.Event{{ID: "e1", Name: "t", Payload: []byte(`{}`)}},
				Attempts: []webhook.Attempt{{EventID: "e1", SubscriptionID: "s", Attempt: 1, Outcome: webhook.Failed, Status: 500}}}
			var errs []error
			for i := 0; i < 3; i++ { // the recorder retries a refused batch
				err := log.Record(ctx, b)
				errs = append(errs, err)
				if err == nil {
					break
				}
			}
			n, _ := client.XLen(ctx, prefix+":a").Result()
			switch {
			case errs[len(errs)-1] == nil && n != 1:
				t.Errorf("recorded after %v, and the log holds %d attempts, want 1", errs, n)
			case errs[len(errs)-1] != nil && n != 0:
				t.Errorf("refused (%v), yet the log holds %d attempts: each retry records it again", errs, n)
			}
			for _, q := range []webhook.AttemptQuery{{}, {EventID: "e1"}, {SubscriptionID: "s"}, {Outcome: webhook.Failed}, {Status: 500}} {
				if _, err := log.Query(ctx, q); err != nil && key != ":a" {
					t.Errorf("query %+v: %v", q, err)
				}
			}
			_, _ = log.Event(ctx, "e1")
			_, _ = log.Len(ctx)
			if err := log.Trim(ctx); err != nil && key != ":a" {
				t.Errorf("Trim: %v", err)
			}
		})
	}
}

// TestAdv6DeliveriesWaitOnlyWhenTheLogIs8192Behind: while the log takes
// no batch, deliveries go on until some 8,192 attempts wait (plus the
// batch being written), then wait; once the log takes batches again,
// every attempt is written, none twice.
func TestAdv6DeliveriesWaitOnlyWhenTheLogIs8192Behind(t *testing.T) {
	const queue, batch = 8192, 512
	const n = queue + batch + 400
	release := make(chan struct{})
	var log *adv6Log
	log = newAdv6Log(t, func(ctx context.Context, b webhook.AttemptBatch) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return log.MemoryAttemptLog.Record(ctx, b)
	})
	h := newHarness(t, webhook.Config{AttemptLog: log, Subscriptions: []webhook.Subscription{{ID: "s", Topic: "t", URL: "http://127.0.0.1:1/"}}})
	evs := make([]pubsub.Event, n)
	for i := range evs {
		evs[i] = pubsub.NewEvent(pubsub.WithDryRun(context.Background(), true), "t", []byte(`{}`))
	}
	h.emit(t, evs...)
	// Dry runs are counted before they are queued for the log.
	h.until(t, "8,192 dry runs while the log takes nothing", func() bool { return h.obs.count("s", webhook.DryRun) > queue })
	if got := h.obs.count("s", webhook.DryRun); got == n {
		t.Errorf("all %d dry runs went on while the log took nothing: the queue is not bounded", n)
	}
	close(release)
	h.until(t, "every dry run", func() bool { return h.obs.count("s", webhook.DryRun) == n })
	// The last dry runs may still wait for room in the queue; Close would
	// drop those (deliveries no longer wait on the log once it closes).
	h.until(t, "every dry run in the log", func() bool {
		stored, err := log.Len(context.Background())
		return err == nil && stored == n
	})
	_ = h.bridge.Close()
	got := walkAttempts(t, log, webhook.AttemptQuery{Limit: webhook.MaxAttemptPage}, nil)
	seen := map[pubsub.ID]bool{}
	for _, a := range got {
		if seen[a.EventID] {
			t.Fatalf("%s logged twice", a.EventID)
		}
		seen[a.EventID] = true
	}
	if len(seen) != n {
		t.Errorf("logged %d, want %d", len(seen), n)
	}
}

// TestAdv6CloseIsBoundedWithAFullQueueAndAHangingLog: the log hangs and
// more attempts wait than its queue holds, so deliveries wait on it; Close
// still returns within the 5s bound (and a little for the deliveries),
// counting what it could not write.
func TestAdv6CloseIsBoundedWithAFullQueueAndAHangingLog(t *testing.T) {
	const n = 8192 + 512 + 400
	log := newAdv6Log(t, func(ctx context.Context, _ webhook.AttemptBatch) error {
		<-ctx.Done()
		return ctx.Err()
	})
	h := newHarness(t, webhook.Config{AttemptLog: log, Subscriptions: []webhook.Subscription{{ID: "s", Topic: "t", URL: "http://127.0.0.1:1/"}}})
	evs := make([]pubsub.Event, n)
	for i := range evs {
		evs[i] = pubsub.NewEvent(pubsub.WithDryRun(context.Background(), true), "t", []byte(`{}`))
	}
	h.emit(t, evs...)
	h.until(t, "the queue full", func() bool { return h.obs.count("s", webhook.DryRun) > 8192 })
	start := time.Now()
	_ = h.bridge.Close()
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("Close took %s with a hanging log and a full queue, want within the 5s bound", took)
	}
	h.obs.mu.Lock()
	defer h.obs.mu.Unlock()
	if h.obs.logged != h.obs.count2("s", webhook.DryRun) || h.obs.logDropped != h.obs.logged {
		t.Errorf("%d dry runs, %d accounted for by the log (%d dropped)", h.obs.count2("s", webhook.DryRun), h.obs.logged, h.obs.logDropped)
	}
}

// count2 is count with o.mu held.
func (o *countingObserver) count2(sub string, out webhook.Outcome) int { return o.outcomes[sub][out] }
