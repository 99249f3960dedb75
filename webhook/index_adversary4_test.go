package webhook

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/expr-lang/expr/vm"

	"github.com/switchyard-go/switchyard/pubsub"
)

// Nastier than TestIndexedMatchEqualsEveryFilterRun: payloads written as
// raw JSON (duplicated keys, exponents, -0, integers beyond 2^53, 1e309,
// keys with dots, NUL bytes and non-ASCII letters, nested arrays, JSON
// that is not an object, not JSON at all), literals in every spelling
// expr has (hex, underscores, exponents, huge integers), and filters that
// wrap an indexable condition in something that is not a conjunction
// (not, !, ??, let, ternaries, closures, or, comparisons with booleans),
// or compare with nil, an empty array, a variable, another path. The
// index must still only skip what the filter refuses.
func TestIndexedMatchEqualsEveryFilterRunOnNastyInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	topics := []string{"order.created", "order.*", "order..*", "o.*", "*", "a.b.", "order.created.*", "é.*", "é.x"}
	var subs []Subscription
	for i := 0; len(subs) < 800; i++ {
		s := Subscription{ID: fmt.Sprintf("s%d", i), Topic: topics[rng.IntN(len(topics))], URL: "http://127.0.0.1:1/x",
			Filter: nastyFilter(rng), Disabled: rng.IntN(25) == 0}
		if Compile(s) != nil {
			continue
		}
		subs = append(subs, s)
	}
	b, err := New(Config{Subscriber: nopSubscriber{}, Publisher: nopDelayed{}, Subscriptions: subs})
	if err != nil {
		t.Fatal(err)
	}
	tab := b.table.Load()
	progs := map[string]*vm.Program{}
	indexed := 0
	for _, s := range subs {
		if progs[s.ID], err = CompileFilter(s.Filter); err != nil {
			t.Fatal(err)
		}
		if tab.byID[s.ID].cond != nil {
			indexed++
		}
	}
	t.Logf("%d subscriptions, %d indexed", len(subs), indexed)
	names := []string{"order.created", "order.created.v2", "order..x", "order.", "order", "o.x", "a.b.", "a.b", "é.x", "é.y", "x"}
	matched := 0
	for n := range 1000 {
		ev := pubsub.Event{ID: pubsub.ID([]string{"e1", "1", "é", ""}[rng.IntN(4)]), Name: pubsub.Name(names[rng.IntN(len(names))]),
			Meta:    pubsub.Meta{Attempts: rng.IntN(3), CorrelationID: []string{"", "c1", "1"}[rng.IntN(3)], IsDryRun: rng.IntN(2) == 0},
			Payload: []byte(nastyPayloads[rng.IntN(len(nastyPayloads))])}
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
			var missing, extra []string
			for _, id := range want {
				if !slices.Contains(gotIDs, id) {
					missing = append(missing, id+": "+tab.byID[id].sub.Filter)
				}
			}
			for _, id := range gotIDs {
				if !slices.Contains(want, id) {
					extra = append(extra, id+": "+tab.byID[id].sub.Filter)
				}
			}
			t.Fatalf("event %d %q %q: the index missed %q and added %q", n, ev.Name, ev.Payload, missing, extra)
		}
		if filteredOut != topical-len(want) {
			t.Fatalf("event %q: filteredOut %d, want %d", ev.Name, filteredOut, topical-len(want))
		}
		if len(want) > 0 {
			matched++
		}
	}
	if matched < 300 {
		t.Fatalf("only %d events matched anything", matched)
	}
}

var nastyPayloads = []string{
	`{"a":1,"a":2}`, `{"a":2,"a":1}`, `{"a":1e2}`, `{"a":1E+2}`, `{"a":100.0}`, `{"a":100}`, `{"a":-0}`, `{"a":-0.0}`, `{"a":0}`,
	`{"a":9007199254740993}`, `{"a":9007199254740992}`, `{"a":1e309}`, `{"a":1e309,"b":{"c":"a"}}`, `{"a.b":"x"}`, `{"a":{"b":"x"}}`,
	`{"é":"é"}`, `{"e\u0301":"é"}`, `{"\u0000k":1}`, `{"k\u0000":1}`, `{"a":"1"}`, `{"a":[1]}`, `{"a":[[1]]}`, `{"a":null}`,
	`[{"a":1}]`, `"a"`, `1`, `null`, `not json`, ``, `{"a":true}`, `{"a":false}`, `{"b":{"c":"a","c":"b"}}`, `{"b":{"c":"b","c":"a"}}`,
	`{"a":0.1}`, `{"a":1.0000000000000001}`, `{"a":"\ud800"}`, `{"a":"a"}`, `{"a":""}`, `{"a":1,"b":1}`, `{"a":1,"b":{"c":1}}`,
	`{"arr":[1,"a"],"a":1}`, `{"a":{"b":{"c":1}}}`, `{"a":1}`, `{"a":1.5}`, `{"A":1}`, `{"a":"é"}`, `{"a":"a.b"}`, `{"a":"\u0000"}`,
	`{"a":1} trailing`, `{"a":0.30000000000000004}`, `{"a":3e-1}`,
}

func nastyLiteral(rng *rand.Rand) string {
	return []string{`"a"`, `""`, `"é"`, `"e\u0301"`, `"a.b"`, `"\u0000"`, `"1"`, `"x"`, "0", "1", "2", "100", "0x64", "1_00", "1e2", "100.0",
		"9007199254740993", "9007199254740992", "0.0", "0.1", "3e-1", "1.5", "true", "false", "nil", "-0.0", "-1"}[rng.IntN(27)]
}

func nastyPath(rng *rand.Rand) string {
	return []string{"data.a", "data?.a", `data["a"]`, `data["a.b"]`, "data.a.b", `data["é"]`, `data["e\u0301"]`, `data["\u0000k"]`,
		`data["k\u0000"]`, "data.b.c", "data.b?.c", `data["b"]["c"]`, "data.arr", "data.A", "event.name", "event.id", "event.attempts",
		"event.correlation_id", "event.dry_run"}[rng.IntN(19)]
}

func nastyCondition(rng *rand.Rand) string {
	p, l := nastyPath(rng), nastyLiteral(rng)
	switch rng.IntN(9) {
	case 0:
		return l + " == " + p
	case 1, 2:
		var ls []string
		for range rng.IntN(4) {
			ls = append(ls, nastyLiteral(rng))
		}
		return p + " in [" + strings.Join(ls, ", ") + "]"
	default:
		return p + " == " + l
	}
}

func nastyFilter(rng *rand.Rand) string {
	c := func() string { return nastyCondition(rng) }
	conj := func() string {
		parts := []string{c()}
		for rng.IntN(2) == 0 {
			parts = append(parts, c())
		}
		return strings.Join(parts, []string{" and ", " && "}[rng.IntN(2)])
	}
	switch rng.IntN(22) {
	case 0:
		return "not (" + conj() + ")"
	case 1:
		return "!(" + conj() + ")"
	case 2:
		return "(" + conj() + ") ?? false"
	case 3:
		return "let x = " + nastyPath(rng) + "; x == " + nastyLiteral(rng) + " and " + c()
	case 4:
		return c() + " ? " + c() + " : " + c()
	case 5:
		return "all([1, 2], {" + c() + "})"
	case 6:
		return "any(data.arr ?? [], {# == 1}) and " + c()
	case 7:
		return nastyPath(rng) + " in []"
	case 8:
		return nastyPath(rng) + " in [" + nastyPath(rng) + ", " + nastyLiteral(rng) + "]"
	case 9:
		return c() + " and " + c() + " or " + c()
	case 10:
		return c() + " or " + c() + " and " + c()
	case 11:
		return "(" + c() + ") and ((" + c() + "))"
	case 12:
		return nastyPath(rng) + " == nil and " + c()
	case 13:
		return "data.a == data.b and " + c()
	case 14:
		return "(" + conj() + ") == " + []string{"true", "false"}[rng.IntN(2)]
	case 15:
		return nastyPath(rng) + " != " + nastyLiteral(rng) + " and " + c()
	case 16:
		return nastyPath(rng) + " not in [" + nastyLiteral(rng) + "] and " + c()
	case 17:
		return "let data = {\"a\": 1}; " + c()
	case 18:
		return c() + " and (" + c() + " or true)"
	case 19:
		return "(" + c() + " ?: false) and " + c()
	default:
		return conj()
	}
}

// failObserver counts FilterFailed per subscription.
type failObserver struct {
	NopObserver
	mu     sync.Mutex
	failed map[string]int
}

func (o *failObserver) FilterFailed(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failed == nil {
		o.failed = map[string]int{}
	}
	o.failed[id]++
}

// A filter that fails at run time counts as no match, and as a failure
// every time it runs. A filter the index rules out for an event (its
// equality is false there) does not run, so what it would have failed on
// goes uncounted, as documented: the same filter, written so the index
// cannot use it, runs and is counted. The match is the same either way.
func TestIndexedFilterRuledOutIsNotRun(t *testing.T) {
	for _, tc := range []struct{ filter, payload string }{
		{`data.total > 100 and data.kind == "x"`, `{"kind": "y", "total": "abc"}`},
		{`data.kind in ["a", "b"]`, `{"kind": 5}`},
	} {
		obs := &failObserver{}
		b, err := New(Config{Subscriber: nopSubscriber{}, Publisher: nopDelayed{}, Observer: obs, Subscriptions: []Subscription{
			{ID: "indexed", Topic: "t", URL: "http://127.0.0.1:1/", Filter: tc.filter},
			{ID: "plain", Topic: "t", URL: "http://127.0.0.1:1/", Filter: "(" + tc.filter + ") == true"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		tab := b.table.Load()
		if tab.byID["indexed"].cond == nil || tab.byID["plain"].cond != nil {
			t.Fatalf("%s: the test expects the first form indexed and the second not", tc.filter)
		}
		got, filteredOut := b.match(tab, pubsub.Event{ID: "e", Name: "t", Payload: []byte(tc.payload)})
		if len(got) != 0 || filteredOut != 2 {
			t.Fatalf("%s: matched %d, filtered out %d", tc.filter, len(got), filteredOut)
		}
		if obs.failed["plain"] != 1 {
			t.Fatalf("%s on %s: the filter run alone did not fail (%d): the test is wrong", tc.filter, tc.payload, obs.failed["plain"])
		}
		if obs.failed["indexed"] != 0 {
			t.Errorf("%s on %s: FilterFailed %d times for the subscription the index ruled out: it ran",
				tc.filter, tc.payload, obs.failed["indexed"])
		}
	}
}

// Which buckets an event's name reaches must be exactly the topics
// topicMatches accepts (the rule retries and replays use): names and
// patterns with several dots, trailing dots, empty segments, non-ASCII
// letters, the retry event's own name.
func TestTopicBucketsAgreeWithTopicMatches(t *testing.T) {
	parts := []string{"", ".", "..", "a", "a.", ".a", "é", "é.", "order", "order.", "order.created", "switchyard", "switchyard.",
		"webhook.", "retry", "*", "x.y.z", "\u00e9."}
	rng := rand.New(rand.NewPCG(7, 7))
	var topics []string
	seen := map[string]bool{}
	for range 3000 {
		tp := parts[rng.IntN(len(parts))] + parts[rng.IntN(len(parts))]
		if rng.IntN(2) == 0 {
			tp += ".*"
		}
		if checkTopic(tp) != nil || tp == "" || seen[tp] {
			continue
		}
		seen[tp] = true
		topics = append(topics, tp)
	}
	topics = append(topics, "switchyard.*", "switchyard.webhook.*", string(RetryEventName))
	var subs []Subscription
	for i, tp := range topics {
		if !seen[tp] && checkTopic(tp) != nil {
			continue
		}
		subs = append(subs, Subscription{ID: fmt.Sprintf("s%d", i), Topic: tp, URL: "http://127.0.0.1:1/"})
	}
	tab, err := compileTable(subs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 5000 {
		name := ""
		for range 1 + rng.IntN(4) {
			name += parts[rng.IntN(len(parts))]
		}
		if rng.IntN(20) == 0 {
			name = string(RetryEventName)
		}
		var got []string
		for _, bk := range tab.buckets(nil, name) {
			for _, rt := range bk.scan {
				got = append(got, rt.sub.ID)
			}
		}
		var want []string
		for _, s := range subs {
			if topicMatches(s.Topic, name) {
				want = append(want, s.ID)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("name %q: buckets give %v, topicMatches %v", name, got, want)
		}
	}
}
