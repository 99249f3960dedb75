// A client of the webhook bridge typed by the types openapi-typescript
// generates from docs/openapi.yaml (schema.d.ts, made by the test): it
// makes a subscription to a receiver through the admin API, reads it
// back, and posts an event that the subscription delivers.
//
// Usage: node dist/client.js BASE_URL ADMIN_TOKEN INGEST_JWT RECEIVER_URL EVENT_ID

import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

// Node's own globals, the two used, without @types/node.
declare const process: { argv: string[]; exit(code: number): never };

type IncomingEvent = components["schemas"]["IncomingEvent"];
type SubscriptionCreate = components["schemas"]["SubscriptionCreate"];

const [baseUrl, adminToken, jwt, receiverUrl, eventId] = process.argv.slice(2);
if (!baseUrl || !adminToken || !jwt || !receiverUrl || !eventId) {
  console.error("usage: client.js BASE_URL ADMIN_TOKEN INGEST_JWT RECEIVER_URL EVENT_ID");
  process.exit(2);
}
const client = createClient<paths>({ baseUrl });
const admin = { Authorization: `Bearer ${adminToken}` };

function fail(what: string, status: number, error: unknown): never {
  console.error(`${what}: ${status} ${JSON.stringify(error)}`);
  process.exit(1);
}

const subscriptionId = "typescript-client";
const sub: SubscriptionCreate = {
  id: subscriptionId,
  topic: "client.*",
  url: receiverUrl,
  filter: 'data.from == "typescript"',
  timeout: "5s",
};
const created = await client.POST("/v1/subscriptions", { body: sub, headers: admin });
if (!created.data) fail("POST /v1/subscriptions", created.response.status, created.error);
const source: "config" | "api" = created.data.source;

const read = await client.GET("/v1/subscriptions/{id}", { params: { path: { id: subscriptionId } }, headers: admin });
if (!read.data) fail("GET /v1/subscriptions/{id}", read.response.status, read.error);
const secrets: number = read.data.secret_count;

const event: IncomingEvent = { name: "client.hello", id: eventId, payload: { from: "typescript" } };
const posted = await client.POST("/v1/events", { body: event, headers: { Authorization: `Bearer ${jwt}` } });
if (!posted.data) fail("POST /v1/events", posted.response.status, posted.error);
const ids: string[] = posted.data.ids;

console.log(JSON.stringify({ status: posted.response.status, ids, source, secrets }));
