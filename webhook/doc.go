// Package webhook turns events into signed HTTP deliveries: a [Bridge]
// consumes events from any [pubsub.Subscriber], matches them against
// [Subscription]s by topic and an expr-lang filter, and POSTs each match
// to its URL, retrying failures through the backend's delayed emit and
// dead-lettering after the last attempt. The command cmd/webhook-bridge
// runs it as a sidecar; this package is the same engine as a library.
//
// # Matching
//
// A subscription matches an event when its topic is the event's name (or
// "*") and its filter, if any, is true. Filters are expr-lang expressions
// compiled once, when subscriptions are set, to bool. They see
//
//	data   the payload decoded as JSON (nil when it is not JSON)
//	event  id, name, attempts, correlation_id, created_at, dry_run
//
// Member access is nil-safe, as if every "." and "[]" were "?.": a missing
// key reads as nil, so data["body"]["x"] == 1 is simply false when body is
// absent. A filter that does not compile is refused with the
// subscription's ID; one that fails at run time (comparing a string with a
// number, say) is a non-match, logged and counted. Evaluation is bounded
// by expr's node limit and a memory budget.
//
// # Delivery
//
// Each delivery is a POST of the payload bytes as emitted, with
//
//	webhook-id, webhook-timestamp          Standard Webhooks; the id is the event ID, kept across retries
//	webhook-signature                      "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per secret, space-separated
//	ce-specversion, ce-id, ce-type,        CloudEvents binary mode (ce-type is the event name)
//	ce-source, ce-time
//	x-correlation-id                       the event's correlation ID
//	webhook-attempt                        1 on the first attempt
//	webhook-subscription                   the subscription's ID
//	content-type                           application/json for JSON payloads, else application/octet-stream
//
// plus the subscription's headers. Redirects are not followed. 2xx is
// success; 410 dead-letters at once; anything else (and no response within
// the timeout) is retried on the [RetryPolicy] schedule, or after the
// receiver's Retry-After on 429 and 5xx.
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
// circuit. A delivery that finds no free slot within SlotWait, or the
// circuit open, is deferred without spending an attempt, so a slow or
// failing endpoint never holds up the others.
//
// Events marked as dry runs are matched and logged, never sent.
//
// # Dead letters
//
// Deliveries given up on go to a [DeadLetterStore]: [MemoryDeadLetters] by
// default, [RedisDeadLetters] to share them between replicas. Both keep at
// most about [DefaultDeadLetterMaxLen] unless told otherwise, the oldest
// dropped first, and list them a page at a time with a cursor
// ([DeadLetterStore.List]); [Bridge.Replay] and [ReplayDeadLetters] walk
// the pages, so no backlog is ever read whole.
package webhook
