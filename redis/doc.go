// Package redis is the production backend for package pubsub, on Redis
// Streams consumer groups with go-redis v9. A [Publisher] writes events to
// streams; a [Subscriber] consumes them through a consumer group. Both take
// a goredis.UniversalClient that the caller owns and closes; this package
// never closes it.
//
//	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
//	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: "orders"})
//	sub, err := redis.NewSubscriber(ctx, client, redis.SubscriberConfig{Streams: []string{"orders"}, Group: "billing"})
//	go sub.Consume(ctx, handle, nil)
//
// # Wire format
//
// One stream entry per event, one field per attribute (id, name, payload,
// created_at, correlation_id, attempts, dry_run, and the W3C trace context
// as traceparent and tracestate), the payload as raw bytes,
// so that any language or redis-cli can publish and read; see
// docs/wire-format.md. Unknown fields are ignored. An entry without a name
// or payload, or with an attempts, created_at or dry_run value that does
// not parse, is poison: it is copied to the dead-letter stream with the
// reason, acknowledged, reported to the ErrorHandler (an error wrapping
// pubsub.ErrMalformed, with the partly decoded event), and consuming goes
// on.
//
// # Keys
//
// A stream's key is exactly the name configured. Its helper keys share its
// Redis Cluster slot through a hash tag: for "orders", the delayed set
// "{orders}:delayed" ([DelayedKey]) and the dead-letter stream
// "{orders}:dead" ([DeadKey]); a name that already holds a tag keeps it.
// A subscriber also keeps, per group, the last position of the group it
// saw, "{orders}:group:<group>:delivered" (so that a group deleted while
// none of its consumers ran is made again there, not at Start, and never
// past the stream's last entry; a value that is not an entry ID is
// ignored; delete it with the group to start afresh). A group missing on
// some of a subscriber's streams but present on others (partitions were
// added) is made at "0" there. While it consumes, a subscriber holds a
// lease on its consumer name, "{<first stream>}:consumer:<group>:<consumer>"
// (expiring min(ClaimIdle, 10s) after the subscriber stops renewing it; a
// key there of another type or without expiry counts as lapsed).
//
// # Delivery semantics
//
//   - At-least-once: an entry is acknowledged (XACK, batched) only after
//     its handler returned nil, or after it was dead-lettered.
//   - No duplicate without a fault: while no consumer crashes, stops, hangs
//     or is cut off from Redis for ClaimIdle, no entry is handled twice and
//     Meta.Attempts is 0 on first handling. A subscriber renews its hold on
//     every entry it holds (queued for a handler, being handled, waiting
//     for a retry) every ClaimIdle/4 (at most every 3.3s) with XCLAIM
//     JUSTID, which restarts the entry's idle clock without counting a
//     delivery, so no other consumer
//     takes over an entry that merely waits; and before handing an entry
//     to a handler after a stall of ClaimIdle/2 or more it checks with
//     Redis that the entry is still its own. Every consumer of a group
//     must use the same ClaimIdle.
//   - The group is made (with MKSTREAM) by [NewSubscriber], at the end of
//     each stream or at its beginning ([SubscriberConfig.Start]). Should it
//     vanish while consuming (XGROUP DESTROY, a Redis restart without
//     persistence), it is made again, never past an entry added after the
//     group existed: at "0" when the stream is gone or empty (everything in
//     it is new), otherwise after the furthest entry the group is known to
//     have delivered (its last-delivered ID, read at start and every
//     keeper round, or an entry this subscriber read). Entries between that
//     point and where the lost group really was are delivered again.
//     Entries in hand when the group vanished are still handled, and a
//     retry of one puts it back into the pending list (XCLAIM FORCE, its
//     delivery count kept). What is lost with a vanished group: the
//     pending entries of consumers that are not running, and entries a
//     restart without persistence erased from the stream itself.
//   - Consume first claims back the entries still pending with its
//     consumer name (a restart after a crash), then reads new ones in
//     batches (XREADGROUP COUNT BatchSize BLOCK Block) for a pool of
//     Concurrency handlers. Every ClaimInterval it takes over entries idle
//     longer than ClaimIdle (XAUTOCLAIM, following its cursor): those of a
//     consumer that crashed, hung or was cut off. Every keeper round
//     (ClaimIdle/4, at most 3.3s) it also looks for entries pending with
//     its own name that it does not hold (a read whose reply was lost and
//     that go-redis silently retried, an abandoned handler) and claims
//     them back.
//   - Meta.Attempts is the attempts field of the entry plus the number of
//     earlier deliveries that Redis counted for it (saturating, never
//     negative).
//   - A failed handler's entry stays pending; after the backoff the
//     subscriber claims it back (XCLAIM, which counts a delivery) and
//     retries it, without holding up other entries. After MaxAttempts
//     deliveries, or at once for an error wrapping pubsub.ErrPermanent, it
//     is copied to the dead-letter stream with dead_reason, dead_group,
//     dead_entry_id, dead_attempts and dead_at fields and acknowledged, by
//     one script that acknowledges only a written dead letter (a refused
//     write, a key of another type or no memory, is tried again with the
//     same reason), and the ErrorHandler gets a *pubsub.DeadLetterError.
//   - Poison that kills or hangs: an entry delivered more than MaxAttempts
//     times (by the pending-list read, XAUTOCLAIM or a retry's XCLAIM) is
//     dead-lettered with the reason "delivered N times without an outcome
//     (crash or hang?)" before any handler sees it again. So an event that
//     crashes its process reaches at most MaxAttempts handler runs, and the
//     entries after it are handled. A delivery is counted when a handler
//     starts on the entry (XREADGROUP counts a fresh read; entries claimed
//     back or taken over are claimed with JUSTID and counted as their
//     handler starts), and an entry claimed back after a crash or taken
//     over from another consumer runs alone and is acknowledged before
//     any other handler starts, so a poison that kills its process charges
//     no innocent entry a delivery.
//   - Handlers run under HandlerTimeout (default 1m) on their context (runs
//     that start within HandlerTimeout/1000, at most 10ms, of each other on
//     one worker share a context, so a deadline may come that much early). A
//     handler that ignores it is abandoned a grace period later
//     (HandlerTimeout/4, at most 5s): a new worker takes its place, its
//     entry stays pending and is delivered again (counted), so one that
//     hangs every time ends in the dead-letter stream; what it returns
//     later is ignored. Its goroutine lives on until it returns.
//   - A handler that fails because Consume is stopping leaves its entry
//     pending for the next start.
//   - Entries trimmed from the stream while pending are acknowledged and
//     reported to the ErrorHandler.
//   - Read errors (a lost connection, a restarting server) are reported to
//     the ErrorHandler and retried with a growing pause, up to 5s. A stream
//     that fails on its own (its key now holds another type) is set aside
//     for such a pause, reported, and tried again, while the subscriber's
//     other streams are read on.
//   - The ErrorHandler is never called once Consume has returned (nor may
//     it call Close, which waits for Consume).
//   - Every command is bounded by the client's ReadTimeout (blocking reads
//     by Block plus go-redis's 10s margin); the contexts the subscriber passes
//     bound only the wait for a pooled connection unless the client sets
//     ContextTimeoutEnabled. A client made with ReadTimeout -1 (no timeout)
//     can wait forever on a lost reply, so keep one set.
//   - The dead-letter stream is trimmed to about DeadMaxLen entries
//     (default 100,000; XADD MAXLEN ~), oldest first.
//   - Delayed emit ([Publisher.EmitAt]) is durable: events wait in the
//     stream's delayed set, and every DelayedPoll each subscriber runs a Lua
//     script that moves the due ones into the stream atomically, so each is
//     moved exactly once however many subscribers run. Each member carries
//     a unique prefix, so equal events emitted at the same time are each
//     delivered. A member the script cannot parse, or whose XADD Redis
//     refuses, is moved to the dead-letter stream (delayed_member,
//     dead_reason and dead_at fields) in the same run and reported to the
//     ErrorHandler as an error wrapping pubsub.ErrMalformed; the other
//     members move on. A delayed set that holds another type is reported
//     on every poll, and the other streams' delayed events go on moving.
//   - Close stops reading, waits for the handlers and their
//     acknowledgements, and removes the consumer from the group when it has
//     no entry pending. Queued entries no handler started stay pending for
//     the next start. It returns within about Block + HandlerTimeout +
//     grace + 8s, whatever the handlers do and even when Redis has stopped
//     answering: the last acknowledgements are tried once, for 2s at most
//     in all, and what could not be acknowledged is delivered again later;
//     the lease and the group are left with a bound of their own. A dead
//     letter or a recovered entry's count being written as Redis stops
//     answering waits for the client's ReadTimeout.
//   - Consumers left behind are removed: while Consume runs, every 5
//     minutes (or every ForgetIdleConsumers when shorter) the subscriber
//     removes from its group, on each of its streams, the other consumers
//     idle for ForgetIdleConsumers (default 1h; negative: never) that hold
//     no pending entry (XGROUP DELCONSUMER), so that names that change from
//     run to run, such as the default "<host>-<pid>", do not pile up. A
//     script checks that the consumer has nothing pending (and, where
//     XINFO CONSUMERS answers in a script, that it is still idle) and
//     removes it in one atomic step, so no entry is lost or delivered
//     twice; the entries of a consumer that crashed are taken over after
//     ClaimIdle as usual, and the consumer is removed once it holds none.
//     A name whose lease is held (beside this stream or this subscriber's
//     first stream) is left alone. Idle is XINFO CONSUMERS's figure; on
//     Redis 7.0 and older a read that returns nothing does not reset it,
//     so a consumer waiting on a quiet stream may be removed: harmless, as
//     it holds nothing and its next read makes it again. Each look is
//     bounded (5s), and its failures are logged at warn level without
//     disturbing consumption.
//   - Run one Consume at a time per Subscriber; use Concurrency for
//     parallel handlers and separate subscribers (consumer names) to scale.
//     A consumer name is leased while a Consume runs under it: a second
//     subscriber with the same name (a misconfiguration) is told so through
//     its ErrorHandler and waits until the first stops, instead of both
//     handling the same entries; after a crash, a restart under the same
//     name waits for the lease to lapse (min(ClaimIdle, 10s)).
//   - On one server, all the streams (partitions) of a subscriber are read
//     by one blocking XREADGROUP, so they hold one pooled connection; on a
//     Cluster each stream has its own reader and its own acknowledger, so a
//     master that stops answering holds up its own streams only: the
//     entries of the others go on being handled and acknowledged.
//   - Acknowledgements Redis does not take (unreachable, hung, busy with a
//     script, a Cluster down or failing over) wait and are tried again,
//     with pauses growing to 2s, until they land or Consume stops, so that
//     what was handled meanwhile is not delivered again; the ErrorHandler
//     hears of it after five tries and then every thirty. Handing one over
//     holds up no handler until 100 batches wait: while Redis refuses
//     acknowledgements but serves reads (an ACL without XACK), the run then
//     stops handling and reading instead of holding entries without end.
//     A refusal that does not pass (WRONGTYPE:
//     the stream's key made another type) gives them up: they stay pending
//     and are delivered again. An entry recovered from a crash runs alone
//     and is counted and acknowledged before any other handler starts, so
//     while its master hangs the run waits on it, up to the client's
//     timeouts: that wait keeps a poison that crashes its process from
//     charging any other entry a delivery.
//
// # Configuration
//
// [PublisherConfig] and [SubscriberConfig] are plain structs whose zero
// values are the defaults below (SubscriberConfig needs a Group). The
// constructors check them with Validate and name the bad field.
//
// PublisherConfig:
//
//	Stream        "events"          stream for every event when Route is nil
//	Route         nil               func(pubsub.Name) string picking the stream
//	Partitions    0 (none)          spread each stream over "<stream>:0".."<stream>:<n-1>"
//	PartitionKey  the event's ID    text whose hash picks the partition
//	MaxLen        0 (no limit)      XADD MAXLEN ~ n
//	MaxAge        0 (no limit)      XADD MINID ~ (now - age)
//	WaitReplicas  0 (no wait)       WAIT for this many replicas after each write
//	TracerProvider global           producer span "send <stream>" per Emit
//
// SubscriberConfig:
//
//	Streams       ["events"]        streams to consume through the group
//	Partitions    0 (none)          consume every partition of each stream
//	Group         required          the consumer group
//	Consumer      "<host>-<pid>"    this consumer's name; keep it stable
//	Names         nil (all)         event names to handle; others are acknowledged
//	Start         StartNew          where a new group begins: "$" or "0"
//	BatchSize     100               entries per XREADGROUP / XAUTOCLAIM
//	Concurrency   1                 handlers at once
//	MaxAttempts   5                 deliveries before the dead-letter stream
//	Backoff       1s doubling to 30s, ±20% jitter
//	Block         1s                XREADGROUP BLOCK; bounds how long Close waits
//	ClaimIdle     1m                idle time before another consumer's entry is taken
//	ClaimInterval ClaimIdle / 2     how often to look for such entries
//	HandlerTimeout 1m               deadline of each handler run
//	DeadMaxLen    100000            about how many dead letters to keep (<0: all)
//	ForgetIdleConsumers 1h          remove other consumers idle this long with nothing pending (<0: never)
//	DelayedPoll   250ms             how often due delayed events are moved
//	Logger        nil (discard)     where errors go without an ErrorHandler
//	TracerProvider global           consumer span "process <stream>" per handled event
//
// # Tracing
//
// Each event carries the OpenTelemetry trace context it was emitted under
// in its traceparent and tracestate fields, and each handler's context
// holds it: with a TracerProvider (the config's, else the global one) as
// the consumer span "process <stream>", the child of the producer span
// "send <stream>" that Emit made, itself the child of the caller's span;
// every attempt of a retried event is another child, and a dead letter
// adds a "send <stream>:dead" span. Attributes follow the OpenTelemetry
// messaging conventions (messaging.system "redis",
// messaging.destination.name, messaging.consumer.group.name,
// messaging.message.id, messaging.operation.type) plus
// switchyard.event.name and switchyard.event.attempts. Without a
// TracerProvider no span is made and the trace context is passed on as it
// came. go-redis's own instrumentation (redisotel) can be added to the
// client for spans of each Redis command.
package redis
