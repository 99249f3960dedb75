package webhook_test

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// redisLogBenchAttempts is how many attempts BenchmarkAttemptLogQuery
// fills its log with: SWITCHYARD_ATTEMPTLOG_BENCH_ATTEMPTS, or 250,000,
// which fills in about 10 s on two cores (a million takes 30 to 60 s).
func redisLogBenchAttempts(b *testing.B) int {
	if s := os.Getenv("SWITCHYARD_ATTEMPTLOG_BENCH_ATTEMPTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("SWITCHYARD_ATTEMPTLOG_BENCH_ATTEMPTS=%q", s)
		}
		return n
	}
	return 250000
}

// redisLogBenchAttempt is the i-th attempt of the benchmarks' traffic:
// 10,000 subscriptions, 200,000 events (five attempts each, of five
// subscriptions), every outcome, a response of some size.
func redisLogBenchAttempt(i int) webhook.Attempt {
	ev := i / 5 % 200000
	return webhook.Attempt{
		EventID:        pubsub.ID("evt-" + strconv.Itoa(ev)),
		EventName:      "order.created",
		SubscriptionID: "sub-" + strconv.Itoa((ev*7+i%5*1931)%10000),
		Attempt:        1,
		At:             time.UnixMilli(1700000000000 + int64(i)),
		Duration:       120 * time.Millisecond,
		Outcome:        webhook.Outcomes[i%len(webhook.Outcomes)],
		URL:            "https://hooks.example.com/orders/incoming",
		RequestHeaders: http.Header{
			"Content-Type":      {"application/json"},
			"Webhook-Id":        {"evt-" + strconv.Itoa(ev)},
			"Webhook-Timestamp": {"1700000000"},
			"Webhook-Signature": {"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="},
		},
		Status:          []int{200, 500, 0, 410, 429}[i%5],
		ResponseHeaders: http.Header{"Content-Type": {"application/json"}, "Date": {"Tue, 14 Nov 2023 22:13:20 GMT"}},
		ResponseBody:    `{"ok":false,"error":"upstream timed out while handling the request"}`,
	}
}

// redisLogBenchBatch returns the attempts from i on, n of them, with the
// events they are the first attempt of.
func redisLogBenchBatch(i, n int) webhook.AttemptBatch {
	var b webhook.AttemptBatch
	for j := i; j < i+n; j++ {
		a := redisLogBenchAttempt(j)
		b.Attempts = append(b.Attempts, a)
		if j%5 == 0 {
			b.Events = append(b.Events, pubsub.Event{ID: a.EventID, Name: a.EventName,
				Meta: pubsub.Meta{CreatedAtUTC: a.At}, Payload: []byte(`{"order":{"id":"` + string(a.EventID) + `","total":1999,"currency":"EUR"}}`)})
		}
	}
	return b
}

// redisLogBenchServer starts a redis-server for a benchmark, with the
// default stream node sizes.
func redisLogBenchServer(b *testing.B) *goredis.Client {
	b.Helper()
	srv, err := redistest.Start(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Kill)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr, PoolSize: 8})
	b.Cleanup(func() { _ = client.Close() })
	return client
}

// BenchmarkAttemptLogQuery measures first pages of the queries the
// console makes, over a RedisAttemptLog of 250,000 attempts, or a
// million with SWITCHYARD_ATTEMPTLOG_BENCH_ATTEMPTS=1000000 (see
// redisLogBenchAttempts), filled once per benchmark run in batches of
// 1,000 from two writers.
func BenchmarkAttemptLogQuery(b *testing.B) {
	ctx := context.Background()
	client := redisLogBenchServer(b)
	n := redisLogBenchAttempts(b)
	l, err := webhook.NewRedisAttemptLog(webhook.RedisAttemptLogConfig{Client: client, Prefix: "{bench}:log"})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	const batch, writers = 1000, 2
	var next atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(batch)) - batch
				if i >= n {
					return
				}
				if err := l.Record(ctx, redisLogBenchBatch(i, min(batch, n-i))); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	took := time.Since(start)
	mem, _ := client.MemoryUsage(ctx, "{bench}:log:a", 0).Result()
	info := client.InfoMap(ctx, "memory").Item("Memory", "used_memory")
	b.Logf("filled %d attempts in %s (%.0f/s); the main stream takes %d MB, Redis %s bytes", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), mem>>20, info)

	last := redisLogBenchAttempt(n - 1)
	for _, bc := range []struct {
		name string
		q    webhook.AttemptQuery
	}{
		{"event", webhook.AttemptQuery{EventID: last.EventID}},
		{"subscription", webhook.AttemptQuery{SubscriptionID: last.SubscriptionID, Limit: 100}},
		{"subscription+outcome", webhook.AttemptQuery{SubscriptionID: last.SubscriptionID, Outcome: last.Outcome, Limit: 100}},
		{"unfiltered", webhook.AttemptQuery{Limit: 100}},
		{"outcome+status", webhook.AttemptQuery{Outcome: webhook.Delivered, Status: 410, Limit: 100}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var got int
			for b.Loop() {
				p, err := l.Query(ctx, bc.q)
				if err != nil {
					b.Fatal(err)
				}
				got = len(p.Attempts)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
			b.ReportMetric(float64(got), "attempts/page")
		})
	}
}

// BenchmarkAttemptLogRecord measures Record in batches of 256 from one
// writer, into a log that trims at 100,000 attempts.
func BenchmarkAttemptLogRecord(b *testing.B) {
	ctx := context.Background()
	client := redisLogBenchServer(b)
	l, err := webhook.NewRedisAttemptLog(webhook.RedisAttemptLogConfig{Client: client, Prefix: "{bench}:log", MaxLen: 100000})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 256
	batches := make([]webhook.AttemptBatch, 64)
	for i := range batches {
		batches[i] = redisLogBenchBatch(i*batch, batch)
	}
	i := 0
	for b.Loop() {
		if err := l.Record(ctx, batches[i%len(batches)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "attempts/s")
}
