// Package memory is an in-process backend for package pubsub: a [Broker]
// that is a [pubsub.DelayedPublisher], and its [Subscriber]s. Use it in
// tests, and in single processes that need no durability; use package
// redis where events must survive the process.
//
// It is not a global registry: every [NewBroker] is its own world, so
// parallel tests never see each other's events.
//
//	b := memory.NewBroker(memory.Options{})
//	defer b.Close()
//	sub, err := b.NewSubscriber(memory.SubscriberConfig{Group: "billing"})
//	...
//	go sub.Consume(ctx, handle, nil)
//	err = b.Emit(ctx, pubsub.NewEvent(ctx, "order.created", payload))
//
// # Semantics
//
// The broker keeps the delivery semantics of package pubsub, with these
// in-process specifics:
//
//   - A consumer group exists from the first [Broker.NewSubscriber] that
//     names it, and from then on gets every event emitted to the broker
//     (or only the names it was created with). Events emitted before it
//     existed are not kept for it. The group outlives its subscribers, so
//     a subscriber that is closed and made again continues where the group
//     stands.
//   - A subscriber with no group gets a private group of its own: every
//     such subscriber sees every event.
//   - Each group holds at most [Options.Buffer] events waiting for a
//     handler. When a group is full, Emit waits for room (back-pressure)
//     until its context is done; nothing is dropped. A group that no one
//     consumes therefore fills and then holds publishers back.
//   - Failed events are redelivered after [SubscriberConfig.Backoff], with
//     Meta.Attempts one higher, up to [SubscriberConfig.MaxAttempts]
//     deliveries; then they go to the broker's dead-letter list
//     ([Broker.DeadLetters]) and to the ErrorHandler.
//   - A handler that fails because Consume's context was cancelled is not
//     charged an attempt: its event goes back to the group at once.
//   - Handlers run under a deadline, [SubscriberConfig.HandlerTimeout]
//     (default 1m), set on their context. A handler that ignores it is
//     abandoned a grace period after it (a quarter of HandlerTimeout, at
//     most 5s): another goroutine takes its place, so a hung handler
//     stalls neither its subscriber nor the group, and the run counts as a
//     failed attempt whose error wraps [context.DeadlineExceeded]. The
//     event is retried after the backoff and, after MaxAttempts runs that
//     failed or hung, dead-lettered with a reason saying the handler did
//     not return. What an abandoned handler returns later is ignored. Its
//     goroutine is left to end by itself: there is one per hung run, and
//     none per event otherwise.
//   - Close, [Broker.Close] and a Consume whose context is cancelled
//     return within HandlerTimeout plus the grace period (and the time
//     the ErrorHandler takes): they wait for a running handler at most
//     until its deadline plus the grace period, then abandon it as above,
//     its event going back to the group as a failed attempt, for a later
//     subscriber.
//   - Nothing is durable. Events still buffered, waiting for a retry, or
//     scheduled with [Broker.EmitAt] when the broker is closed are dropped.
//   - Trace context. Each event keeps the OpenTelemetry trace context it
//     was emitted under, and its handler's context holds it; with a
//     TracerProvider ([Options.TracerProvider], else the global one) as the
//     consumer span "process memory", the child of the Emit's "send
//     memory" span.
//
// # Configuration
//
// [Options] and [SubscriberConfig] are plain structs whose zero values are
// the documented defaults; each field's doc states its default.
package memory
