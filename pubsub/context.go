package pubsub

import "context"

type correlationKey struct{}
type dryRunKey struct{}

// WithCorrelationID returns a context that carries id as the correlation ID
// for events made with [NewEvent].
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID returns the correlation ID carried by ctx, or "".
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

// WithDryRun returns a context whose events, made with [NewEvent], are
// marked as dry runs ([Meta.IsDryRun]) when dryRun is true.
func WithDryRun(ctx context.Context, dryRun bool) context.Context {
	return context.WithValue(ctx, dryRunKey{}, dryRun)
}

// IsDryRun reports whether ctx asks for dry-run events.
func IsDryRun(ctx context.Context) bool {
	v, _ := ctx.Value(dryRunKey{}).(bool)
	return v
}

// HandlerContext returns the context a backend hands to the handler of ev:
// ctx with ev's correlation ID and dry-run flag, so that events made while
// handling ev continue its flow. It adds nothing when ev has neither.
func HandlerContext(ctx context.Context, ev Event) context.Context {
	if ev.Meta.CorrelationID == "" && !ev.Meta.IsDryRun {
		return ctx
	}
	return &eventContext{Context: ctx, correlationID: ev.Meta.CorrelationID, dryRun: ev.Meta.IsDryRun}
}

// eventContext carries both values in one allocation, on the hot path of
// every delivery.
type eventContext struct {
	context.Context
	correlationID string
	dryRun        bool
}

func (c *eventContext) Value(key any) any {
	switch key {
	case correlationKey{}:
		if c.correlationID != "" {
			return c.correlationID
		}
	case dryRunKey{}:
		if c.dryRun {
			return true
		}
	}
	return c.Context.Value(key)
}
