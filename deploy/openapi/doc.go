// Package openapi keeps docs/openapi.yaml, the description of the webhook
// bridge's HTTP API, true to the bridge itself. Its tests build
// cmd/webhook-bridge, run it on a real redis-server, drive a realistic
// session through a recording client, and validate every request and
// response against the description with libopenapi-validator; and they
// generate a TypeScript client from the description (openapi-typescript
// and openapi-fetch, installed from npm into a temporary directory),
// compile it with tsc and post an event with it that a receiver gets.
//
// It has no code of its own: only tests, which need redis-server, Node.js
// and npm, as the interop tests do.
package openapi
