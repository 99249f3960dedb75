package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/switchyard-go/switchyard/pubsub"
)

// FilterEnv is what a filter sees: the payload decoded as JSON (nil when it
// is not JSON) and the event's attributes.
type FilterEnv struct {
	// Data is the payload decoded as JSON, nil when it is not JSON.
	Data any `expr:"data"`
	// Event is the event's attributes.
	Event FilterEvent `expr:"event"`
}

// FilterEvent is the event as a filter sees it.
type FilterEvent struct {
	// ID is the event's ID.
	ID string `expr:"id"`
	// Name is the event's name.
	Name string `expr:"name"`
	// Attempts is the event's Meta.Attempts: the earlier failed attempts
	// at handling it.
	Attempts int `expr:"attempts"`
	// CorrelationID is the event's correlation ID, "" when it has none.
	CorrelationID string `expr:"correlation_id"`
	// CreatedAt is when the event was made, in UTC.
	CreatedAt time.Time `expr:"created_at"`
	// DryRun is true for events marked as dry runs.
	DryRun bool `expr:"dry_run"`
}

const (
	// filterMaxNodes bounds a filter's size, and so its evaluation time
	// over a given payload.
	filterMaxNodes = 2000
	// filterMemoryBudget bounds what one evaluation may allocate (ranges,
	// maps, filters over arrays), so no filter can stall delivery.
	filterMemoryBudget = 100_000
)

// nilSafe makes every member access optional, as if written "?.": a
// missing key reads as nil instead of failing the whole filter. And it
// makes the comparisons that fail on nil (<, >, <=, >=, startsWith,
// endsWith, contains, matches, in) false when an operand is nil at run
// time, so that data.total > 100 is simply false when total is missing.
type nilSafe struct {
	vars int // operands bound so far, for unique variable names
}

// nilFalseOps are the operators nilSafe makes false on a nil operand.
var nilFalseOps = map[string]bool{
	"<": true, ">": true, "<=": true, ">=": true,
	"startsWith": true, "endsWith": true, "contains": true, "matches": true, "in": true,
}

// Visit is called on each node after its children, with the types the
// checker gave them before the patch.
func (v *nilSafe) Visit(n *ast.Node) {
	switch node := (*n).(type) {
	case *ast.MemberNode:
		if !node.Method {
			node.Optional = true
			ast.Patch(n, &ast.ChainNode{Node: node})
		}
	case *ast.BinaryNode:
		if nilFalseOps[node.Operator] {
			v.guard(n, node)
		}
	}
}

// guard rewrites "L op R", where L or R may be nil, as
//
//	let l = L; let r = R; l == nil or r == nil ? false : l op r
//
// binding only the operands that may be nil, so each is evaluated once.
// The names cannot be written in a filter (they hold spaces).
func (v *nilSafe) guard(n *ast.Node, b *ast.BinaryNode) {
	type binding struct {
		name  string
		value ast.Node
	}
	var (
		bound  []binding
		isNil  ast.Node
		result = &ast.BinaryNode{Operator: b.Operator, Left: b.Left, Right: b.Right}
	)
	for _, operand := range []*ast.Node{&result.Left, &result.Right} {
		if !mayBeNil(*operand) {
			continue
		}
		name := fmt.Sprintf("nil-safe operand %d", v.vars)
		v.vars++
		bound = append(bound, binding{name, *operand})
		*operand = &ast.IdentifierNode{Value: name}
		check := ast.Node(&ast.BinaryNode{Operator: "==", Left: &ast.IdentifierNode{Value: name}, Right: &ast.NilNode{}})
		if isNil != nil {
			check = &ast.BinaryNode{Operator: "or", Left: isNil, Right: check}
		}
		isNil = check
	}
	if len(bound) == 0 {
		return
	}
	var out ast.Node = &ast.ConditionalNode{Cond: isNil, Exp1: &ast.BoolNode{Value: false}, Exp2: result}
	for i := len(bound) - 1; i >= 0; i-- { // the left operand is evaluated first, as before
		out = &ast.VariableDeclaratorNode{Name: bound[i].name, Value: bound[i].value, Expr: out}
	}
	ast.Patch(n, out)
}

// mayBeNil reports whether n may be nil at run time: a nil literal, or a
// value whose static type is an interface (what JSON decodes to), a
// pointer, a map or a slice, or is unknown.
func mayBeNil(n ast.Node) bool {
	if c, ok := n.(*ast.ChainNode); ok {
		n = c.Node // patched above; the member keeps its type
	}
	switch n := n.(type) {
	case *ast.NilNode:
		return true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.StringNode, *ast.BytesNode, *ast.ConstantNode,
		*ast.ArrayNode, *ast.MapNode:
		return false
	case *ast.BinaryNode:
		if n.Operator == ".." {
			return false // a range, never nil; left in place, expr tests "x in 1..n" without building it
		}
	}
	t := n.Type()
	if t == nil {
		return true
	}
	switch t.Kind() {
	case reflect.Interface, reflect.Pointer, reflect.Map, reflect.Slice:
		return true
	}
	return false
}

// CompileFilter compiles an expr-lang filter to a program returning bool,
// with nil-safe member access. An empty source matches everything (nil
// program).
func CompileFilter(src string) (*vm.Program, error) {
	if src == "" {
		return nil, nil
	}
	p, err := expr.Compile(src,
		expr.Env(FilterEnv{}),
		expr.AsBool(),
		expr.Patch(&nilSafe{}),
		expr.MaxNodes(filterMaxNodes),
	)
	return p, oneLine(err)
}

// oneLine turns expr's error, which draws the source with a caret below,
// into one line that names the position.
func oneLine(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return fmt.Errorf("%s (line %d, column %d)", fe.Message, fe.Line, fe.Column+1)
	}
	return err
}

// filterEnv builds the environment for ev; the payload is decoded once per
// event and shared by every filter.
func filterEnv(ev pubsub.Event) FilterEnv {
	var data any
	if len(ev.Payload) > 0 && json.Valid(ev.Payload) {
		_ = json.Unmarshal(ev.Payload, &data)
	}
	return FilterEnv{Data: data, Event: FilterEvent{
		ID: string(ev.ID), Name: string(ev.Name), Attempts: ev.Meta.Attempts,
		CorrelationID: ev.Meta.CorrelationID, CreatedAt: ev.Meta.CreatedAtUTC, DryRun: ev.Meta.IsDryRun,
	}}
}

// runFilter evaluates p against env within the memory budget.
func runFilter(p *vm.Program, env FilterEnv) (bool, error) {
	if p == nil {
		return true, nil
	}
	machine := vm.VM{MemoryBudget: filterMemoryBudget}
	out, err := machine.Run(p, env)
	if err != nil {
		return false, oneLine(err)
	}
	ok, isBool := out.(bool)
	if !isBool {
		return false, fmt.Errorf("filter returned %T, not bool", out)
	}
	return ok, nil
}
