// Package webhook turns events into signed HTTP deliveries: a [Bridge]
// consumes events from any [pubsub.Subscriber], matches them against
// [Subscription]s by topic and an expr-lang filter, and POSTs each match
// to its URL, retrying failures through the backend's delayed emit and
// dead-lettering after the last attempt. The command cmd/webhook-bridge
// runs it as a sidecar; this package is the same engine as a library.
//
// # Matching
//
// A subscription matches an event when its topic is the event's name, "*",
// or a prefix pattern the name fits ("order.*": every name starting with
// "order." and going on), and its filter, if any, is true. Filters are expr-lang expressions
// compiled once, when subscriptions are set, to bool. They see
//
//	data   the payload decoded as JSON (nil when it is not JSON)
//	event  id, name, attempts, correlation_id, created_at, dry_run
//
// Member access is nil-safe, as if every "." and "[]" were "?.": a missing
// key reads as nil, so data["body"]["x"] == 1 is simply false when body is
// absent. Comparisons are nil-safe too: <, >, <=, >=, startsWith,
// endsWith, contains, matches and in are false, without an error, when an
// operand is nil at run time, so data.total > 100 is false when total is
// missing, and so is data.total <= 100 (while not (data.total > 100) and
// data.s not in [...] are true). A filter that does not compile is refused
// with the subscription's ID; one that still fails at run time (comparing
// a string with a number, say) is a non-match, counted by
// [Observer.FilterFailed] every time it runs and logged at most once a
// minute per subscription, with how many failures went unlogged since the
// last line. Subscriptions are indexed by topic and by the equality their
// filter's top-level conjunction requires (path == literal, path in
// [literals]): a filter the index rules out for an event does not run.
// Evaluation is bounded by expr's node limit and a memory budget.
//
// # Delivery
//
// Each delivery is a POST of the payload bytes as emitted, with
//
//	webhook-id                             MessageID(event ID), the same on every retry and replica
//	webhook-timestamp                      Unix seconds of this attempt
//	webhook-signature                      per secret, space-separated: "v1,<base64 HMAC-SHA256 of webhook-id.timestamp.body>" (whsec_), "v1a,<base64 ed25519 signature of it>" (whsk_)
//	ce-specversion                         1.0
//	ce-id, ce-type, ce-source, ce-time     CloudEvents binary mode, percent-encoded: the event ID, its name, Config.Source, its creation time
//	x-correlation-id                       the event's correlation ID, percent-encoded
//	webhook-attempt                        1 on the first attempt
//	webhook-subscription                   the subscription's ID
//	content-type                           application/json for JSON payloads, else application/octet-stream
//	traceparent, tracestate                W3C Trace Context, when the event has a trace (see Tracing); not signed
//
// plus the subscription's headers, which can replace none of these nor
// the ones HTTP manages ([Subscription.Headers]). Redirects are not followed. 2xx is
// success; 410 dead-letters at once; anything else (and no response within
// the timeout) is retried on the [RetryPolicy] schedule, or after the
// receiver's Retry-After on 429 and 5xx.
//
// # Signing
//
// Each of a subscription's [Subscription.Secrets] signs every delivery
// once, so that receivers can rotate. A "whsec_" secret (the base64 of 24
// to 64 bytes) signs "v1", HMAC-SHA256, the default; a "whsk_" ed25519
// private key (the base64 of its 32-byte seed, or of the 64 bytes of seed
// and public key) signs "v1a", Standard Webhooks' asymmetric scheme, which
// receivers verify with the "whpk_" public key ([PublicKey],
// [Subscription.PublicKeys]) without being able to sign. Both kinds may be
// mixed: an old "whsec_" and a new "whsk_" send "v1,… v1a,…" until the old
// one is removed. [NewSigningKey] makes a key pair; [Sign] and [Verify]
// (which takes a "whsec_" secret or a "whpk_" public key) are the scheme
// for other programs. Keys are decoded once, when a subscription is set;
// a key that does not decode, has the wrong length or is a "whpk_" public
// key is refused by [Subscription.Validate], naming the subscription and
// the secret's position.
//
// An event ID that [CheckEventID] accepts (1 to [MaxEventIDLen] ASCII
// letters, digits, '-' and '_') is the webhook-id as it is. Any other ID
// (an event written to the stream directly may have any) gives the
// webhook-id "sw_" and 32 lowercase hex digits of the ID's SHA-256
// ([MessageID]). Either way the webhook-id holds no '.' (the separator of
// the signed content) and nothing an HTTP stack could re-encode, and it is
// a function of the event ID alone, so receivers deduplicate on it and
// verify the signature over it. The event's own ID travels in ce-id.
//
// The ce-* string headers and x-correlation-id are percent-encoded as the
// CloudEvents HTTP binding (3.1.3.2) says: of the value's UTF-8 bytes,
// space, '"', '%' and every byte outside U+0021 to U+007E are written as
// %XX, uppercase hex, and the rest as they are. A value of printable ASCII
// without those three is unchanged ("order.created", "evt-1").
//
// # Undeliverable events
//
// Nothing that cannot be sent is tried. An event that fails
// [CheckDeliverable] (control characters or invalid UTF-8 in its ID, name
// or correlation ID; a name or correlation ID over [MaxNameLen] or
// [MaxCorrelationIDLen] bytes) is dead-lettered for each subscription it
// matches as [KindUndeliverable], with no attempt, the reason naming the
// field; so is a retry whose event fails it. A request that cannot be
// built, or that holds a header value HTTP refuses, is found before any
// byte of it is sent and dead-lettered the same way: it is not counted
// against the endpoint's circuit, and if it was the half-open circuit's
// probe, the next delivery probes instead.
//
// # Retries, circuits and concurrency
//
// A failed delivery is re-emitted for its one subscription, as a
// [RetryEventName] event with Meta.Attempts one higher, through the
// publisher's delayed emit: with the Redis backend it waits in Redis and
// survives a restart. Subscriptions that succeeded are not called again.
// The source event is acknowledged only once every matched subscription
// has succeeded, been dead-lettered, or has its retry scheduled.
//
// Each endpoint (scheme, host and port) has PerEndpoint slots and a
// circuit. After [CircuitConfig.Failures] failed deliveries in a row the
// circuit opens for [CircuitConfig.Cooldown]; then one delivery probes
// the endpoint (half-open) and its outcome closes the circuit or opens it
// again. Deliveries wait in a queue per endpoint and are sent as its slots
// free up, at most [Config.MaxInFlight] at once in all, the endpoints with
// work served in turn; a delivery that finds the circuit open, or that
// waits at an endpoint too slow to reach it soon (see
// [Config.SlotWait]), is deferred without spending an attempt, so a slow
// or failing endpoint never holds up the others. A failed delivery whose
// endpoint's circuit is open (this very failure may have opened it) has
// its retry scheduled for the later of its backoff and the circuit's
// reopening. The circuit logs at Info when it opens (endpoint, failures in
// a row, until), when it sends a probe and when it closes; the endpoint is
// logged as scheme://host:port, never with a path, query or credentials.
// Each failed attempt logs a warning with retry_in, the real wait, and
// circuit_open; a delivery that succeeds after retries logs one Info line.
// [Bridge.InFlight] tells how many deliveries are being made.
//
// Events marked as dry runs are matched and logged, never sent.
//
// # Rate limits
//
// A [Subscription.RateLimit] bounds a subscription's deliveries and
// [Config.EndpointLimits] an endpoint's, whichever subscriptions they are
// for; a delivery passes both. Each is a token bucket ([RateLimit]: at
// most Burst + PerSecond×T deliveries in any T seconds) kept by
// [Config.RateLimiter]: [RedisRateLimiter] shares it between every replica
// on one Redis, [MemoryRateLimiter] keeps it in the process. A delivery
// over a limit is neither sent nor waited for: it is re-emitted, with its
// attempt count unchanged, for when the limiter says one can go (a backlog
// spread one interval apart), reported as [RateLimited], so a limited
// endpoint holds up no delivery to another. A limiter error defers the
// delivery a second. A 429 from an endpoint halves the rate (and burst)
// of every limit its deliveries pass for the Retry-After period (a second
// without one), then the rate climbs back in a straight line over as long
// again; 429s during that compound, down to 1/64. The 429 is also a
// failed attempt, retried after its Retry-After.
//
// # Dead letters
//
// Deliveries given up on go to a [DeadLetterStore]: [MemoryDeadLetters] by
// default, [RedisDeadLetters] to share them between replicas. Each has a
// [DeadLetterKind]: [KindExhausted] (every attempt failed), [KindGone] (the
// endpoint answered 410), [KindUndeliverable] (nothing could be sent),
// [KindOrphaned] (the subscription was removed or disabled while a retry
// waited); [KindUnhandled] is for listings of what a backend dead-lettered
// before the bridge saw it. A dead letter stored before kinds were
// recorded reads as gone after a 410, else as exhausted. Both stores keep
// at most about [DefaultDeadLetterMaxLen] unless told otherwise, the
// oldest dropped first, and list them a page at a time with a cursor
// ([DeadLetterStore.List]); [Bridge.Replay] and [ReplayDeadLetters] walk
// the pages, so no backlog is ever read whole. Replays skip dead letters
// whose event is undeliverable: they stay in the store.
//
// # Delivery log
//
// With [Config.AttemptLog] set, every attempt is recorded as an [Attempt]:
// the request headers sent (values a subscription sets redacted), the
// response's status, headers and first [Config.ResponseBodyBytes], the
// duration, the error and the [Outcome] (the log adds [TimedOut],
// [DeadLettered] and [Skipped] to those an Observer hears of), with the
// event itself, for [AttemptLog.Query] by subscription, event, outcome,
// status and time, newest first, and [AttemptLog.Event].
// [MemoryAttemptLog] keeps them in the process; [RedisAttemptLog] shares
// them between replicas. Both are bounded by age and count. The bridge
// writes attempts in batches from one goroutine; a log that refuses a
// batch for 10s loses that batch (reported to a [LogObserver]), never a
// delivery.
//
// # Tracing
//
// With a TracerProvider ([Config.TracerProvider], or the global one) each
// delivery attempt is a span, "webhook deliver", the child of the event's
// consumer span (the handler's context): attributes
// switchyard.webhook.subscription.id, url.full (user info dropped, query values REDACTED),
// switchyard.webhook.attempt, http.response.status_code and
// switchyard.webhook.outcome (the [Outcome]); status Error when the attempt
// failed, timed out or was dead-lettered. Its child is the HTTP client
// span of the request (otelhttp), whose context the receiver gets as
// traceparent. A retry is emitted under the failed attempt's span, so all
// attempts of a delivery share a trace, and each retry's span links to
// the first attempt's, carried in the retry event. Without a
// TracerProvider no span is made, and deliveries still carry the event's
// own trace context (received from its emitter) as traceparent.
//
// # Partitions
//
// A topic spread over several streams (partitions, so that a Redis Cluster
// spreads one busy topic over its masters) keeps each event's history
// beside it. [PartitionedPublisher] writes each event through the
// publisher of the partition its key picks ([PartitionOf]: FNV-1a modulo
// the number of partitions, as the redis package's partitioned Publisher),
// and each retry, deferral or replay to the partition of the event it is
// for; [PartitionedDeadLetters] adds each dead letter to the store of its
// event's partition and walks them all with one cursor. The key is the
// event's ID by default, or what a [PartitionKey] expression
// ([CompilePartitionKey], over the filters' environment) gives; an event
// it gives no key is placed by its ID, counted and logged, never dropped.
// Writes to several partitions are not atomic: an error names the events
// not written. cmd/webhook-bridge wires these to one redis Publisher and
// dead-letter stream per partition.
package webhook
