package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
)

// source is the bridge's default ce-source.
const source = "urn:switchyard:webhook-bridge"

// newSecret returns a whsec_ secret of n random bytes.
func newSecret(t *testing.T, n int) string {
	t.Helper()
	key := make([]byte, n)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

// eventCase is one event the bridge delivers, and what should become of
// it.
type eventCase struct {
	name string
	// ev is the event: written to the stream as it is, or, for the HTTP
	// door, what the bridge should make of post (its ID is filled in from
	// the 202 answer).
	ev   pubsub.Event
	post string
	// want is the number of deliveries each subscription should get.
	want map[string]int
}

func (c *eventCase) viaHTTP() bool { return c.post != "" }

// matches reports whether d is a delivery of this case's event: payloads
// are unique among the cases.
func (c *eventCase) matches(d delivery) bool { return bytes.Equal(d.body, c.ev.Payload) }

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// TestDeliveriesVerifyWithThirdPartyLibraries runs the bridge binary
// against a Go and a Node receiver and checks every delivery with the
// Standard Webhooks and Svix libraries of both languages, the CloudEvents
// Go SDK and a strict reading of the CloudEvents HTTP binding.
func TestDeliveriesVerifyWithThirdPartyLibraries(t *testing.T) {
	var (
		plain    = newSecret(t, 32)
		rotating = []string{newSecret(t, 24), newSecret(t, 64)} // the shortest and the longest allowed
	)
	secrets := map[string][]string{
		"go-all": {plain}, "node-all": {plain},
		"go-rotate": rotating, "node-rotate": rotating,
		"go-retry": {plain}, "node-retry": {plain},
	}

	ds := newDeliveries()
	goURL := startGoReceiver(t, ds)
	node := startNodeReceiver(t, ds, secrets)
	nodeURL := node.url

	// The group exists, at the start of the stream, before the bridge
	// starts: no event written meanwhile can be skipped.
	stream := fmt.Sprintf("interop-%d", time.Now().UnixNano())
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	defer client.Close()
	ctx := context.Background()
	if err := client.XGroupCreateMkStream(ctx, stream, "webhook-bridge", "0").Err(); err != nil {
		t.Fatalf("XGROUP CREATE: %v", err)
	}

	secretList := func(s []string) string { return "[" + strings.Join(s, ", ") + "]" }
	b := startBridge(t, `
listen: LISTEN
redis:
  url: redis://`+redisServer.Addr+`/0
stream: `+stream+`
group: webhook-bridge
consumer: interop
retry:
  schedule: [1500ms]
  max_attempts: 3
subscriptions:
  - id: go-all
    topic: "*"
    url: `+goURL+`/all
    secret: `+plain+`
  - id: node-all
    topic: "*"
    url: `+nodeURL+`/all
    secret: `+plain+`
  - id: go-rotate
    topic: key.rotated
    url: `+goURL+`/rotate
    secret: `+secretList(rotating)+`
  - id: node-rotate
    topic: key.rotated
    url: `+nodeURL+`/rotate
    secret: `+secretList(rotating)+`
  - id: go-retry
    topic: retry.me
    url: `+goURL+`/fail-first
    secret: `+plain+`
  - id: node-retry
    topic: retry.me
    url: `+nodeURL+`/fail-first
    secret: `+plain+`
`)

	created := time.Date(2026, 12, 1, 10, 20, 30, 123456789, time.UTC)
	both := map[string]int{"go-all": 1, "node-all": 1}
	stream1 := func(name, id, evName, corr string, payload []byte) *eventCase {
		return &eventCase{name: name, want: both, ev: pubsub.Event{
			ID: pubsub.ID(id), Name: pubsub.Name(evName), Payload: payload,
			Meta: pubsub.Meta{CreatedAtUTC: created, CorrelationID: corr},
		}}
	}
	cases := []*eventCase{
		stream1("payload ASCII JSON", "evt-ascii-json", "order.created", "req-ascii",
			[]byte(`{"order_id":7,"note":"plain ASCII"}`)),
		// Spacing, an escape and a number that JSON.parse then
		// JSON.stringify would all change: only the raw bytes verify.
		stream1("payload non-ASCII JSON", "evt-unicode-json", "order.created", "",
			[]byte(`{ "customer": "Zoë Ångström", "city": "Zürich", "note": "caf\u00e9 ☃ 🚀 日本", "amount": 1.50 }`)),
		stream1("payload text", "evt-text", "note.text", "",
			[]byte("plain text, not JSON: 100% \"quoted\" — ünïcödé ☃\nsecond line\n")),
		stream1("payload binary", "evt-binary", "blob.uploaded", "", allBytes()),
		stream1("id and name with spaces", "order 42", "order created", "request 42",
			[]byte(`{"case":"spaces"}`)),
		stream1("id and name with percent", "discount-100%-%41%zz", "promo.100%", "req-%41",
			[]byte(`{"case":"percent"}`)),
		stream1("id and name with quotes", `say-"hi"`, `quote."x"`, `"req"`,
			[]byte(`{"case":"quotes"}`)),
		stream1("id and name non-ASCII", "zoë-☃-🚀", "commande.créée", "corrélation-ü",
			[]byte(`{"case":"non-ascii"}`)),
		stream1("id and name with everything", `order 42 "Zoë" 100% ☃`, `order.créé "special" 50% off`, `req 7 %41 "ü"`,
			[]byte(`{"case":"everything"}`)),
		stream1("id with a dot", "forge.1795385012", "forge.pushed", "",
			[]byte(`{"case":"dotted-id"}`)),
		{name: "key rotation", want: map[string]int{"go-all": 1, "node-all": 1, "go-rotate": 1, "node-rotate": 1},
			ev: pubsub.Event{ID: "evt-rotated", Name: "key.rotated", Payload: []byte(`{"case":"rotation"}`),
				Meta: pubsub.Meta{CreatedAtUTC: created}}},
		{name: "retry", want: map[string]int{"go-all": 1, "node-all": 1, "go-retry": 2, "node-retry": 2},
			ev: pubsub.Event{ID: "evt-retry", Name: "retry.me", Payload: []byte(`{"case":"retry"}`),
				Meta: pubsub.Meta{CreatedAtUTC: created}}},
	}
	httpCase := func(name, post, evName, id, corr, payload string) *eventCase {
		return &eventCase{name: name, want: both, post: post, ev: pubsub.Event{
			ID: pubsub.ID(id), Name: pubsub.Name(evName), Payload: []byte(payload),
			Meta: pubsub.Meta{CorrelationID: corr},
		}}
	}
	cases = append(cases,
		httpCase("HTTP door ASCII JSON",
			`{"name": "http.ascii", "id": "http-ascii-1", "correlation_id": "http-corr-1", "payload": {"a": 1, "b": "plain"}}`,
			"http.ascii", "http-ascii-1", "http-corr-1", `{"a": 1, "b": "plain"}`),
		httpCase("HTTP door non-ASCII JSON",
			`{"name": "http.unicode", "id": "http_unicode_2", "payload": {"greeting": "Grüße, 世界 🚀", "escaped": "caf\u00e9", "n": 2.50}}`,
			"http.unicode", "http_unicode_2", "", `{"greeting": "Grüße, 世界 🚀", "escaped": "caf\u00e9", "n": 2.50}`),
		httpCase("HTTP door generated id",
			`{"name": "http.generated", "payload": [1, 2.50, "x"]}`,
			"http.generated", "", "", `[1, 2.50, "x"]`),
	)

	// The stream door: everything that HTTP refuses can come in here.
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	var fromStream []pubsub.Event
	for _, c := range cases {
		if !c.viaHTTP() {
			fromStream = append(fromStream, c.ev)
		}
	}
	if err := pub.Emit(ctx, fromStream...); err != nil {
		t.Fatalf("writing the events to the stream: %v", err)
	}
	_ = pub.Close()

	// The HTTP door, without a JWT (the config has no auth.jwt_secret).
	for _, c := range cases {
		if !c.viaHTTP() {
			continue
		}
		id := postEvent(t, b.Addr, c.post)
		if c.ev.ID != "" && string(c.ev.ID) != id {
			t.Errorf("%s: POST /v1/events answered id %q, want %q", c.name, id, c.ev.ID)
		}
		c.ev.ID = pubsub.ID(id)
	}

	count := func(all []delivery, c *eventCase, sub string) int {
		n := 0
		for _, d := range all {
			if c.matches(d) && d.subscription() == sub {
				n++
			}
		}
		return n
	}
	all, ok := ds.waitUntil(wait, func(all []delivery) bool {
		for _, c := range cases {
			for sub, n := range c.want {
				if count(all, c, sub) < n {
					return false
				}
			}
		}
		return true
	})
	if !ok {
		t.Errorf("not every expected delivery came within %s; the cases below say which are missing", wait)
	}

	// The deliveries to the Go receiver go through the Node verifiers
	// too, so that every delivery meets every verifier.
	for i := range all {
		if all[i].via == "go" {
			if err := node.check(&all[i]); err != nil {
				t.Fatalf("%s: %v", all[i], err)
			}
		}
	}
	for _, d := range all {
		if !slices.ContainsFunc(cases, func(c *eventCase) bool { return c.matches(d) }) {
			t.Errorf("%s matches no event sent: body %s", d, quote(string(d.body)))
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for sub, n := range c.want {
				if got := count(all, c, sub); got != n {
					t.Errorf("subscription %s got %d deliveries, want %d", sub, got, n)
				}
			}
			var mine []delivery
			for _, d := range all {
				if c.matches(d) {
					mine = append(mine, d)
					checkDelivery(t, c, d, secrets[d.subscription()])
				}
			}
			switch c.name {
			case "retry":
				for _, sub := range []string{"go-retry", "node-retry"} {
					checkRetry(t, sub, mine)
				}
			case "key rotation":
				for _, d := range mine {
					if strings.HasSuffix(d.subscription(), "-rotate") {
						if n := len(strings.Fields(d.header.Get("Webhook-Signature"))); n != 2 {
							t.Errorf("%s: webhook-signature has %d signatures, want 2 (one per secret)", d, n)
						}
					}
				}
			case "payload non-ASCII JSON":
				// Its spacing, escape and number all change when
				// parsed and re-encoded.
				for _, d := range mine {
					for _, ch := range d.node {
						if !strings.Contains(ch.Restringified, "No matching signature found") {
							t.Errorf("%s: standardwebhooks on JSON.stringify(JSON.parse(body)), secret %d, said %s, want no matching signature: docs/webhook-bridge.md (Receiving in Node) must change",
								d, ch.Secret, quote(ch.Restringified))
						}
					}
				}
			case "id with a dot":
				for _, d := range mine {
					if id := d.header.Get("Webhook-Id"); id == string(c.ev.ID) || strings.Contains(id, ".") {
						t.Errorf("%s: webhook-id %q for event id %q, want one without '.'", d, id, c.ev.ID)
					}
					// The signature is over the webhook-id sent, not over
					// the event's own id.
					h := d.header.Clone()
					h.Set("Webhook-Id", string(c.ev.ID))
					if verifyStandardWebhooks(secrets[d.subscription()][0], h, d.body) == nil {
						t.Errorf("%s: the signature verifies for the event id %q too, want only for the webhook-id sent", d, c.ev.ID)
					}
				}
			}
		})
	}
}

// postEvent sends one event to POST /v1/events and returns its ID.
func postEvent(t *testing.T, addr, body string) string {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v1/events", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST /v1/events: %v", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events %s = %d %s, want 202", body, resp.StatusCode, answer)
	}
	var ids struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(answer, &ids); err != nil || len(ids.IDs) != 1 {
		t.Fatalf("POST /v1/events answered %s (%v), want one id", answer, err)
	}
	return ids.IDs[0]
}

// checkDelivery checks what every delivery of c must satisfy, with every
// verifier and each of the subscription's secrets alone.
func checkDelivery(t *testing.T, c *eventCase, d delivery, secrets []string) {
	t.Helper()
	if len(secrets) == 0 {
		t.Errorf("%s: no secrets known for subscription %q", d, d.subscription())
		return
	}

	wantType := "application/octet-stream"
	if json.Valid(c.ev.Payload) {
		wantType = "application/json"
	}
	if got := d.header.Get("Content-Type"); got != wantType {
		t.Errorf("%s: content-type %q, want %q", d, got, wantType)
	}

	// Standard Webhooks: the webhook-id is the event id's message ID and
	// the signature verifies with each secret alone, in both Go libraries.
	webhookID := d.header.Get("Webhook-Id")
	if want := webhook.MessageID(c.ev.ID); webhookID != want {
		t.Errorf("%s: webhook-id %s, want webhook.MessageID(%s) = %s", d, quote(webhookID), quote(string(c.ev.ID)), quote(want))
	}
	if !webhookIDAlphabet.MatchString(webhookID) {
		t.Errorf("%s: webhook-id %s is not 1 to 128 of [A-Za-z0-9_-]", d, quote(webhookID))
	}
	// A verifier that accepts anything proves nothing: one changed byte
	// of the body must fail.
	tampered := append([]byte(nil), d.body...)
	if len(tampered) > 0 {
		tampered[len(tampered)/2] ^= 0x01
	}
	if verifyStandardWebhooks(secrets[0], d.header, tampered) == nil || verifySvix(secrets[0], d.header, tampered) == nil {
		t.Errorf("%s: a body with one byte changed still verifies", d)
	}
	for i, secret := range secrets {
		if err := verifyStandardWebhooks(secret, d.header, d.body); err != nil {
			t.Errorf("%s: standard-webhooks (Go) with secret %d alone: %v", d, i, err)
		}
		if err := verifySvix(secret, d.header, d.body); err != nil {
			t.Errorf("%s: svix (Go) with secret %d alone: %v", d, i, err)
		}
	}

	// CloudEvents: every ce-* header is strictly percent-encoded and
	// decodes to the event's own attribute, and the SDK reads a valid
	// event in binary mode whose data is the body.
	decoded := map[string]string{}
	for name, values := range d.header {
		if !strings.HasPrefix(name, "Ce-") && name != "X-Correlation-Id" {
			continue
		}
		for _, v := range values {
			s, err := decodeHeaderValue(v)
			if err != nil {
				t.Errorf("%s: %s: %s: %v", d, name, quote(v), err)
			}
			decoded[name] = s
		}
	}
	for _, want := range []struct{ header, value string }{
		{"Ce-Specversion", "1.0"},
		{"Ce-Id", string(c.ev.ID)},
		{"Ce-Type", string(c.ev.Name)},
		{"Ce-Source", source},
	} {
		if got, ok := decoded[want.header]; !ok || got != want.value {
			t.Errorf("%s: %s %s (raw %s) decodes to %s, want %s", d, want.header, map[bool]string{true: "present", false: "missing"}[ok],
				quote(d.header.Get(want.header)), quote(got), quote(want.value))
		}
	}
	if corr := c.ev.Meta.CorrelationID; corr != "" {
		if got := decoded["X-Correlation-Id"]; got != corr {
			t.Errorf("%s: x-correlation-id %s decodes to %s, want %s", d, quote(d.header.Get("X-Correlation-Id")), quote(got), quote(corr))
		}
	}
	if ts, err := time.Parse(time.RFC3339Nano, decoded["Ce-Time"]); err != nil {
		t.Errorf("%s: ce-time %s: %v", d, quote(d.header.Get("Ce-Time")), err)
	} else if !c.ev.Meta.CreatedAtUTC.IsZero() && !ts.Equal(c.ev.Meta.CreatedAtUTC) {
		t.Errorf("%s: ce-time %s, want the event's creation time %s", d, ts, c.ev.Meta.CreatedAtUTC)
	}
	ce, err := readCloudEvent(d.header, d.body)
	if err != nil {
		t.Errorf("%s: CloudEvents SDK: %v", d, err)
	} else {
		if ce.id != d.header.Get("Ce-Id") || ce.typ != d.header.Get("Ce-Type") || ce.specVersion != "1.0" || ce.source != d.header.Get("Ce-Source") {
			t.Errorf("%s: CloudEvents SDK read id %s type %s source %s specversion %s from the headers", d, quote(ce.id), quote(ce.typ), quote(ce.source), ce.specVersion)
		}
		if ce.contentType != wantType || !bytes.Equal(ce.data, d.body) {
			t.Errorf("%s: CloudEvents SDK read data of %d bytes, content type %q; want the %d-byte body, %q", d, len(ce.data), ce.contentType, len(d.body), wantType)
		}
	}

	checkNode(t, c, d, len(secrets))
	checkNodeDecoded(t, c, d)
}

// checkNode checks the Node receiver's verdicts. Both npm libraries hash
// the body decoded as UTF-8 (the Buffer's toString()), so a body that is
// not valid UTF-8 never verifies with them, however they are called: the
// documentation says so and tells receivers to verify such bodies with
// node:crypto on the raw bytes, which the receiver does too.
func checkNode(t *testing.T, c *eventCase, d delivery, secrets int) {
	t.Helper()
	if len(d.node) != secrets {
		t.Errorf("%s: the Node receiver checked %d secrets, want %d", d, len(d.node), secrets)
	}
	isUTF8, isJSON := utf8.Valid(d.body), json.Valid(d.body)
	const noMatch = "No matching signature found"
	for _, ch := range d.node {
		if ch.NodeCrypto != "ok" {
			t.Errorf("%s: node:crypto on the raw bytes, secret %d: %s", d, ch.Secret, ch.NodeCrypto)
		}
		for lib, got := range map[string]string{
			"standardwebhooks verify(body, req.headers, {jsonParse: false})": ch.StandardWebhooks,
			"svix verify(body, req.headers)":                                 ch.Svix,
		} {
			switch {
			case isUTF8 && got != "ok":
				t.Errorf("%s: %s with secret %d alone: %s", d, lib, ch.Secret, got)
			case !isUTF8 && !strings.Contains(got, noMatch):
				t.Errorf("%s: %s with secret %d on a body that is not UTF-8 said %s, not %q: the library changed, so docs/webhook-bridge.md (Receiving in Node) must too",
					d, lib, ch.Secret, quote(got), noMatch)
			}
		}
		switch {
		case !strings.Contains(ch.HeadersObject, "Missing required headers"):
			t.Errorf("%s: standardwebhooks given a Fetch API Headers object said %s, not \"Missing required headers\": docs/webhook-bridge.md (Receiving in Node) must change", d, quote(ch.HeadersObject))
		case !strings.Contains(ch.Uint8Array, "Expected payload to be of type string or Buffer"):
			t.Errorf("%s: standardwebhooks given a plain Uint8Array said %s: docs/webhook-bridge.md (Receiving in Node) must change", d, quote(ch.Uint8Array))
		case isUTF8 && ch.FetchStyle != "ok":
			t.Errorf("%s: both libraries given Buffer.from(arrayBuffer) and Object.fromEntries(headers), secret %d: %s", d, ch.Secret, ch.FetchStyle)
		}
		got := ch.StandardWebhooksJSON
		switch {
		case isJSON && got != "ok":
			t.Errorf("%s: standardwebhooks verify(body, req.headers) on a JSON body, secret %d: %s", d, ch.Secret, got)
		case !isJSON && isUTF8 && !strings.HasPrefix(got, "SyntaxError"):
			t.Errorf("%s: standardwebhooks verify(body, req.headers) on a text body, secret %d, said %s, not a SyntaxError from its JSON.parse: docs/webhook-bridge.md (Receiving in Node) must change",
				d, ch.Secret, quote(got))
		case !isUTF8 && !strings.Contains(got, noMatch):
			t.Errorf("%s: standardwebhooks verify(body, req.headers) on a body that is not UTF-8, secret %d, said %s", d, ch.Secret, quote(got))
		}
	}
}

// checkNodeDecoded checks that decodeURIComponent, which the docs tell
// Node receivers to use, gives back the event's id, name and correlation
// ID.
func checkNodeDecoded(t *testing.T, c *eventCase, d delivery) {
	t.Helper()
	for _, want := range []struct{ header, value string }{
		{"ce-id", string(c.ev.ID)},
		{"ce-type", string(c.ev.Name)},
		{"x-correlation-id", c.ev.Meta.CorrelationID},
	} {
		if want.value == "" {
			continue
		}
		if got := d.nodeDecoded[want.header]; got != want.value {
			t.Errorf("%s: decodeURIComponent(%s) in Node gives %s, want %s", d, want.header, quote(got), quote(want.value))
		}
	}
}

// checkRetry checks the two attempts a /fail-first subscription gets:
// the first answered 500, the second with the same webhook-id, a later
// webhook-timestamp and its own valid signature (checkDelivery verified
// both).
func checkRetry(t *testing.T, sub string, mine []delivery) {
	t.Helper()
	var attempts []delivery
	for _, d := range mine {
		if d.subscription() == sub {
			attempts = append(attempts, d)
		}
	}
	if len(attempts) != 2 {
		t.Errorf("%s: %d attempts, want 2", sub, len(attempts))
		return
	}
	first, second := attempts[0], attempts[1]
	if first.status != http.StatusInternalServerError || first.header.Get("Webhook-Attempt") != "1" {
		t.Errorf("%s: first delivery was attempt %s answered %d, want attempt 1 answered 500", sub, first.header.Get("Webhook-Attempt"), first.status)
	}
	if second.header.Get("Webhook-Attempt") != "2" || second.status/100 != 2 {
		t.Errorf("%s: second delivery was attempt %s answered %d, want attempt 2 answered 2xx", sub, second.header.Get("Webhook-Attempt"), second.status)
	}
	if a, b := first.header.Get("Webhook-Id"), second.header.Get("Webhook-Id"); a != b {
		t.Errorf("%s: the retry's webhook-id is %s, the first attempt's %s: want the same", sub, quote(b), quote(a))
	}
	t1, err1 := strconv.ParseInt(first.header.Get("Webhook-Timestamp"), 10, 64)
	t2, err2 := strconv.ParseInt(second.header.Get("Webhook-Timestamp"), 10, 64)
	if err1 != nil || err2 != nil || t2 <= t1 {
		t.Errorf("%s: webhook-timestamp %s then %s, want a later one on the retry (the schedule waits at least 1.2s)",
			sub, first.header.Get("Webhook-Timestamp"), second.header.Get("Webhook-Timestamp"))
	}
	if first.header.Get("Webhook-Signature") == second.header.Get("Webhook-Signature") {
		t.Errorf("%s: the retry carries the first attempt's signature; it signs its own timestamp", sub)
	}
}
