package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/switchyard-go/switchyard/pubsub"
)

// The index may only skip subscriptions whose filter would say no: over
// thousands of random filters (indexable conditions of every literal kind,
// in either order, inside conjunctions, beside conditions it cannot use)
// and random events (fields missing, null, of the wrong type, numbers as
// ints and floats), what match returns is exactly the subscriptions whose
// topic matches and whose filter, run alone, accepts the event.
func TestIndexedMatchEqualsEveryFilterRun(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	topics := []string{"order.created", "order.refund.issued", "order.*", "order.refund.*", "*", "user.created", "user.*"}
	var subs []Subscription
	for i := range 1500 {
		subs = append(subs, Subscription{
			ID: fmt.Sprintf("s%d", i), Topic: topics[rng.IntN(len(topics))], URL: "http://127.0.0.1:1/x",
			Filter: randomFilter(rng), Disabled: rng.IntN(20) == 0,
		})
	}
	b, err := New(Config{Subscriber: nopSubscriber{}, Publisher: nopDelayed{}, Subscriptions: subs})
	if err != nil {
		t.Fatal(err)
	}
	tab := b.table.Load()
	progs := map[string]*vm.Program{}
	for _, s := range subs {
		if progs[s.ID], err = CompileFilter(s.Filter); err != nil {
			t.Fatal(err)
		}
	}
	indexed := 0
	for _, rt := range tab.byID {
		if rt.cond != nil {
			indexed++
		}
	}
	if indexed < len(subs)/3 {
		t.Fatalf("only %d of %d subscriptions indexed: the generator or the index is off", indexed, len(subs))
	}
	names := []string{"order.created", "order.refund.issued", "order.refund", "order", "order.", "user.created", "other", "order.refund.issued.v2"}
	matchedSome := 0
	for n := range 1000 {
		ev := pubsub.Event{ID: pubsub.ID(fmt.Sprintf("e%d", n%7)), Name: pubsub.Name(names[rng.IntN(len(names))]),
			Meta: pubsub.Meta{Attempts: rng.IntN(3), CorrelationID: []string{"", "c1", "c2"}[rng.IntN(3)]}, Payload: randomPayload(rng)}
		got, filteredOut := b.match(tab, ev)
		var want []string
		topical := 0
		for _, s := range subs {
			if s.Disabled || !topicMatches(s.Topic, string(ev.Name)) {
				continue
			}
			topical++
			if ok, err := runFilter(progs[s.ID], filterEnv(ev)); ok && err == nil {
				want = append(want, s.ID)
			}
		}
		var gotIDs []string
		for _, rt := range got {
			gotIDs = append(gotIDs, rt.sub.ID)
		}
		slices.Sort(gotIDs)
		slices.Sort(want)
		if !slices.Equal(gotIDs, want) {
			t.Fatalf("event %s %s: index matched %v, filters accept %v", ev.Name, ev.Payload, gotIDs, want)
		}
		if filteredOut != topical-len(want) {
			t.Fatalf("event %s: filteredOut %d, want %d", ev.Name, filteredOut, topical-len(want))
		}
		if len(want) > 0 {
			matchedSome++
		}
	}
	if matchedSome < 250 {
		t.Fatalf("only %d of 1000 events matched anything: the test proves little", matchedSome)
	}
}

func randomLiteral(rng *rand.Rand) string {
	switch rng.IntN(6) {
	case 0:
		return fmt.Sprintf("%q", []string{"a", "b", "acme", ""}[rng.IntN(4)])
	case 1:
		return fmt.Sprint(rng.IntN(3))
	case 2:
		return []string{"1.0", "0.5", "2.0", "-0.0"}[rng.IntN(4)]
	case 3:
		return []string{"true", "false"}[rng.IntN(2)]
	case 4:
		return "nil"
	default:
		return `"1"`
	}
}

func randomPath(rng *rand.Rand) string {
	return []string{"data.a", "data.b.c", "data?.a", `data["a"]`, "data.b?.c", "event.name", "event.attempts", "event.correlation_id",
		"event.id", "event.dry_run", "data.arr"}[rng.IntN(11)]
}

func randomCondition(rng *rand.Rand) string {
	p, l := randomPath(rng), randomLiteral(rng)
	switch rng.IntN(7) {
	case 0:
		return l + " == " + p
	case 1:
		var ls []string
		for range 1 + rng.IntN(3) {
			ls = append(ls, randomLiteral(rng))
		}
		return p + " in [" + strings.Join(ls, ", ") + "]"
	case 2:
		return p + " != " + l
	case 3:
		return "data.n > 1"
	case 4:
		return "(" + p + " == " + l + " or data.a == \"b\")"
	default:
		return p + " == " + l
	}
}

// randomFilter returns a random filter that compiles.
func randomFilter(rng *rand.Rand) string {
	for {
		if f := randomFilterSource(rng); Compile(Subscription{ID: "x", Topic: "*", URL: "http://h/", Filter: f}) == nil {
			return f
		}
	}
}

func randomFilterSource(rng *rand.Rand) string {
	if rng.IntN(10) == 0 {
		return ""
	}
	parts := []string{randomCondition(rng)}
	for rng.IntN(2) == 0 {
		parts = append(parts, randomCondition(rng))
	}
	op := " && "
	if rng.IntN(3) == 0 {
		op = " and "
	}
	return strings.Join(parts, op)
}

func randomValue(rng *rand.Rand) any {
	switch rng.IntN(8) {
	case 0:
		return []string{"a", "b", "acme", "", "1"}[rng.IntN(5)]
	case 1:
		return rng.IntN(3)
	case 2:
		return []float64{1.0, 0.5, 2, 0}[rng.IntN(4)]
	case 3:
		return rng.IntN(2) == 0
	case 4:
		return nil
	case 5:
		return map[string]any{"c": "a"}
	case 6:
		return []any{"a", 1}
	default:
		return "zzz"
	}
}

func randomPayload(rng *rand.Rand) []byte {
	switch rng.IntN(10) {
	case 0:
		return []byte("not json")
	case 1:
		return []byte(`"a"`)
	case 2:
		return []byte(`[1,2]`)
	}
	m := map[string]any{}
	for _, k := range []string{"a", "b", "n", "arr"} {
		if rng.IntN(4) != 0 {
			m[k] = randomValue(rng)
		}
	}
	if rng.IntN(2) == 0 {
		m["b"] = map[string]any{"c": randomValue(rng)}
	}
	out, _ := json.Marshal(m)
	return out
}

type nopSubscriber struct{}

func (nopSubscriber) Consume(ctx context.Context, _ pubsub.Handler, _ pubsub.ErrorHandler) {
	<-ctx.Done()
}

func (nopSubscriber) Close() error { return nil }

type nopDelayed struct{}

func (nopDelayed) Emit(context.Context, ...pubsub.Event) error { return nil }

func (nopDelayed) Close() error { return nil }

func (nopDelayed) EmitAt(context.Context, time.Time, ...pubsub.Event) error { return nil }
