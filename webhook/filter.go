package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
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
	Data  any         `expr:"data"`
	Event FilterEvent `expr:"event"`
}

// FilterEvent is the event as a filter sees it.
type FilterEvent struct {
	ID            string    `expr:"id"`
	Name          string    `expr:"name"`
	Attempts      int       `expr:"attempts"`
	CorrelationID string    `expr:"correlation_id"`
	CreatedAt     time.Time `expr:"created_at"`
	DryRun        bool      `expr:"dry_run"`
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
// missing key reads as nil instead of failing the whole filter.
type nilSafe struct{}

func (nilSafe) Visit(n *ast.Node) {
	if m, ok := (*n).(*ast.MemberNode); ok && !m.Method {
		m.Optional = true
		ast.Patch(n, &ast.ChainNode{Node: m})
	}
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
		expr.Patch(nilSafe{}),
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
