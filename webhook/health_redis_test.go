package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/webhook"
)

// healthPrefixes numbers the prefixes of the stores these tests make, so
// that stores on one Redis do not meet.
var healthPrefixes atomic.Int64

func newRedisHealth(tb testing.TB, client goredis.UniversalClient) (*webhook.RedisHealth, string) {
	tb.Helper()
	prefix := fmt.Sprintf("{health%d}:webhook:health", healthPrefixes.Add(1))
	h, err := webhook.NewRedisHealth(webhook.RedisHealthConfig{Client: client, Prefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	return h, prefix
}

// startHealthRedis returns a client of a redis-server of the test's own.
func startHealthRedis(tb testing.TB) (*redistest.Server, *goredis.Client) {
	tb.Helper()
	srv, err := redistest.Start(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Kill)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	tb.Cleanup(func() { _ = client.Close() })
	return srv, client
}

// healthKeyID mirrors the documented encoding of IDs in keys.
func healthKeyID(id string) string {
	r := strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D", ":", "%3A")
	return r.Replace(id)
}

func summaryKey(prefix, id string) string { return prefix + ":s:" + healthKeyID(id) }
func indexKey(prefix, id string) string   { return prefix + ":i:" + healthKeyID(id) }
func minuteKey(prefix, id string, at time.Time) string {
	return prefix + ":m:" + healthKeyID(id) + ":" + strconv.FormatInt(at.Unix()/60, 10)
}

// clusterTag is the part of key Redis Cluster hashes.
func clusterTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// showStats renders stats with what their pointers point at.
func showStats(m map[string]webhook.HealthStats) string {
	var b strings.Builder
	ids := slices.Sorted(maps.Keys(m))
	for _, id := range ids {
		st := m[id]
		fmt.Fprintf(&b, "\n  %q: success %+v failure %+v %+v", id, st.LastSuccess, st.LastFailure, st)
	}
	return b.String()
}

// utcStats is st with its times in UTC, to compare stores by value.
func utcStats(m map[string]webhook.HealthStats) map[string]webhook.HealthStats {
	out := make(map[string]webhook.HealthStats, len(m))
	for id, st := range m {
		for _, p := range []**webhook.LastAttempt{&st.LastSuccess, &st.LastFailure} {
			if *p != nil {
				c := **p
				c.At = c.At.UTC()
				*p = &c
			}
		}
		st.FailingSince = st.FailingSince.UTC()
		out[id] = st
	}
	return out
}

func TestRedisHealth(t *testing.T) {
	_, client := startHealthRedis(t)
	runHealthSuite(t, func(t *testing.T) webhook.HealthStore {
		h, _ := newRedisHealth(t, client)
		return h
	})
	t.Run("SameAnswersAsMemory", func(t *testing.T) { testHealthLikeMemory(t, client) })
	t.Run("ReplicasAddUp", func(t *testing.T) { testHealthReplicas(t, client, client) })
	t.Run("SpecialIDs", func(t *testing.T) { testHealthSpecialIDs(t, client) })
}

// TestRedisHealthCluster runs the suite and the tests that span many keys
// on a Redis Cluster of three masters: a batch of many subscriptions is
// one script call, which Redis refuses (CROSSSLOT) unless every key shares
// the prefix's slot.
func TestRedisHealthCluster(t *testing.T) {
	c, err := redistest.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = client.Close() })
	runHealthSuite(t, func(t *testing.T) webhook.HealthStore {
		h, _ := newRedisHealth(t, client)
		return h
	})
	t.Run("SameAnswersAsMemory", func(t *testing.T) { testHealthLikeMemory(t, client) })
	t.Run("ReplicasAddUp", func(t *testing.T) {
		other := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs()})
		defer other.Close()
		testHealthReplicas(t, client, other)
	})
	t.Run("SpecialIDs", func(t *testing.T) { testHealthSpecialIDs(t, client) })
}

// testHealthLikeMemory feeds random batches of samples, out of order
// within a few seconds and spread over two hours, to a RedisHealth and a
// MemoryHealth and compares what they say at several times.
func testHealthLikeMemory(t *testing.T, client goredis.UniversalClient) {
	ctx := context.Background()
	h, _ := newRedisHealth(t, client)
	mem := &webhook.MemoryHealth{}
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ids := []string{"a", "b", "c", "d"}
	at := t0
	var newest time.Time
	for range 300 {
		var batch []webhook.HealthSample
		for range rng.IntN(8) + 1 {
			at = at.Add(time.Duration(rng.IntN(40_000)) * time.Millisecond)
			s := webhook.HealthSample{
				SubscriptionID: ids[rng.IntN(len(ids))],
				At:             at.Add(-time.Duration(rng.IntN(3000)) * time.Millisecond).Add(time.Duration(rng.IntN(1000))), // ns too
				Kind:           webhook.SampleKind(rng.IntN(3) + 1),
				Status:         200 + rng.IntN(400),
				Took:           time.Duration(rng.Int64N(int64(90 * time.Second))),
				Error:          "e" + strconv.Itoa(rng.IntN(100)),
			}
			if s.At.After(newest) {
				newest = s.At
			}
			batch = append(batch, s)
		}
		if err := h.Observe(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := mem.Observe(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if newest.Sub(t0) < 2*time.Hour {
		t.Fatalf("the samples span %s only", newest.Sub(t0))
	}
	for _, now := range []time.Time{newest, newest.Add(30 * time.Second), newest.Add(17 * time.Minute), newest.Add(59 * time.Minute), newest.Add(3 * time.Hour)} {
		want, err := mem.Stats(ctx, now, append(ids, "never")...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := h.Stats(ctx, now, append(ids, "never")...)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(utcStats(got), utcStats(want)) {
			t.Errorf("at %s:\nredis  %s\nmemory %s", now, showStats(got), showStats(want))
		}
	}
}

// testHealthReplicas has two stores on one Redis, as two bridge replicas
// with clients of their own, observe batches in turn and then at once:
// the totals are those of every sample, and the summary that of the
// batches in the order they were applied.
func testHealthReplicas(t *testing.T, clientA, clientB goredis.UniversalClient) {
	ctx := context.Background()
	a, prefix := newRedisHealth(t, clientA)
	b, err := webhook.NewRedisHealth(webhook.RedisHealthConfig{Client: clientB, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	mem := &webhook.MemoryHealth{}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	batch := func(i int) []webhook.HealthSample {
		at := t0.Add(time.Duration(i) * 7 * time.Second)
		out := []webhook.HealthSample{
			{SubscriptionID: "x", At: at, Kind: webhook.Succeeded, Status: 200, Took: time.Duration(i) * time.Millisecond},
			{SubscriptionID: "y", At: at, Kind: webhook.Limited},
		}
		if i%3 != 0 {
			out = append(out, webhook.HealthSample{SubscriptionID: "x", At: at.Add(time.Second), Kind: webhook.FailedSample, Status: 500, Took: time.Second, Error: "HTTP 500 #" + strconv.Itoa(i)})
		}
		return out
	}
	for i := range 40 {
		store := webhook.HealthStore(a)
		if i%2 == 1 {
			store = b
		}
		if err := store.Observe(ctx, batch(i)); err != nil {
			t.Fatal(err)
		}
		if err := mem.Observe(ctx, batch(i)); err != nil {
			t.Fatal(err)
		}
	}
	now := t0.Add(10 * time.Minute)
	want, _ := mem.Stats(ctx, now, "x", "y")
	for _, store := range []*webhook.RedisHealth{a, b} {
		got, err := store.Stats(ctx, now, "x", "y")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(utcStats(got), utcStats(want)) {
			t.Errorf("after batches in turn:\nredis  %s\nmemory %s", showStats(got), showStats(want))
		}
	}

	// At once: the order of the batches is the race's, the counts add up.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for r, store := range []*webhook.RedisHealth{a, b} {
		wg.Go(func() {
			for i := range 50 {
				if err := store.Observe(ctx, batch(100+2*i+r)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := mem.Observe(ctx, batch(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	now = t0.Add(time.Hour)
	want, _ = mem.Stats(ctx, now, "x", "y")
	got, err := b.Stats(ctx, now, "x", "y")
	if err != nil {
		t.Fatal(err)
	}
	gx, wx := got["x"], want["x"]
	if gx.Succeeded != wx.Succeeded || gx.Failed != wx.Failed || gx.P50 != wx.P50 || gx.P99 != wx.P99 ||
		got["y"].RateLimited != want["y"].RateLimited || wx.Succeeded+wx.Failed == 0 {
		t.Errorf("after batches at once:\nredis  %+v\nmemory %+v", got, want)
	}
	// The last success and failure are the latest, whichever replica
	// wrote them first.
	if !gx.LastSuccess.At.Equal(wx.LastSuccess.At) || !gx.LastFailure.At.Equal(wx.LastFailure.At) || gx.LastFailure.Error != wx.LastFailure.Error {
		t.Errorf("last success %+v, failure %+v; want %+v, %+v", gx.LastSuccess, gx.LastFailure, wx.LastSuccess, wx.LastFailure)
	}
}

// testHealthSpecialIDs observes IDs that hold braces, colons, percent
// signs and unicode in one batch (one script call, so one slot on a
// Cluster), and finds each with its own counts, its keys in the prefix's
// slot, and Forget of one leaving the others.
func testHealthSpecialIDs(t *testing.T, client goredis.UniversalClient) {
	ctx := context.Background()
	h, prefix := newRedisHealth(t, client)
	ids := []string{"", "a", "a:s:b", "a:1", "a%3A1", "{a}", "}{", "{", "}", "{x}:m:y", "%", "%25", "%7B", "日本語:{ü}", "sp ace\x00nul"}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var samples []webhook.HealthSample
	for i, id := range ids {
		for j := range i + 1 {
			samples = append(samples, webhook.HealthSample{SubscriptionID: id, At: t0.Add(time.Duration(j) * time.Second), Kind: webhook.Succeeded, Status: 200 + i, Took: time.Millisecond})
		}
	}
	if err := h.Observe(ctx, samples); err != nil {
		t.Fatal(err)
	}
	check := func(gone map[string]bool) {
		t.Helper()
		got, err := h.Stats(ctx, t0.Add(time.Minute), ids...)
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			st, ok := got[id]
			switch {
			case gone[id] && ok:
				t.Errorf("%q: forgotten but %+v", id, st)
			case !gone[id] && (st.Succeeded != int64(i+1) || st.LastSuccess == nil || st.LastSuccess.Status != 200+i):
				t.Errorf("%q: %+v, want %d successes, status %d", id, st, i+1, 200+i)
			}
		}
	}
	check(nil)
	keys := allKeys(t, client, prefix)
	if len(keys) != 3*len(ids) {
		t.Errorf("%d keys for %d IDs, want 3 each: %q", len(keys), len(ids), keys)
	}
	for _, k := range keys {
		if clusterTag(k) != clusterTag(prefix) {
			t.Errorf("key %q hashes by %q, not the prefix's tag", k, clusterTag(k))
		}
	}
	gone := map[string]bool{}
	for _, id := range []string{"a", "{a}", "%", "", "日本語:{ü}"} {
		if err := h.Forget(ctx, id); err != nil {
			t.Fatal(err)
		}
		gone[id] = true
		check(gone)
	}
	if keys := allKeys(t, client, prefix); len(keys) != 3*(len(ids)-len(gone)) {
		t.Errorf("%d keys after forgetting %d of %d IDs: %q", len(keys), len(gone), len(ids), keys)
	}
}

// allKeys returns the keys under prefix, on every master of a Cluster.
func allKeys(t *testing.T, client goredis.UniversalClient, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var out []string
	scan := func(ctx context.Context, c *goredis.Client) error {
		keys, err := c.Keys(ctx, prefix+":*").Result()
		mu.Lock()
		out = append(out, keys...)
		mu.Unlock()
		return err
	}
	var err error
	if cc, ok := client.(*goredis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, scan)
	} else {
		err = scan(ctx, client.(*goredis.Client))
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRedisHealthExpiry checks that the minute keys and the index expire a
// bit over HealthWindow after their last write, and the summary not.
func TestRedisHealthExpiry(t *testing.T) {
	_, client := startHealthRedis(t)
	ctx := context.Background()
	h, prefix := newRedisHealth(t, client)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := h.Observe(ctx, []webhook.HealthSample{
		{SubscriptionID: "e", At: t0, Kind: webhook.Succeeded, Status: 200},
		{SubscriptionID: "e", At: t0.Add(time.Minute), Kind: webhook.FailedSample, Error: "x"},
	}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{minuteKey(prefix, "e", t0), minuteKey(prefix, "e", t0.Add(time.Minute)), indexKey(prefix, "e")} {
		ttl, err := client.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= webhook.HealthWindow || ttl > webhook.RedisHealthTTL {
			t.Errorf("PTTL %s = %s, want within (%s, %s]", k, ttl, webhook.HealthWindow, webhook.RedisHealthTTL)
		}
	}
	if ttl, err := client.PTTL(ctx, summaryKey(prefix, "e")).Result(); err != nil || ttl <= webhook.RedisHealthSummaryTTL-time.Minute || ttl > webhook.RedisHealthSummaryTTL {
		t.Errorf("PTTL of the summary = %v, %v; want about %s", ttl, err, webhook.RedisHealthSummaryTTL)
	}
	// An index entry whose key has expired is dropped with the next write:
	// age one (its score is the time of its last write).
	old := time.Now().Add(-webhook.RedisHealthTTL - time.Minute).UnixMilli()
	if err := client.ZAdd(ctx, indexKey(prefix, "e"), goredis.Z{Score: float64(old), Member: "123"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := h.Observe(ctx, []webhook.HealthSample{{SubscriptionID: "e", At: t0, Kind: webhook.Limited}}); err != nil {
		t.Fatal(err)
	}
	members, err := client.ZRange(ctx, indexKey(prefix, "e"), 0, -1).Result()
	slices.Sort(members)
	want := []string{strconv.FormatInt(t0.Unix()/60, 10), strconv.FormatInt(t0.Unix()/60+1, 10)}
	if err != nil || !reflect.DeepEqual(members, want) {
		t.Errorf("index = %q, %v; want %q", members, err, want)
	}
}

// TestRedisHealthGarbage puts keys of the wrong type and fields that do
// not parse where the store looks, and checks that Stats reads around them
// and Observe either repairs a count or refuses the whole batch by name.
func TestRedisHealthGarbage(t *testing.T) {
	_, client := startHealthRedis(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ok := func(id string, at time.Time) webhook.HealthSample {
		return webhook.HealthSample{SubscriptionID: id, At: at, Kind: webhook.Succeeded, Status: 200, Took: time.Millisecond}
	}
	fail := func(id string, at time.Time) webhook.HealthSample {
		return webhook.HealthSample{SubscriptionID: id, At: at, Kind: webhook.FailedSample, Status: 500, Took: time.Millisecond, Error: "boom"}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("SummaryOfAnotherType", func(t *testing.T) {
		h, prefix := newRedisHealth(t, client)
		must(h.Observe(ctx, []webhook.HealthSample{ok("good", t0)}))
		must(client.Set(ctx, summaryKey(prefix, "z-bad"), "not a hash", 0).Err())
		err := h.Observe(ctx, []webhook.HealthSample{ok("good", t0.Add(time.Second)), fail("z-bad", t0), ok("new", t0)})
		if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") || !strings.Contains(err.Error(), summaryKey(prefix, "z-bad")) {
			t.Errorf("Observe = %v, want a WRONGTYPE error that names the key", err)
		}
		// Nothing of the batch was written: not the subscriptions before
		// the bad one ("good", applied first), nor those after.
		if n, _ := client.Exists(ctx, summaryKey(prefix, "new"), minuteKey(prefix, "z-bad", t0), indexKey(prefix, "z-bad")).Result(); n != 0 {
			t.Errorf("%d keys made by a refused batch", n)
		}
		got, err := h.Stats(ctx, t0.Add(time.Minute), "good", "z-bad", "new")
		must(err)
		if len(got) != 1 || got["good"].Succeeded != 1 || !got["good"].LastSuccess.At.Equal(t0) {
			t.Errorf("Stats = %+v, want good alone with its first batch", got)
		}
		// Forget deletes the key whatever it holds.
		must(h.Forget(ctx, "z-bad"))
		if n, _ := client.Exists(ctx, summaryKey(prefix, "z-bad")).Result(); n != 0 {
			t.Error("Forget left the bad summary")
		}
	})

	t.Run("MinuteAndIndexOfAnotherType", func(t *testing.T) {
		h, prefix := newRedisHealth(t, client)
		must(h.Observe(ctx, []webhook.HealthSample{ok("m", t0)}))
		must(client.RPush(ctx, minuteKey(prefix, "m", t0.Add(time.Minute)), "x").Err())
		err := h.Observe(ctx, []webhook.HealthSample{fail("m", t0.Add(time.Minute))})
		if err == nil || !strings.Contains(err.Error(), minuteKey(prefix, "m", t0.Add(time.Minute))) {
			t.Fatalf("Observe = %v, want an error that names the minute key", err)
		}
		got, err := h.Stats(ctx, t0.Add(time.Minute), "m")
		must(err)
		if st := got["m"]; st.Succeeded != 1 || st.Failed != 0 || st.LastFailure != nil || st.ConsecutiveFailures != 0 {
			t.Errorf("Stats = %+v, want the first batch alone", st)
		}

		must(h.Observe(ctx, []webhook.HealthSample{ok("i", t0)}))
		must(client.Del(ctx, indexKey(prefix, "i")).Err())
		must(client.Set(ctx, indexKey(prefix, "i"), "x", 0).Err())
		if err := h.Observe(ctx, []webhook.HealthSample{ok("i", t0)}); err == nil || !strings.Contains(err.Error(), indexKey(prefix, "i")) {
			t.Errorf("Observe = %v, want an error that names the index", err)
		}
		must(h.Forget(ctx, "i"))
		if n, _ := client.Exists(ctx, summaryKey(prefix, "i"), indexKey(prefix, "i")).Result(); n != 0 {
			t.Error("Forget left keys beside a bad index")
		}
	})

	t.Run("FieldsThatDoNotParse", func(t *testing.T) {
		h, prefix := newRedisHealth(t, client)
		must(client.HSet(ctx, summaryKey(prefix, "f"), "ls_at", "yesterday", "ls_status", "x", "lf_at", "1.2", "lf_status", "?",
			"cf", "many", "fs", "soon").Err())
		must(client.HSet(ctx, minuteKey(prefix, "f", t0), "ok", "abc", "fail", "2", "b3", "x", "b0", "9999999999999999999999", "extra", "?").Err())
		// Times that look like numbers but are too long to compare exactly.
		must(client.HSet(ctx, summaryKey(prefix, "g"), "ls_at", "99999999999999999999.000000000", "lf_at", "+1.000000000", "cf", "3", "fs", "-1.5").Err())
		got, err := h.Stats(ctx, t0.Add(time.Minute), "f", "g")
		must(err)
		f, g := got["f"], got["g"]
		if f.LastSuccess != nil || f.LastFailure != nil || f.ConsecutiveFailures != 0 || !f.FailingSince.IsZero() ||
			f.Succeeded != 0 || f.Failed != 2 || f.P50 != 0 {
			t.Errorf("f = %+v", f)
		}
		if g.LastSuccess != nil || g.LastFailure != nil || g.ConsecutiveFailures != 3 || !g.FailingSince.IsZero() {
			t.Errorf("g = %+v", g)
		}
		// Observe counts from zero what does not parse, and replaces times
		// that do not.
		must(h.Observe(ctx, []webhook.HealthSample{ok("f", t0), fail("f", t0.Add(time.Second)), ok("g", t0), fail("g", t0.Add(2*time.Second))}))
		must(h.Observe(ctx, []webhook.HealthSample{fail("g", t0.Add(3*time.Second))}))
		got, err = h.Stats(ctx, t0.Add(time.Minute), "f", "g")
		must(err)
		f, g = got["f"], got["g"]
		if f.Succeeded != 1 || f.Failed != 3 || f.P50 != time.Millisecond || f.ConsecutiveFailures != 1 || !f.FailingSince.Equal(t0.Add(time.Second)) ||
			f.LastSuccess == nil || !f.LastSuccess.At.Equal(t0) || f.LastFailure == nil || f.LastFailure.Error != "boom" {
			t.Errorf("f after Observe = %+v", f)
		}
		if g.ConsecutiveFailures != 2 || !g.FailingSince.Equal(t0.Add(2*time.Second)) || g.LastSuccess == nil || !g.LastSuccess.At.Equal(t0) ||
			g.LastFailure == nil || !g.LastFailure.At.Equal(t0.Add(3*time.Second)) {
			t.Errorf("g after Observe = %+v", g)
		}
		if v, _ := client.HGet(ctx, minuteKey(prefix, "f", t0), "ok").Result(); v != "1" {
			t.Errorf("ok field = %q, want 1", v)
		}

		// Consecutive failures that do not parse count again from the
		// failures of a batch without success.
		must(client.HSet(ctx, summaryKey(prefix, "c"), "cf", "many", "fs", "soon").Err())
		must(h.Observe(ctx, []webhook.HealthSample{fail("c", t0), fail("c", t0.Add(time.Second))}))
		got, err = h.Stats(ctx, t0.Add(time.Minute), "c")
		must(err)
		if c := got["c"]; c.ConsecutiveFailures != 2 || !c.FailingSince.Equal(t0) {
			t.Errorf("c = %+v", c)
		}
	})
}

func TestNewRedisHealth(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	for _, tc := range []struct {
		cfg  webhook.RedisHealthConfig
		want string // in the error; "" for none
	}{
		{webhook.RedisHealthConfig{Client: client, Prefix: "{events}:webhook:health"}, ""},
		{webhook.RedisHealthConfig{Client: client, Prefix: "webhook:{h}"}, ""},
		{webhook.RedisHealthConfig{Prefix: "{events}:health"}, "Client"},
		{webhook.RedisHealthConfig{Client: client}, "Prefix"},
		{webhook.RedisHealthConfig{Client: client, Prefix: "webhook:health"}, "hash tag"},
		{webhook.RedisHealthConfig{Client: client, Prefix: "{}:health{x}"}, "hash tag"},
		{webhook.RedisHealthConfig{Client: client, Prefix: "health{"}, "hash tag"},
		{webhook.RedisHealthConfig{Client: client, Prefix: "}health{"}, "hash tag"},
	} {
		_, err := webhook.NewRedisHealth(tc.cfg)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("prefix %q: %v, want %q", tc.cfg.Prefix, err, tc.want)
		}
	}
}

func TestRedisHealthContext(t *testing.T) {
	_, client := startHealthRedis(t)
	h, _ := newRedisHealth(t, client)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := []webhook.HealthSample{{SubscriptionID: "c", At: time.Now(), Kind: webhook.Limited}}
	if err := h.Observe(ctx, s); !errors.Is(err, context.Canceled) {
		t.Errorf("Observe = %v", err)
	}
	if _, err := h.Stats(ctx, time.Now(), "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stats = %v", err)
	}
	if err := h.Forget(ctx, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("Forget = %v", err)
	}
}

// TestRedisHealthDown checks that a Redis that is gone makes errors that
// say what failed.
func TestRedisHealthDown(t *testing.T) {
	srv, _ := startHealthRedis(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr, MaxRetries: -1, DialerRetries: 1})
	defer client.Close()
	h, prefix := newRedisHealth(t, client)
	srv.Kill()
	ctx := context.Background()
	err := h.Observe(ctx, []webhook.HealthSample{{SubscriptionID: "d", At: time.Now(), Kind: webhook.Limited}})
	if err == nil || !strings.Contains(err.Error(), prefix) || !strings.Contains(err.Error(), "observing") {
		t.Errorf("Observe = %v", err)
	}
	if _, err := h.Stats(ctx, time.Now(), "d"); err == nil || !strings.Contains(err.Error(), "reading stats") {
		t.Errorf("Stats = %v", err)
	}
}

// BenchmarkRedisHealthStats reads a page of 100 subscriptions, each with
// samples in every minute of the window.
func BenchmarkRedisHealthStats(b *testing.B) {
	_, client := startHealthRedis(b)
	h, _ := newRedisHealth(b, client)
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Minute).Add(-59 * time.Minute)
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = "subscription-" + strconv.Itoa(i)
	}
	for m := range 60 {
		var batch []webhook.HealthSample
		for _, id := range ids {
			at := t0.Add(time.Duration(m) * time.Minute)
			batch = append(batch,
				webhook.HealthSample{SubscriptionID: id, At: at, Kind: webhook.Succeeded, Status: 200, Took: time.Duration(m) * time.Millisecond},
				webhook.HealthSample{SubscriptionID: id, At: at.Add(time.Second), Kind: webhook.Succeeded, Status: 200, Took: 300 * time.Millisecond},
				webhook.HealthSample{SubscriptionID: id, At: at.Add(2 * time.Second), Kind: webhook.FailedSample, Status: 503, Took: 2 * time.Second, Error: "HTTP 503"},
				webhook.HealthSample{SubscriptionID: id, At: at.Add(3 * time.Second), Kind: webhook.Limited},
			)
		}
		if err := h.Observe(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	now := t0.Add(59*time.Minute + 30*time.Second)
	got, err := h.Stats(ctx, now, ids...)
	if err != nil || len(got) != 100 || got[ids[0]].Succeeded != 120 || got[ids[99]].Failed != 60 {
		b.Fatalf("Stats = %d subscriptions, %v; first %+v", len(got), err, got[ids[0]])
	}
	b.ReportAllocs()
	start := time.Now()
	n := 0
	for b.Loop() {
		if _, err := h.Stats(ctx, now, ids...); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(n), "ms/op")
}
