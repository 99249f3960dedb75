package memory

import (
	"context"
	"maps"
	"slices"

	"github.com/switchyard-go/switchyard/pubsub"
	"go.opentelemetry.io/otel/trace"
)

// envelope is an event on its way through a group, with the number of
// times the group has delivered it.
type envelope struct {
	ev         pubsub.Event
	deliveries int
	trace      *trace.SpanContext // nil: none
}

// parent returns the trace context env carries; not valid when none.
func (env envelope) parent() trace.SpanContext {
	if env.trace == nil {
		return trace.SpanContext{}
	}
	return *env.trace
}

// group is a consumer group: one queue that its subscribers share.
type group struct {
	name  string
	names map[pubsub.Name]struct{} // nil: every name
	ch    chan envelope
}

func newGroup(name string, names []pubsub.Name, buffer int) *group {
	return &group{name: name, names: nameSet(names), ch: make(chan envelope, buffer)}
}

// nameSet is the set of names, nil for none (every name).
func nameSet(names []pubsub.Name) map[pubsub.Name]struct{} {
	if len(names) == 0 {
		return nil
	}
	set := make(map[pubsub.Name]struct{}, len(names))
	for _, n := range names {
		set[n] = struct{}{}
	}
	return set
}

func (g *group) wants(n pubsub.Name) bool {
	if g.names == nil {
		return true
	}
	_, ok := g.names[n]
	return ok
}

func (g *group) nameList() []pubsub.Name {
	return slices.Sorted(maps.Keys(g.names))
}

func (g *group) sameNames(names []pubsub.Name) bool {
	return maps.Equal(g.names, nameSet(names))
}

// requeue puts env back for another delivery, waiting for room until life
// is done; an event requeued as the broker closes is dropped with it.
func (g *group) requeue(life context.Context, env envelope) {
	select {
	case g.ch <- env:
	case <-life.Done():
	}
}
