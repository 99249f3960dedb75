package webhook

import (
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/pubsub"
)

func TestFilterBadInput(t *testing.T) {
	tests := []struct {
		name, src, payload string
		match              bool
		fails              string // part of the run-time error; "" when none
	}{
		{"missing keys read as nil", `data.a.b.c == nil and data["x"][3] == nil`, `{}`, true, ""},
		{"missing key compared", `data.body.x == 1`, `{"headers":{}}`, false, ""},
		{"divide by zero", `1 / data.n > 0`, `{"n":0}`, true, ""}, // expr divides as floats: +Inf
		{"integer modulo by zero", `7 % event.attempts == 0`, `{}`, false, "integer divide by zero"},
		{"wrong type", `data.s > 5`, `{"s":"text"}`, false, "invalid operation"},
		{"not JSON", `data == nil and event.name == "n"`, "\xff\xfe not json", true, ""},
		{"empty payload", `data == nil`, ``, true, ""},
		{"huge range (memory budget)", `len(1..100000000 | map(# * 2)) > 0`, `{}`, false, "memory budget exceeded"},
		{"nested loops (memory budget)", `any(1..100000, {any(1..100000, {# < 0})})`, `{}`, false, "memory budget exceeded"},
		{"string index", `data["a"]["b"] == 1`, `[1,2]`, false, "invalid operation"},

		// A comparison with a nil operand is false, without an error.
		{"missing > number", `data.total > 100`, `{}`, false, ""},
		{"missing < number", `data.total < 100`, `{}`, false, ""},
		{"number <= missing", `100 <= data.total`, `{"total":null}`, false, ""},
		{"missing >= missing", `data.a >= data.b`, `{}`, false, ""},
		{"not JSON > number", `data > 1`, `not json`, false, ""},
		{"missing startsWith", `data.s startsWith "a"`, `{}`, false, ""},
		{"endsWith missing", `"abc" endsWith data.s`, `{}`, false, ""},
		{"missing contains", `data.s contains "a"`, `{}`, false, ""},
		{"missing matches", `data.s matches "^a"`, `{}`, false, ""},
		{"matches a missing pattern", `"abc" matches data.re`, `{}`, false, ""},
		{"missing in list", `data.s in ["a", "b"]`, `{}`, false, ""},
		{"in a missing list", `"a" in data.list`, `{}`, false, ""},
		{"nil in a list holding nil", `data.s in data.list`, `{"list":[null]}`, false, ""},
		{"the rest decides", `data.total > 100 or event.name == "n"`, `{}`, true, ""},
		{"negated", `not (data.total > 100)`, `{}`, true, ""},
		{"not in", `data.s not in ["a"]`, `{}`, true, ""},
		{"inside a predicate", `any(data.items, # > 2)`, `{"items":[1,null,3]}`, true, ""},
		{"member inside a predicate", `all(data.items, #.n > 0)`, `{"items":[{"n":1},{}]}`, false, ""},
		{"nested", `(data.a > 1) in [false] and data.b.c startsWith "x"`, `{"b":{"c":"xy"}}`, true, ""},
		{"a filter within a comparison", `len(filter(data.items, # > 1)) > 1`, `{"items":[1,2,3]}`, true, ""},

		// With values, the comparisons work as before.
		{"number > number", `data.total > 100`, `{"total":150}`, true, ""},
		{"string startsWith", `data.s startsWith "ab"`, `{"s":"abc"}`, true, ""},
		{"string matches", `data.s matches "^a.c$"`, `{"s":"abc"}`, true, ""},
		{"in a list", `"b" in data.list`, `{"list":["a","b"]}`, true, ""},
		{"in a map", `"k" in data`, `{"k":0}`, true, ""},
		{"dates", `event.created_at < now()`, `{}`, true, ""},
		{"attempts", `event.attempts >= 0 and event.attempts < 1`, `{}`, true, ""},
		{"in a long range, never built", `event.attempts in 0..100000000`, `{}`, true, ""},
		{"missing in a range", `data.n in 0..10`, `{}`, false, ""},

		// Type errors other than nil still fail.
		{"string > number", `data.s > 5`, `{"s":"text"}`, false, "invalid operation"},
		{"number startsWith", `data.n startsWith "1"`, `{"n":12}`, false, "interface conversion"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := CompileFilter(tc.src)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			ok, err := runFilter(p, filterEnv(pubsub.Event{ID: "e", Name: "n", Payload: []byte(tc.payload)}))
			if tc.fails != "" {
				if err == nil || !strings.Contains(err.Error(), tc.fails) {
					t.Fatalf("run = %v, %v; want an error saying %q", ok, err, tc.fails)
				}
				return
			}
			if err != nil || ok != tc.match {
				t.Fatalf("run = %v, %v; want %v", ok, err, tc.match)
			}
		})
	}
	// What the checker refuses at compile time it still refuses: only an
	// operand that may be nil is guarded.
	for _, src := range []string{`event.attempts > "x"`, `event.name > 1`, `event.created_at startsWith "2"`} {
		if _, err := CompileFilter(src); err == nil {
			t.Errorf("%s compiled", src)
		}
	}
	for _, src := range []string{strings.Repeat("1 + ", 3000) + "1 > 0", strings.Repeat("(", 100000)} {
		if _, err := CompileFilter(src); err == nil {
			t.Errorf("a filter of %d bytes compiled; the node limit should refuse it", len(src))
		}
	}
}
