// Package webhookhttp is the HTTP surface of a webhook bridge, as an
// [http.Handler] a program mounts on its own server: event ingest
// (POST /v1/events), the subscription admin API (/v1/subscriptions), dead
// letters (/v1/dlq), health (/healthz, /readyz), its own OpenAPI 3.1
// description (GET /openapi.yaml and /openapi.json, unauthenticated: the
// file docs/openapi.yaml of this module, embedded by package docs) and,
// when given a Prometheus registry, /metrics. [Handler.Patterns] lists
// the routes mounted; tests hold them to the description. The sidecar
// cmd/webhook-bridge is this
// handler plus configuration; a Go service that runs a [webhook.Bridge]
// itself mounts the same handler beside its own routes.
//
// # Ingest
//
// POST /v1/events takes one JSON event {name, payload, id?,
// correlation_id?, dry_run?} or an array of them, emits them in one
// Publisher.Emit and answers 202 with their ids. It refuses (400, naming the
// event and the field) what could never become a valid delivery: a missing
// name or payload, an id outside [A-Za-z0-9_-] or longer than
// [webhook.MaxEventIDLen], a name or correlation ID with control characters
// or invalid UTF-8 or longer than 256 bytes. An event posted with an id
// already accepted within DedupeWindow is not emitted again: the answer
// lists it under "duplicates" (200 when every event was one).
//
// A request with a W3C traceparent header is continued: with a
// TracerProvider ([Config.TracerProvider], or the global one) the events
// are emitted under a server span "POST /v1/events", the child of the
// caller's span; without one, under the caller's span context itself, so
// the events carry it either way.
//
// # Signing keys
//
// A subscription created or replaced with "signing": "ed25519" gets an
// ed25519 key pair made by the handler ([SigningEd25519]): the private
// key ("whsk_") joins its secrets and signs "v1a"; it is never shown, as
// no secret is, while [SubscriptionView.PublicKeys] shows its "whpk_"
// public key for receivers. In a PUT's "secret", a "whpk_" public key
// stands for the stored private key it belongs to, so a rotation ends by
// listing only the new public key.
//
// # Errors
//
// Every error answer, 404 and 405 included, is
//
//	{"error": "<what was wrong>", "status": <HTTP status>}
//
// with the status also on the response line.
package webhookhttp
