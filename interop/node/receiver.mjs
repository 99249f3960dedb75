// A webhook receiver that verifies every delivery it gets with the npm
// packages standardwebhooks and svix, the way docs/webhook-bridge.md
// ("Receiving in Node") tells a Node receiver to call them, and reports
// each delivery as one JSON line on stdout for the Go tests in interop/.
//
// Configuration comes in the environment:
//   RECEIVER_SECRETS      JSON object: subscription id -> list of whsec_ secrets
//   RECEIVER_PUBLIC_KEYS  JSON object: subscription id -> list of whpk_
//                         ed25519 public keys, for v1a signatures
// Requests to a path starting with /fail-first are answered 500 the first
// time a webhook-id is seen there, 204 afterwards; others get 204.
// Deliveries made to the Go tests' own receiver are checked too, on
// request: see the end of this file.
//
// The first line printed is {"listening": <port>}; then one line per
// delivery:
//   {"path", "status", "headers": [[name, base64 of the value's bytes]],
//    "body": base64, "checks": [{"secret": i, "<verifier>": "ok" | error}],
//    "v1a": [{"key": i, "node_crypto": "ok" | error, "standardwebhooks": "ok" | error}],
//    "decoded": {"ce-id", "ce-type", "x-correlation-id": decodeURIComponent of each}}

import http from "node:http";
import crypto from "node:crypto";
import readline from "node:readline";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";

const secrets = JSON.parse(process.env.RECEIVER_SECRETS ?? "{}");
const publicKeys = JSON.parse(process.env.RECEIVER_PUBLIC_KEYS || "{}") ?? {};
const seen = new Set();

function outcome(fn) {
  try {
    fn();
    return "ok";
  } catch (e) {
    return `${e?.name ?? "Error"}: ${e?.message ?? e}`;
  }
}

// The Standard Webhooks algorithm on the raw bytes with node:crypto, as
// docs/webhook-bridge.md ("Receiving in Node") gives it to receivers of
// bodies that are not UTF-8, since both libraries decode the body as
// UTF-8 before they hash it. Keep the two the same.
function verifyDelivery(secret, headers, body /* Buffer */) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const id = headers["webhook-id"], ts = headers["webhook-timestamp"];
  if (!id || !/^[0-9]+$/.test(ts ?? "")) throw new Error("missing webhook headers");
  if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) throw new Error("timestamp too old or too new");
  const mac = crypto.createHmac("sha256", key).update(`${id}.${ts}.`).update(body).digest();
  for (const sig of (headers["webhook-signature"] ?? "").split(" ")) {
    const [version, b64] = sig.split(",");
    const got = Buffer.from(b64 ?? "", "base64");
    if (version === "v1" && got.length === mac.length && crypto.timingSafeEqual(got, mac)) return;
  }
  throw new Error("no matching signature");
}

// Standard Webhooks v1a, written from the specification with node:crypto
// (OpenSSL's ed25519): one of the "v1a,<base64>" entries must be an
// ed25519 signature of "id.timestamp." and the raw body by the key whose
// public key is publicKey ("whpk_" and the base64 of its 32 bytes). No
// released Standard Webhooks library verifies v1a (npm standardwebhooks
// 1.1.1 among them), so this is the Node verifier; docs/webhook-bridge.md
// gives receivers the same function. Keep the two the same.
function verifyV1a(publicKey, headers, body /* Buffer */) {
  if (!publicKey.startsWith("whpk_")) throw new Error("not a whpk_ public key");
  const raw = Buffer.from(publicKey.slice("whpk_".length), "base64");
  if (raw.length !== 32) throw new Error(`public key of ${raw.length} bytes, want 32`);
  const key = crypto.createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
  const id = headers["webhook-id"], ts = headers["webhook-timestamp"];
  if (!id || !/^[0-9]+$/.test(ts ?? "")) throw new Error("missing webhook headers");
  if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) throw new Error("timestamp too old or too new");
  const signed = Buffer.concat([Buffer.from(`${id}.${ts}.`), body]);
  for (const sig of (headers["webhook-signature"] ?? "").split(" ")) {
    const [version, b64] = sig.split(",");
    if (version !== "v1a" || !b64) continue;
    const got = Buffer.from(b64, "base64");
    if (got.length === 64 && crypto.verify(null, signed, key, got)) return;
  }
  throw new Error("no matching v1a signature");
}

function v1aChecks(sub, headers, body) {
  return (publicKeys[sub] ?? []).map((publicKey, i) => ({
    key: i,
    node_crypto: outcome(() => verifyV1a(publicKey, headers, body)),
    // What the npm library makes of a whpk_ key: the interop tests
    // expect it to fail until a release verifies v1a.
    standardwebhooks: outcome(() => new StandardWebhook(publicKey).verify(body, headers, { jsonParse: false })),
  }));
}

function checks(sub, headers, body) {
  // The same headers as a Fetch API Headers object, as Fetch-style
  // handlers get them.
  const fetchHeaders = new Headers();
  for (const [k, v] of Object.entries(headers)) {
    for (const one of [v].flat()) fetchHeaders.append(k, one);
  }
  return (secrets[sub] ?? []).map((secret, i) => ({
    secret: i,
    // The raw body as a Buffer, req.headers as it is, no JSON parsing.
    standardwebhooks: outcome(() => new StandardWebhook(secret).verify(body, headers, { jsonParse: false })),
    // The default call, which parses the body as JSON once it verified.
    standardwebhooks_json: outcome(() => new StandardWebhook(secret).verify(body, headers)),
    svix: outcome(() => new SvixWebhook(secret).verify(body, headers)),
    node_crypto: outcome(() => verifyDelivery(secret, headers, body)),
    // What the docs say of Fetch-style handlers: a Headers object looks
    // empty to both libraries, Object.fromEntries of it works; a plain
    // Uint8Array is refused, a Buffer of the same bytes works.
    headers_object: outcome(() => new StandardWebhook(secret).verify(body, fetchHeaders, { jsonParse: false })),
    fetch_style: outcome(() => {
      const raw = Buffer.from(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
      new StandardWebhook(secret).verify(raw, Object.fromEntries(fetchHeaders), { jsonParse: false });
      new SvixWebhook(secret).verify(raw, Object.fromEntries(fetchHeaders));
    }),
    uint8array: outcome(() => new StandardWebhook(secret).verify(new Uint8Array(body), headers, { jsonParse: false })),
    // A body parsed, then re-encoded, as a receiver behind a JSON body
    // parser has it: not the bytes that were signed.
    restringified: outcome(() => new StandardWebhook(secret).verify(JSON.stringify(JSON.parse(body)), headers)),
  }));
}

// The event's own id, name and correlation ID, as the docs tell receivers
// to read them.
function decoded(headers) {
  const out = {};
  for (const name of ["ce-id", "ce-type", "x-correlation-id"]) {
    if (headers[name] === undefined) continue;
    try {
      out[name] = decodeURIComponent(headers[name]);
    } catch (e) {
      out[name] = `${e.name}: ${e.message}`;
    }
  }
  return out;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const id = req.headers["webhook-id"] ?? "";
    let status = 204;
    if (req.url.startsWith("/fail-first")) {
      const key = `${req.url} ${id}`;
      if (!seen.has(key)) {
        seen.add(key);
        status = 500;
      }
    }
    const headers = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      // Node reads header bytes as latin1: this gives the bytes back.
      headers.push([req.rawHeaders[i], Buffer.from(req.rawHeaders[i + 1], "latin1").toString("base64")]);
    }
    const line = {
      path: req.url,
      status,
      headers,
      body: body.toString("base64"),
      checks: checks(req.headers["webhook-subscription"] ?? "", req.headers, body),
      v1a: v1aChecks(req.headers["webhook-subscription"] ?? "", req.headers, body),
      decoded: decoded(req.headers),
    };
    process.stdout.write(JSON.stringify(line) + "\n", () => {
      res.writeHead(status);
      res.end();
    });
  });
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + "\n");
});

// Deliveries that reached the Go receiver come in on stdin, one JSON line
// each: {"verify": n, "headers": [[name, base64 of the value's bytes]],
// "body": base64}. They are checked as if this server had received them,
// with the headers as Node would have parsed them, and answered with
// {"reply": n, "checks": [...], "decoded": {...}}.
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (text) => {
  const ask = JSON.parse(text);
  const headers = {};
  for (const [name, b64] of ask.headers) {
    const key = name.toLowerCase();
    const value = Buffer.from(b64, "base64").toString("latin1");
    headers[key] = key in headers ? `${headers[key]}, ${value}` : value;
  }
  const body = Buffer.from(ask.body, "base64");
  const reply = {
    reply: ask.verify,
    checks: checks(headers["webhook-subscription"] ?? "", headers, body),
    v1a: v1aChecks(headers["webhook-subscription"] ?? "", headers, body),
    decoded: decoded(headers),
  };
  process.stdout.write(JSON.stringify(reply) + "\n");
});
// The Go test closes stdin when it is done: stop then.
lines.on("close", () => process.exit(0));
