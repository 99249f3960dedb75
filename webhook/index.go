package webhook

import (
	"slices"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// The index finds, for an event, the few subscriptions that may match it
// without running every filter. A filter whose top level is a conjunction
// (A && B && …) with a condition "path == literal" or "path in [literals]"
// (in either order, path one of data.a.b… or event.id, event.name,
// event.correlation_id, event.attempts, event.dry_run) can only accept an
// event whose value at path is one of those literals: such a subscription
// is filed under the path and each literal, and found by one hash lookup
// of the event's value there. The filter still runs on what the lookup
// finds, so the index only ever skips subscriptions whose filter would
// say no. Every other subscription is tried in turn, as before.

// indexValue is a literal a filter compares a path with, in a form where
// values expr finds equal are equal Go values: every number is a float64
// (expr compares an int with a float64 as float64s; JSON numbers decode
// to float64).
type indexValue struct {
	kind byte // 's' string, 'n' number, 'b' bool
	s    string
	n    float64
	b    bool
}

// indexValueOf returns v's indexValue; ok is false for a value no literal
// can equal (nil, maps, arrays, other types).
func indexValueOf(v any) (indexValue, bool) {
	switch v := v.(type) {
	case string:
		return indexValue{kind: 's', s: v}, true
	case float64:
		return indexValue{kind: 'n', n: v}, true
	case int:
		return indexValue{kind: 'n', n: float64(v)}, true
	case bool:
		return indexValue{kind: 'b', b: v}, true
	}
	return indexValue{}, false
}

// literalOf returns the value of a literal node.
func literalOf(n ast.Node) (indexValue, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return indexValueOf(n.Value)
	case *ast.IntegerNode:
		return indexValueOf(n.Value)
	case *ast.FloatNode:
		return indexValueOf(n.Value)
	case *ast.BoolNode:
		return indexValueOf(n.Value)
	}
	return indexValue{}, false
}

// condition is "the value at path is one of values", implied by a filter.
type condition struct {
	segs   []string
	values []indexValue
}

// eventFields are the fields of FilterEvent a condition may name, by
// their expr names.
var eventFields = map[string]bool{"id": true, "name": true, "correlation_id": true, "attempts": true, "dry_run": true}

// filterCondition returns the first condition a filter's top-level
// conjunction implies; ok is false when it implies none the index can use.
func filterCondition(src string) (condition, bool) {
	if src == "" {
		return condition{}, false
	}
	tree, err := parser.Parse(src)
	if err != nil {
		return condition{}, false
	}
	return firstCondition(tree.Node)
}

func firstCondition(n ast.Node) (condition, bool) {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return condition{}, false
	}
	switch b.Operator {
	case "and", "&&":
		if c, ok := firstCondition(b.Left); ok {
			return c, true
		}
		return firstCondition(b.Right)
	case "==":
		if segs, ok := pathOf(b.Left); ok {
			if v, ok := literalOf(b.Right); ok {
				return newCondition(segs, v), true
			}
		}
		if segs, ok := pathOf(b.Right); ok {
			if v, ok := literalOf(b.Left); ok {
				return newCondition(segs, v), true
			}
		}
	case "in":
		segs, ok := pathOf(b.Left)
		arr, isArr := b.Right.(*ast.ArrayNode)
		if !ok || !isArr || len(arr.Nodes) == 0 {
			return condition{}, false
		}
		c := newCondition(segs)
		for _, e := range arr.Nodes {
			v, ok := literalOf(e)
			if !ok {
				return condition{}, false // [x, nil] or [x, y.z]: not an index
			}
			c.values = append(c.values, v)
		}
		return c, true
	}
	return condition{}, false
}

func newCondition(segs []string, values ...indexValue) condition {
	return condition{segs: segs, values: values}
}

// pathOf returns the segments of data.a.b… or event.<field>, written with
// dots, brackets or "?.".
func pathOf(n ast.Node) ([]string, bool) {
	var rev []string
	for {
		if c, ok := n.(*ast.ChainNode); ok {
			n = c.Node
		}
		switch m := n.(type) {
		case *ast.MemberNode:
			p, ok := m.Property.(*ast.StringNode)
			if !ok || m.Method {
				return nil, false
			}
			rev = append(rev, p.Value)
			n = m.Node
			continue
		case *ast.IdentifierNode:
			if len(rev) == 0 || m.Value != "data" && m.Value != "event" {
				return nil, false
			}
			if m.Value == "event" && (len(rev) != 1 || !eventFields[rev[0]]) {
				return nil, false
			}
			segs := []string{m.Value}
			for i := len(rev) - 1; i >= 0; i-- {
				segs = append(segs, rev[i])
			}
			return segs, true
		}
		return nil, false
	}
}

// valueAt returns the indexValue at segs in env, false when there is none.
func valueAt(env *FilterEnv, segs []string) (indexValue, bool) {
	if segs[0] == "event" {
		switch segs[1] {
		case "id":
			return indexValueOf(env.Event.ID)
		case "name":
			return indexValueOf(env.Event.Name)
		case "correlation_id":
			return indexValueOf(env.Event.CorrelationID)
		case "attempts":
			return indexValueOf(env.Event.Attempts)
		case "dry_run":
			return indexValueOf(env.Event.DryRun)
		}
		return indexValue{}, false
	}
	v := env.Data
	for _, s := range segs[1:] {
		m, ok := v.(map[string]any)
		if !ok {
			return indexValue{}, false
		}
		if v, ok = m[s]; !ok {
			return indexValue{}, false
		}
	}
	return indexValueOf(v)
}

// bucket holds the enabled routes of one topic (or prefix pattern, or
// "*"): those the index files by a condition, and the rest.
type bucket struct {
	size  int      // routes in it
	scan  []*route // routes without a condition: each is tried
	paths []*pathIndex
}

// pathIndex files routes by the value their filter requires at one path.
type pathIndex struct {
	segs   []string
	values map[indexValue][]*route
}

func (bk *bucket) add(rt *route) {
	bk.size++
	c := rt.cond
	if c == nil {
		bk.scan = append(bk.scan, rt)
		return
	}
	var pi *pathIndex
	for _, p := range bk.paths {
		if slices.Equal(p.segs, c.segs) {
			pi = p
			break
		}
	}
	if pi == nil {
		pi = &pathIndex{segs: c.segs, values: map[indexValue][]*route{}}
		bk.paths = append(bk.paths, pi)
	}
	seen := map[indexValue]bool{}
	for _, v := range c.values {
		if !seen[v] { // [1, 1.0] files it once
			seen[v] = true
			pi.values[v] = append(pi.values[v], rt)
		}
	}
}

// candidates appends to out the routes of bk that may match the event of
// env, which it builds (decoding the payload) only when a path or a
// filter needs it.
func (bk *bucket) candidates(out []*route, env func() *FilterEnv) []*route {
	out = append(out, bk.scan...)
	for _, p := range bk.paths {
		if v, ok := valueAt(env(), p.segs); ok {
			out = append(out, p.values[v]...)
		}
	}
	return out
}
