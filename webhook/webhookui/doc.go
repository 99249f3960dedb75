// Package webhookui is the webhook bridge's operator console: server-rendered
// pages, embedded in the binary, that show and change what the admin API of
// [webhookhttp] shows and changes. Mount a [Console] beside the API at
// /ui/ (the webhook-bridge sidecar does when auth.admin_token is set).
//
// # A thin layer over the admin API
//
// The console implements nothing twice: each page calls the API handler
// in-process (an internal request carrying the admin token), decodes the
// JSON views the API defines and renders them with html/template. Every
// page reads one page of a paged query, so it stays fast on a delivery log
// of a million attempts.
//
// # Security
//
// The admin token is typed once at /ui/login; the console then sets a
// session cookie (HttpOnly, SameSite=Strict, Path=/ui/, Secure over TLS)
// whose value is a random session id with an expiry, MAC'd with a key
// derived from the admin token and a random per-process secret: never the
// token. Sessions live in the process (a restart, or another replica,
// asks to log in again). Failed logins are rate-limited per process.
// Every POST needs the session's CSRF token and is refused cross-site
// ([net/http.CrossOriginProtection]). Every answer carries a strict
// Content-Security-Policy (no inline script or style), nosniff and
// Referrer-Policy same-origin. Receiver answers and payloads are data:
// rendered as escaped text, never as HTML.
//
// # Overview series
//
// The overview's chart comes from the Prometheus registry the API serves
// at /metrics, sampled every 15s by a goroutine the Console owns (started
// by [Console.Run] or by the first request, stopped by [Console.Close]),
// kept in memory for the last hour: per replica.
package webhookui
