package webhook

import (
	"testing"

	"github.com/switchyard-go/switchyard/pubsub"
)

// FuzzFilter compiles arbitrary filters and runs the ones that compile
// against arbitrary payloads: no panic, and a result that is a match, a
// non-match or an error.
func FuzzFilter(f *testing.F) {
	for _, seed := range []struct{ src, data string }{
		{`data["body"]["x"] == 1 and data["headers"]["y"] == "z"`, `{"body":{"x":1},"headers":{"y":"z"}}`},
		{`data.a.b.c == nil`, `[1,2,3]`},
		{`1 / data.n > 0`, `{"n":0}`},
		{`len(data.items) > 2 && all(data.items, # > 0)`, `{"items":[1,2,3]}`},
		{`1..100000000 | map(# * 2) | len() > 0`, `{}`},
		{`event.name startsWith "order." or event.attempts > 3`, `not json`},
		{`data matches "^a+$"`, `"aaaa"`},
		{`data["x"]["y"]["z"][0][1]`, `{"x":{"y":{"z":[[0,true]]}}}`},
		{`data.total > 100 or data.s startsWith "a" or "b" in data.l`, `{"l":null}`},
		{`any(data.items, # >= 2 and #.x contains "y") and data.r matches data.p`, `{"items":[1,{"x":"y"},null]}`},
		{`(data.a < data.b) in [true] and event.attempts in 0..10`, `[]`},
	} {
		f.Add(seed.src, []byte(seed.data))
	}
	f.Fuzz(func(t *testing.T, src string, data []byte) {
		p, err := CompileFilter(src)
		if err != nil || p == nil {
			return
		}
		env := filterEnv(pubsub.Event{ID: "e", Name: "order.created", Payload: data})
		if ok, err := runFilter(p, env); ok && err != nil {
			t.Fatalf("filter %q both matched and failed: %v", src, err)
		}
	})
}
