package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// hostileTrace are traceparent/tracestate values an entry may carry
// (written by another language, a bug, an attacker); "-" means the field
// is absent.
var hostileTrace = []struct{ tp, ts string }{
	{"garbage", "-"},
	{"", ""},
	{"00-00000000000000000000000000000000-0000000000000000-01", "a=b"},
	{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "-"},
	{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", "-"},
	{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "\xff\xfe\x00\x01,=,k=\x80"},
	{"\xff\xfe\x00\x01\x80\xc3\x28", "\x00"},
	{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", strings.Repeat("k=v,", 1<<19)}, // 2 MiB tracestate
	{strings.Repeat("00-", 1<<20/3*2), "-"},                                                    // 2 MiB traceparent
	{"-", strings.Repeat("x", 1<<20)},                                                          // tracestate without traceparent
}

// hostileFields is the field list of event id with hostile trace case i.
func hostileFields(id string, i int) []any {
	vals := []any{"id", id, "name", "t", "payload", strconv.Itoa(i)}
	if c := hostileTrace[i]; c.tp != "-" {
		vals = append(vals, "traceparent", c.tp)
	}
	if c := hostileTrace[i]; c.ts != "-" {
		vals = append(vals, "tracestate", c.ts)
	}
	return vals
}

// netstrings packs vals as a delayed-set member (docs/wire-format.md).
func netstrings(vals []any) string {
	var b strings.Builder
	for _, v := range vals {
		s := v.(string)
		fmt.Fprintf(&b, "%d:%s,", len(s), s)
	}
	return b.String()
}

// Entries and delayed members with garbage, binary, non-UTF-8 or
// multi-megabyte traceparent/tracestate fields are handled exactly as
// without them, with spans off and on, through a retry: each event is
// handled twice (a failure, then success), none is dead-lettered or
// reported, nothing stays pending or in the delayed set.
func TestAdv10HostileTraceFieldsNeverCostAnEvent(t *testing.T) {
	for _, mode := range []string{"off", "on"} {
		t.Run(mode, func(t *testing.T) {
			client := newClient(t, server.Addr)
			stream := uniqueName("adv10-hostile")
			var tp trace.TracerProvider
			rec := tracetest.NewSpanRecorder()
			if mode == "on" {
				sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
				t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
				tp = sdk
			}
			ctx := context.Background()
			makeGroup(t, client, stream, "g")
			want := map[string]bool{}
			for i := range hostileTrace {
				id := fmt.Sprintf("entry-%d", i)
				want[id] = true
				if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: hostileFields(id, i)}).Err(); err != nil {
					t.Fatalf("XADD case %d: %v", i, err)
				}
				id = fmt.Sprintf("delayed-%d", i)
				want[id] = true
				member := fmt.Sprintf("x%d;", i) + netstrings(hostileFields(id, i))
				if err := client.ZAdd(ctx, redis.DelayedKey(stream), goredis.Z{Score: float64(time.Now().UnixMilli()), Member: member}).Err(); err != nil {
					t.Fatalf("ZADD case %d: %v", i, err)
				}
			}

			var mu sync.Mutex
			calls := map[string]int{}
			var errs errorLog
			subscribe(t, client, redis.SubscriberConfig{
				Streams: []string{stream}, Group: "g", MaxAttempts: 3, TracerProvider: tp,
				Backoff: func(int) time.Duration { return 5 * time.Millisecond }, DelayedPoll: 20 * time.Millisecond,
			}, func(ctx context.Context, ev pubsub.Event) error {
				mu.Lock()
				defer mu.Unlock()
				calls[string(ev.ID)]++
				if calls[string(ev.ID)] == 1 {
					return errors.New("first attempt fails")
				}
				return nil
			}, errs.handle)

			eventually(t, "every event handled twice", func() bool {
				mu.Lock()
				defer mu.Unlock()
				for id := range want {
					if calls[id] < 2 {
						return false
					}
				}
				return true
			})
			eventually(t, "nothing pending", func() bool { return pendingCount(t, client, stream, "g") == 0 })
			mu.Lock()
			for id, n := range calls {
				if !want[id] || n != 2 {
					t.Errorf("event %q handled %d times, want 2", id, n)
				}
			}
			mu.Unlock()
			if n, err := client.XLen(ctx, redis.DeadKey(stream)).Result(); err != nil || n != 0 {
				dead, _ := client.XRange(ctx, redis.DeadKey(stream), "-", "+").Result()
				for _, d := range dead {
					t.Errorf("dead letter: %.300v", d.Values)
				}
				t.Errorf("dead-letter stream holds %d entries (err %v), want 0", n, err)
			}
			if n, _ := client.ZCard(ctx, redis.DelayedKey(stream)).Result(); n != 0 {
				t.Errorf("delayed set still holds %d members", n)
			}
			if e, _ := errs.snapshot(); len(e) > 0 {
				for _, err := range e {
					if !strings.Contains(err.Error(), "first attempt fails") {
						t.Errorf("error reported: %.300v", err)
					}
				}
			}
			if mode == "on" {
				// One process span per attempt, each ended, none a child of
				// garbage.
				eventually(t, "every process span ended", func() bool {
					return len(spansNamed(rec.Ended(), "process "+stream)) == 2*len(want)
				})
			}
		})
	}
}

// With no TracerProvider (the global one unset), the handler's context
// holds the entry's span context, tracestate included, and an event
// emitted under it carries the same traceparent and tracestate, even when
// the tracestate is one W3C allows at its longest (32 members).
func TestAdv10TraceContextPassesThroughWithSpansOff(t *testing.T) {
	client := newClient(t, server.Addr)
	in, out := uniqueName("adv10-in"), uniqueName("adv10-out")
	ctx := context.Background()
	makeGroup(t, client, in, "g")
	members := make([]string, 32)
	for i := range members {
		members[i] = fmt.Sprintf("v%d=%s", i, strings.Repeat("a", 200))
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	cases := []struct{ id, ts string }{{"plain", ""}, {"state", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}, {"long", strings.Join(members, ",")}}
	for _, c := range cases {
		vals := []any{"id", c.id, "name", "t", "payload", "x", "traceparent", tp}
		if c.ts != "" {
			vals = append(vals, "tracestate", c.ts)
		}
		if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: in, Values: vals}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: out})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var mu sync.Mutex
	seen := map[pubsub.ID]trace.SpanContext{}
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{in}, Group: "g"}, func(ctx context.Context, ev pubsub.Event) error {
		mu.Lock()
		seen[ev.ID] = trace.SpanContextFromContext(ctx)
		mu.Unlock()
		return pub.Emit(ctx, pubsub.NewEvent(ctx, "echo", []byte(ev.ID)))
	}, nil)
	eventually(t, "three echoes", func() bool { n, _ := client.XLen(ctx, out).Result(); return n == 3 })
	entries, err := client.XRange(ctx, out, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	byPayload := map[string]map[string]any{}
	for _, e := range entries {
		byPayload[e.Values["payload"].(string)] = e.Values
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range cases {
		sc := seen[pubsub.ID(c.id)]
		if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" || !sc.IsRemote() {
			t.Errorf("%s: handler ctx span context %v, want the entry's (remote)", c.id, sc)
		}
		if sc.TraceState().String() != c.ts {
			t.Errorf("%s: handler ctx tracestate %q, want %q", c.id, sc.TraceState().String(), c.ts)
		}
		v := byPayload[c.id]
		if v["traceparent"] != tp {
			t.Errorf("%s: echo carries traceparent %v, want %s", c.id, v["traceparent"], tp)
		}
		got, _ := v["tracestate"].(string)
		if got != c.ts {
			t.Errorf("%s: echo carries tracestate %q, want %q", c.id, got, c.ts)
		}
	}
}

// Concurrent single-event Emits, which the publisher coalesces into shared
// pipelines, each carry their own caller's trace context: with spans off
// the caller's traceparent and tracestate exactly, with spans on a send
// span of the caller's trace whose parent is the caller's span.
func TestAdv10CoalescedEmitsKeepTheirOwnTrace(t *testing.T) {
	for _, mode := range []string{"off", "on"} {
		t.Run(mode, func(t *testing.T) {
			client := newClient(t, server.Addr)
			stream := uniqueName("adv10-coalesce")
			var tp trace.TracerProvider
			rec := tracetest.NewSpanRecorder()
			if mode == "on" {
				sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
				t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
				tp = sdk
			}
			pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream, TracerProvider: tp})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			const n = 300
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					ts, _ := trace.ParseTraceState(fmt.Sprintf("caller=c%d", i))
					sc := trace.NewSpanContext(trace.SpanContextConfig{
						TraceID: trace.TraceID{0xaa, byte(i >> 8), byte(i), 1}, SpanID: trace.SpanID{0xbb, byte(i >> 8), byte(i), 1},
						TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
					})
					ctx := trace.ContextWithRemoteSpanContext(context.Background(), sc)
					ev := pubsub.NewEvent(ctx, "t", []byte(strconv.Itoa(i)))
					if err := pub.Emit(ctx, ev); err != nil {
						t.Errorf("Emit %d: %v", i, err)
					}
				})
			}
			wg.Wait()
			entries, err := client.XRange(context.Background(), stream, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != n {
				t.Fatalf("%d entries, want %d", len(entries), n)
			}
			sends := map[string]sdktrace.ReadOnlySpan{}
			for _, s := range spansNamed(rec.Ended(), "send "+stream) {
				sends[s.SpanContext().SpanID().String()] = s
			}
			for _, e := range entries {
				i, _ := strconv.Atoi(e.Values["payload"].(string))
				tid := trace.TraceID{0xaa, byte(i >> 8), byte(i), 1}.String()
				sid := trace.SpanID{0xbb, byte(i >> 8), byte(i), 1}.String()
				tpv, _ := e.Values["traceparent"].(string)
				tsv, _ := e.Values["tracestate"].(string)
				if tsv != fmt.Sprintf("caller=c%d", i) {
					t.Errorf("event %d carries tracestate %q, want caller=c%d", i, tsv, i)
				}
				if mode == "off" {
					if want := "00-" + tid + "-" + sid + "-01"; tpv != want {
						t.Errorf("event %d carries traceparent %q, want %q", i, tpv, want)
					}
					continue
				}
				parts := strings.Split(tpv, "-")
				if len(parts) != 4 || parts[1] != tid {
					t.Errorf("event %d carries traceparent %q, want trace %s", i, tpv, tid)
					continue
				}
				s, ok := sends[parts[2]]
				if !ok || s.Parent().SpanID().String() != sid {
					t.Errorf("event %d carries span %s, not a send span child of the caller's %s", i, parts[2], sid)
				}
			}
		})
	}
}
