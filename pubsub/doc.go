// Package pubsub is the contract that event-driven services import: an
// [Event], a [Publisher] that emits events, and a [Subscriber] that hands
// them to a [Handler]. Services depend on this package only; a backend
// (package memory for tests and single processes, package redis for
// production) is chosen once, where the program is wired together.
//
// Backend authors implement [Publisher], [Subscriber] and, where they can
// schedule events durably, [DelayedPublisher], and prove the semantics below
// by running the conformance suite in package pubsubtest.
//
// # Events
//
// An [Event] has an [ID] (a UUIDv7 from [NewEvent]), a [Name] that routes it,
// [Meta] data and an opaque payload. Backends carry every field byte for
// byte: the payload is never re-encoded.
//
// The ID, the name and the correlation ID are text: [Event.Validate], which
// every backend's Emit applies, refuses invalid UTF-8 and control
// characters (U+0000–U+001F, U+007F–U+009F) in them, since consumers put
// them in headers, log lines and keys, where a newline breaks the line
// and forges the next. Backends that read events written by other
// programs (package redis reads stream entries) treat an entry that
// Validate refuses as poison: dead-lettered with the reason, never handed
// to a handler.
//
// # Delivery semantics
//
// Every backend guarantees the same things:
//
//   - At-least-once. An event is acknowledged only after its handler returned
//     nil, or after it was given up on and recorded as dead. Handlers must
//     therefore be idempotent, keyed by [Event.ID].
//   - Consumer groups. Subscribers that share a group split the events
//     between them; every group gets every event. A subscriber may limit
//     its group to a set of event names.
//   - Retries. A handler error (or panic, which is turned into a
//     [*PanicError]) means redelivery after a backoff, with [Meta.Attempts]
//     one higher, up to the subscriber's maximum number of attempts. After
//     the last one the event is recorded in a dead-letter place with the
//     reason, and the [ErrorHandler] is called with a [*DeadLetterError]. An
//     error that wraps [ErrPermanent] skips the remaining attempts.
//   - Deadlines. Each handler runs with a deadline on its context (the
//     subscriber's handler timeout, one minute by default). A handler that
//     ignores it is abandoned a grace period later (a quarter of the
//     timeout, at most 5s) without stalling the consumer: the run counts
//     as a failed attempt, and an event whose handler hangs on every
//     delivery (or, with a durable backend, crashes the process) is
//     dead-lettered after the maximum number of attempts instead of being
//     handed to a handler again.
//   - Errors that concern no single event (a lost connection, an entry that
//     cannot be decoded) reach the [ErrorHandler] with a nil event, or with
//     the partly decoded one, and consuming goes on.
//   - Ordering. For a single consumer handling one event at a time, events
//     arrive in the order they were emitted to a stream. Retries, several
//     consumers or concurrent handlers give up that order.
//   - Delayed emit. A [DelayedPublisher] makes an event visible no earlier
//     than a given time; a durable backend keeps scheduled events across a
//     restart.
//
// # Lifecycle
//
// [Subscriber.Consume] blocks until its context is done or the subscriber is
// closed, and returns only after the handlers it started have returned or
// have been abandoned past their deadline and grace period. Close is safe
// to call more than once and waits for work in flight within that same
// bound. Emit after Close returns [ErrClosed].
//
// # Context
//
// [NewEvent] takes the correlation ID and the dry-run flag from the context
// ([WithCorrelationID], [WithDryRun]). Backends hand each handler a context
// that carries the consumed event's correlation ID and dry-run flag
// ([HandlerContext]), so an event emitted while handling another continues
// its correlation without any plumbing.
//
// # Tracing
//
// Trace context travels the same way, with no field of [Event]: the
// switchyard backends take the OpenTelemetry span context of the context
// given to Emit, carry it with each event (W3C Trace Context; package redis
// writes it as the traceparent and tracestate fields of each entry), and
// hand each handler a context that holds it. With a TracerProvider set
// (otel.SetTracerProvider, or the backend's TracerProvider option) they
// make the spans of the OpenTelemetry messaging conventions: a producer
// span "send <destination>" per Emit, the parent of a consumer span
// "process <destination>" per handled event (retries included), whose
// context the handler gets; with none they make no span and only pass the
// context on. The conformance suite checks the passing on (capability
// TraceContext).
package pubsub
