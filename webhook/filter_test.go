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
	for _, src := range []string{strings.Repeat("1 + ", 3000) + "1 > 0", strings.Repeat("(", 100000)} {
		if _, err := CompileFilter(src); err == nil {
			t.Errorf("a filter of %d bytes compiled; the node limit should refuse it", len(src))
		}
	}
}
