package redis_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
	"github.com/switchyard-go/switchyard/redis"
)

// longMember is a member too long to be quoted whole in an error.
var longMember = "4:name,1:x,7:payload,5000:" + strings.Repeat("x", 300)

// garbage lists members of a delayed set that the mover cannot turn into
// a stream entry, each with a piece of the reason it must give.
var garbage = []struct {
	name, member, reason string
}{
	{"not netstrings", "hello-not-a-netstring", "neither netstrings"},
	{"empty", "", "empty member"},
	{"negative length", "-1:a,", "neither netstrings"},
	{"negative length after a prefix", "p;-1:a,", "no length at byte 2"},
	{"non-numeric length", "4:name,ab:cd,", "no length at byte 7"},
	{"length past the end", "4:name,99:abc,", "length 99 at byte 7 runs past the end"},
	{"ten-digit length past the end", "9999999999:x,", "length 9999999999 at byte 0 runs past the end"},
	{"eleven-digit length", "12345678901:x,", "length at byte 0 has more than 10 digits"},
	{"missing colon", "4name,1:x,", "no ':' after the length at byte 0"},
	{"digits to the end", "4:name,12", "no ':' after the length at byte 7"},
	{"missing comma", "4:name;1:x,", "no ',' at byte 6 after a 4-byte value"},
	{"trailing garbage", "4:name,1:x,zz", "no length at byte 11"},
	{"odd number of fields", "4:name,1:x,2:id,", "odd number of fields (3)"},
	{"one empty field", "0:,", "odd number of fields (1)"},
	{"binary junk", "\xff\xfe\x00\x01garbage", "neither netstrings"},
	{"binary junk after a prefix", "\x00\xff;\x80\x81", "no length at byte 3"},
	{"prefix only", "u0123456789abcdef;", "nothing after the unique prefix"},
	{"prefix over 64 bytes", strings.Repeat("u", 65) + ";4:name,1:x,", "neither netstrings"},
	{"too many fields", strings.Repeat("1:a,", 2002), "more than 2000 fields"},
	{"long member", longMember, "length 5000 at byte 21 runs past the end"},
}

// errorsWith returns the reported errors whose text holds every one of
// parts.
func errorsWith(log *errorLog, parts ...string) []error {
	errs, _ := log.snapshot()
	var out []error
next:
	for _, err := range errs {
		for _, p := range parts {
			if !strings.Contains(err.Error(), p) {
				continue next
			}
		}
		out = append(out, err)
	}
	return out
}

func TestDelayedGarbageIsDeadLetteredAndTheRestMoves(t *testing.T) {
	client := newClient(t, server.Addr)
	stream := uniqueName("delayed-garbage")
	ctx := context.Background()
	key := redis.DelayedKey(stream)

	want := make([]pubsub.Event, 200)
	for i := range want {
		want[i] = pubsub.NewEvent(ctx, "later", []byte(strconv.Itoa(i)))
	}
	at := time.Now().Add(500 * time.Millisecond)
	if err := newPublisher(t, client, stream).EmitAt(ctx, at, want...); err != nil {
		t.Fatal(err)
	}
	// Half the garbage is due long before the events, the other half
	// with them.
	for i, g := range garbage {
		score := float64(1)
		if i%2 == 1 {
			score = float64(at.UnixMilli())
		}
		if err := client.ZAdd(ctx, key, goredis.Z{Score: score, Member: g.member}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := client.ZCard(ctx, key).Result(); err != nil || n != int64(len(want)+len(garbage)) {
		t.Fatalf("delayed set holds %d members (%v) before the subscriber starts, want %d", n, err, len(want)+len(garbage))
	}

	rec := pubsubtest.NewRecorder()
	var log errorLog
	subscribe(t, client, redis.SubscriberConfig{
		Streams: []string{stream}, Group: "g", BatchSize: 16, DelayedPoll: 5 * time.Millisecond,
	}, rec.Handle, log.handle)

	rec.WaitForN(t, len(want), wait)
	eventually(t, "the delayed set to empty", func() bool {
		n, err := client.ZCard(ctx, key).Result()
		return err == nil && n == 0
	})
	eventually(t, "a report of every garbage member", func() bool {
		return len(errorsWith(&log, key)) >= len(garbage)
	})

	got := rec.Events()
	seen := make(map[pubsub.ID]int)
	for _, ev := range got {
		seen[ev.ID]++
	}
	for _, ev := range want {
		if seen[ev.ID] != 1 {
			t.Errorf("event %s delivered %d times, want once", ev.ID, seen[ev.ID])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d deliveries, want %d", len(got), len(want))
	}
	if n, _ := client.XLen(ctx, stream).Result(); n != int64(len(want)) {
		t.Errorf("stream holds %d entries, want %d: only the valid members move", n, len(want))
	}

	dead, err := client.XRange(ctx, redis.DeadKey(stream), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	byMember := make(map[string]map[string]any)
	for _, e := range dead {
		m, _ := e.Values["delayed_member"].(string)
		byMember[m] = e.Values
	}
	if len(dead) != len(garbage) {
		t.Errorf("dead-letter stream holds %d entries, want %d", len(dead), len(garbage))
	}
	for _, g := range garbage {
		t.Run(g.name, func(t *testing.T) {
			v, ok := byMember[g.member]
			if !ok {
				t.Fatalf("member %.80q not in the dead-letter stream", g.member)
			}
			if reason, _ := v["dead_reason"].(string); !strings.HasPrefix(reason, "delayed member: ") || !strings.Contains(reason, g.reason) {
				t.Errorf("dead_reason %q, want one naming %q", reason, g.reason)
			}
			deadAt, _ := v["dead_at"].(string)
			if ts, err := time.Parse(time.RFC3339Nano, deadAt); err != nil || ts.Location() != time.UTC || time.Since(ts) > time.Minute {
				t.Errorf("dead_at %q, want the RFC 3339 UTC time of the move (%v)", deadAt, err)
			}
			reported := errorsWith(&log, key, "member "+strconv.Quote(g.member[:min(len(g.member), 64)]), g.reason)
			if len(reported) != 1 {
				t.Fatalf("ErrorHandler told %d times about it, want once: %v", len(reported), reported)
			}
			err := reported[0]
			if !errors.Is(err, pubsub.ErrMalformed) {
				t.Errorf("reported %v, which does not wrap pubsub.ErrMalformed", err)
			}
			if len(err.Error()) > 512 || (len(g.member) > 64 && strings.Contains(err.Error(), g.member)) {
				t.Errorf("reported error of %d bytes quotes the member whole: %.200s", len(err.Error()), err)
			}
		})
	}
}

func TestDelayedMemberRefusedByRedisIsDeadLettered(t *testing.T) {
	client := newClient(t, server.Addr)
	ctx := context.Background()
	stream := uniqueName("delayed-refused")
	// The stream key holds a string: Redis refuses the XADD.
	if err := client.Set(ctx, stream, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.ZAdd(ctx, redis.DelayedKey(stream), goredis.Z{Score: 1, Member: "u1;4:name,1:x,7:payload,0:,"}).Err(); err != nil {
		t.Fatal(err)
	}
	moved, dead, stuck, err := redis.MoveDueOnce(ctx, client, stream, 10, -1)
	if err != nil || moved != 0 || len(dead) != 1 || len(stuck) != 0 {
		t.Fatalf("MoveDueOnce = %d moved, dead %q, stuck %q, %v; want the member dead-lettered", moved, dead, stuck, err)
	}
	if !strings.Contains(dead[0], "XADD refused: WRONGTYPE") {
		t.Errorf("reason %q, want Redis's refusal", dead[0])
	}
	if n, _ := client.XLen(ctx, redis.DeadKey(stream)).Result(); n != 1 {
		t.Errorf("dead-letter stream holds %d entries, want 1", n)
	}
	if n, _ := client.ZCard(ctx, redis.DelayedKey(stream)).Result(); n != 0 {
		t.Errorf("delayed set holds %d members, want 0", n)
	}
}

func TestDelayedGarbageThatCannotBeDeadLetteredDoesNotHoldUpTheRest(t *testing.T) {
	client := newClient(t, server.Addr)
	ctx := context.Background()
	stream := uniqueName("delayed-stuck")
	key := redis.DelayedKey(stream)
	// The dead-letter key holds a string: garbage must stay in the set,
	// reported, while the events behind it move.
	if err := client.Set(ctx, redis.DeadKey(stream), "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"junk-1", "junk-2", "junk-3"} {
		if err := client.ZAdd(ctx, key, goredis.Z{Score: 1, Member: m}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	want := []pubsub.Event{pubsub.NewEvent(ctx, "later", []byte("a")), pubsub.NewEvent(ctx, "later", []byte("b"))}
	if err := newPublisher(t, client, stream).EmitAt(ctx, time.Now().Add(100*time.Millisecond), want...); err != nil {
		t.Fatal(err)
	}
	rec := pubsubtest.NewRecorder()
	var log errorLog
	subscribe(t, client, redis.SubscriberConfig{
		Streams: []string{stream}, Group: "g", BatchSize: 2, DelayedPoll: 5 * time.Millisecond,
	}, rec.Handle, log.handle)
	rec.WaitForN(t, len(want), wait)
	eventually(t, "reports of the members left in the set", func() bool {
		return len(errorsWith(&log, key, "left in the set", "junk-3", "WRONGTYPE")) > 0
	})
	if n, _ := client.ZCard(ctx, key).Result(); n != 3 {
		t.Errorf("delayed set holds %d members, want the 3 that could not be dead-lettered", n)
	}
}

func TestWrongTypeDelayedKeyDoesNotStopOtherStreams(t *testing.T) {
	client := newClient(t, server.Addr)
	ctx := context.Background()
	broken, fine := uniqueName("delayed-broken"), uniqueName("delayed-fine")
	if err := client.Set(ctx, redis.DelayedKey(broken), "not a sorted set", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ev := pubsub.NewEvent(ctx, "later", []byte("still moves"))
	if err := newPublisher(t, client, fine).EmitAt(ctx, time.Now().Add(100*time.Millisecond), ev); err != nil {
		t.Fatal(err)
	}
	rec := pubsubtest.NewRecorder()
	var log errorLog
	subscribe(t, client, redis.SubscriberConfig{
		Streams: []string{broken, fine}, Group: "g", DelayedPoll: 5 * time.Millisecond,
	}, rec.Handle, log.handle)
	got := rec.WaitForN(t, 1, wait)
	if got[0].ID != ev.ID {
		t.Errorf("got %s, want %s", got[0].ID, ev.ID)
	}
	eventually(t, "the broken delayed key reported on more than one poll", func() bool {
		return len(errorsWith(&log, redis.DelayedKey(broken), "WRONGTYPE")) >= 2
	})
}

func TestEmitAtKeepsIdenticalEvents(t *testing.T) {
	client := newClient(t, server.Addr)
	ctx := context.Background()
	stream := uniqueName("delayed-twins")
	pub := newPublisher(t, client, stream)
	ev := pubsub.NewEvent(ctx, "twin", []byte("same"))
	at := time.Now().Add(200 * time.Millisecond)
	if err := pub.EmitAt(ctx, at, ev, ev); err != nil {
		t.Fatal(err)
	}
	if err := pub.EmitAt(ctx, at, ev); err != nil {
		t.Fatal(err)
	}
	if n, err := client.ZCard(ctx, redis.DelayedKey(stream)).Result(); err != nil || n != 3 {
		t.Fatalf("delayed set holds %d members (%v), want 3", n, err)
	}
	members, err := client.ZRange(ctx, redis.DelayedKey(stream), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	prefixed := regexp.MustCompile(`^u[0-9a-f]{16};2:id,`)
	for _, m := range members {
		if !prefixed.MatchString(m) {
			t.Errorf("member %.60q does not start with the documented unique prefix", m)
		}
	}
	rec := pubsubtest.NewRecorder()
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", DelayedPoll: 5 * time.Millisecond}, rec.Handle, nil)
	got := rec.WaitForN(t, 3, wait)
	for _, g := range got {
		if g.ID != ev.ID || string(g.Payload) != "same" {
			t.Errorf("got %s %q, want %s %q", g.ID, g.Payload, ev.ID, "same")
		}
	}
	if n, _ := client.XLen(ctx, stream).Result(); n != 3 {
		t.Errorf("stream holds %d entries, want 3", n)
	}
}

// TestDelayedMembersWrittenByOthersMove schedules members as another
// program would: in the format before unique prefixes, and as
// docs/wire-format.md shows.
func TestDelayedMembersWrittenByOthersMove(t *testing.T) {
	client := newClient(t, server.Addr)
	ctx := context.Background()
	stream := uniqueName("delayed-others")
	now := float64(time.Now().UnixMilli())
	for _, member := range []string{
		"2:id,6:old-id,4:name,6:legacy,7:payload,2:hi,",
		`u5f0c2b9e8d7a6143;2:id,5:evt-1,4:name,13:order.created,7:payload,14:{"order_id":7},`,
	} {
		if err := client.ZAdd(ctx, redis.DelayedKey(stream), goredis.Z{Score: now, Member: member}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	rec := pubsubtest.NewRecorder()
	var log errorLog
	subscribe(t, client, redis.SubscriberConfig{Streams: []string{stream}, Group: "g", DelayedPoll: 5 * time.Millisecond}, rec.Handle, log.handle)
	got := rec.WaitForN(t, 2, wait)
	byID := make(map[pubsub.ID]pubsub.Event)
	for _, ev := range got {
		byID[ev.ID] = ev
	}
	if ev := byID["old-id"]; ev.Name != "legacy" || string(ev.Payload) != "hi" {
		t.Errorf("got %+v, want id old-id, name legacy, payload hi", ev)
	}
	if ev := byID["evt-1"]; ev.Name != "order.created" || string(ev.Payload) != `{"order_id":7}` {
		t.Errorf("got %+v, want id evt-1, name order.created, payload {\"order_id\":7}", ev)
	}
	if errs, _ := log.snapshot(); len(errs) != 0 {
		t.Errorf("ErrorHandler got %v", errs)
	}
}

// TestDelayedGarbageOnMiniredis runs the garbage through the move script
// on miniredis too, whose Lua is another implementation.
func TestDelayedGarbageOnMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	client := newClient(t, mr.Addr())
	ctx := context.Background()
	stream := "s"
	for _, g := range garbage {
		if err := client.ZAdd(ctx, redis.DelayedKey(stream), goredis.Z{Score: 1, Member: g.member}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	valid := "u0123456789abcdef;4:name,1:x,7:payload,2:ok,"
	if err := client.ZAdd(ctx, redis.DelayedKey(stream), goredis.Z{Score: 1, Member: valid}).Err(); err != nil {
		t.Fatal(err)
	}
	moved, dead, stuck, err := redis.MoveDueOnce(ctx, client, stream, 100, 1000)
	if err != nil || moved != 1 || len(dead) != len(garbage) || len(stuck) != 0 {
		t.Fatalf("MoveDueOnce = %d moved, %d dead, stuck %q, %v; want 1 moved, %d dead", moved, len(dead), stuck, err, len(garbage))
	}
	all := strings.Join(dead, "\n")
	for _, g := range garbage {
		if !strings.Contains(all, g.reason) {
			t.Errorf("%s: no reason naming %q in\n%s", g.name, g.reason, all)
		}
	}
}

// parseMember is the member format of docs/wire-format.md, written
// again in Go: the fields of a member that the mover must move, or false
// for one it must dead-letter.
func parseMember(m string) ([]string, bool) {
	if m == "" {
		return nil, false
	}
	if m[0] < '0' || m[0] > '9' {
		i := strings.IndexByte(m, ';')
		if i < 0 || i > 64 || i == len(m)-1 {
			return nil, false
		}
		m = m[i+1:]
	}
	var fields []string
	for m != "" {
		if len(fields) == 2000 {
			return nil, false
		}
		d := 0
		for d < len(m) && d <= 10 && m[d] >= '0' && m[d] <= '9' {
			d++
		}
		if d == 0 || d > 10 || d == len(m) || m[d] != ':' {
			return nil, false
		}
		n, _ := strconv.Atoi(m[:d])
		rest := m[d+1:]
		if n >= len(rest) || rest[n] != ',' {
			return nil, false
		}
		fields, m = append(fields, rest[:n]), rest[n+1:]
	}
	return fields, len(fields)%2 == 0
}

// FuzzDelayedMember puts an arbitrary member in a delayed set of the
// package's redis-server and runs the move script once: the script must
// not fail, and the member must leave the set, moved into the stream with
// the fields it holds when it has the documented shape and dead-lettered
// whole otherwise.
func FuzzDelayedMember(f *testing.F) {
	for _, g := range garbage {
		f.Add(g.member)
	}
	f.Add("u0123456789abcdef;4:name,1:x,7:payload,0:,")
	f.Add("4:name,1:x,7:payload,3:\x00;,,")
	f.Add(";2:id,0:,")
	client := newClient(f, server.Addr)
	f.Fuzz(func(t *testing.T, member string) {
		ctx := context.Background()
		stream := uniqueName("fuzz-delayed")
		key, deadKey := redis.DelayedKey(stream), redis.DeadKey(stream)
		defer client.Del(ctx, key, stream, deadKey)
		if err := client.ZAdd(ctx, key, goredis.Z{Score: 1, Member: member}).Err(); err != nil {
			t.Fatal(err)
		}
		moved, dead, stuck, err := redis.MoveDueOnce(ctx, client, stream, 10, 100)
		if err != nil || len(stuck) != 0 || moved+len(dead) != 1 {
			t.Fatalf("MoveDueOnce(%q) = %d moved, dead %q, stuck %q, %v", member, moved, dead, stuck, err)
		}
		if n, err := client.ZCard(ctx, key).Result(); err != nil || n != 0 {
			t.Fatalf("member %q still in the set (%d, %v)", member, n, err)
		}
		fields, ok := parseMember(member)
		if ok != (moved == 1) {
			t.Fatalf("member %q: moved %d, dead %q; the format says valid=%v", member, moved, dead, ok)
		}
		if ok {
			entries, err := client.XRange(ctx, stream, "-", "+").Result()
			if err != nil || len(entries) != 1 {
				t.Fatalf("stream holds %d entries (%v), want 1", len(entries), err)
			}
			want := make(map[string]any)
			for i := 0; i < len(fields); i += 2 {
				want[fields[i]] = fields[i+1]
			}
			if fmt.Sprint(entries[0].Values) != fmt.Sprint(want) {
				t.Fatalf("member %q moved as %q, want %q", member, entries[0].Values, want)
			}
			return
		}
		entries, err := client.XRange(ctx, deadKey, "-", "+").Result()
		if err != nil || len(entries) != 1 {
			t.Fatalf("dead-letter stream holds %d entries (%v), want 1", len(entries), err)
		}
		if got := entries[0].Values["delayed_member"]; got != member {
			t.Fatalf("dead letter holds %q, want %q", got, member)
		}
		if !strings.HasPrefix(dead[0], "delayed member: ") {
			t.Fatalf("reason %q", dead[0])
		}
	})
}
