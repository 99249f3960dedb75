package webhook_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// decodeStrict reverses the CloudEvents HTTP binding's percent-encoding
// (3.1.3.2) and refuses whatever a correct encoder would not have written:
// a raw space, '"', byte outside printable ASCII, a '%' not followed by two
// uppercase hex digits, an escape for a byte that needs none, a result that
// is not UTF-8.
func decodeStrict(v string) (string, error) {
	unhex := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	var out []byte
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '%':
			if i+2 >= len(v) {
				return "", fmt.Errorf("byte %d: truncated escape", i)
			}
			hi, ok1 := unhex(v[i+1])
			lo, ok2 := unhex(v[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("byte %d: escape %q is not two uppercase hex digits", i, v[i:i+3])
			}
			b := hi<<4 | lo
			if b > ' ' && b < 0x7f && b != '"' && b != '%' {
				return "", fmt.Errorf("byte %d: %q needlessly escaped", i, b)
			}
			out = append(out, b)
			i += 2
		case c <= ' ' || c >= 0x7f || c == '"':
			return "", fmt.Errorf("byte %d: %q left unescaped", i, c)
		default:
			out = append(out, c)
		}
	}
	if !utf8.Valid(out) {
		return "", fmt.Errorf("decodes to invalid UTF-8 %q", out)
	}
	return string(out), nil
}

func TestDecodeStrictRefusesSloppyEncodings(t *testing.T) {
	for _, bad := range []string{"a b", "%e9", "%4", "%41", "\"", "caf\xc3\xa9", "%C3", "a%"} {
		if got, err := decodeStrict(bad); err == nil {
			t.Errorf("decodeStrict(%q) = %q, want an error", bad, got)
		}
	}
	if got, err := decodeStrict("caf%C3%A9%20100%25%22"); err != nil || got != `café 100%"` {
		t.Errorf("decodeStrict = %q, %v", got, err)
	}
}

// Ids, names and correlation IDs with spaces, '%', quotes and non-ASCII
// text reach the receiver in headers that are printable ASCII and decode
// back exactly; webhook-id is the stable MessageID, within the id
// alphabet, and the signature verifies over it, retries included.
func TestDeliveryHeadersCarryAnyText(t *testing.T) {
	const source = "urn:switchyard:test bridge/ü"
	created := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	events := []pubsub.Event{
		{ID: "sw id with spaces", Name: "ce.commande.créée", Meta: pubsub.Meta{CorrelationID: "corr with spaces"}},
		{ID: "sw-ünï-id-2", Name: "ce.discount 100%", Meta: pubsub.Meta{CorrelationID: `ünï %41 "quoted"`}},
		{ID: "forge.1795385012", Name: `say "hi"`, Meta: pubsub.Meta{CorrelationID: "100%"}},
		{ID: `q"uote%20d`, Name: "emoji 🎉\u00a0nbsp"},
		{ID: "plain-ID_1", Name: "plain.name", Meta: pubsub.Meta{CorrelationID: "req-1"}},
		{ID: pubsub.ID(strings.Repeat("a", webhook.MaxEventIDLen+1)), Name: "long.id"},
		{ID: "~!*'();:@&=+$,/?#[]", Name: "n"},
	}
	for i := range events {
		events[i].Meta.CreatedAtUTC = created
		events[i].Payload = []byte(`{"i":` + strconv.Itoa(i) + `}`)
	}
	var failedOnce atomic.Bool
	s := newSink(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		// The first event's first attempt fails: its retry must carry the
		// same webhook-id.
		if r.Header.Get("Ce-Id") == "sw%20id%20with%20spaces" && failedOnce.CompareAndSwap(false, true) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	newHarness(t, webhook.Config{Source: source, Subscriptions: []webhook.Subscription{{
		ID: "all", Topic: "*", URL: s.URL, Secrets: webhook.Secrets{vectorSecret},
	}}}).emit(t, events...)
	hits := s.waitFor(t, len(events)+1)

	byID := map[pubsub.ID]pubsub.Event{}
	for _, ev := range events {
		byID[ev.ID] = ev
	}
	webhookIDs := map[pubsub.ID]string{}
	for _, h := range hits {
		for k, vs := range h.Header {
			for _, v := range vs {
				for i := 0; i < len(v); i++ {
					if v[i] < ' ' || v[i] > '~' {
						t.Errorf("header %s = %q: byte %d is not printable ASCII", k, v, i)
					}
				}
			}
		}
		decoded := map[string]string{}
		for _, k := range []string{"Ce-Id", "Ce-Type", "Ce-Source", "Ce-Time", webhook.HeaderCorrelationID} {
			d, err := decodeStrict(h.Header.Get(k))
			if err != nil {
				t.Errorf("header %s = %q: %v", k, h.Header.Get(k), err)
			}
			decoded[k] = d
		}
		ev, ok := byID[pubsub.ID(decoded["Ce-Id"])]
		if !ok {
			t.Errorf("ce-id %q decodes to %q, no event's ID", h.Header.Get("Ce-Id"), decoded["Ce-Id"])
			continue
		}
		for k, want := range map[string]string{
			"Ce-Type": string(ev.Name), "Ce-Source": source, "Ce-Time": created.Format(time.RFC3339Nano),
			webhook.HeaderCorrelationID: ev.Meta.CorrelationID,
		} {
			if decoded[k] != want {
				t.Errorf("event %q: %s decodes to %q, want %q", ev.ID, k, decoded[k], want)
			}
		}

		wid := h.Header.Get("Webhook-Id")
		if err := webhook.CheckEventID(wid); err != nil || strings.Contains(wid, ".") {
			t.Errorf("event %q: webhook-id %q is outside the id alphabet: %v", ev.ID, wid, err)
		}
		if want := webhook.MessageID(ev.ID); wid != want {
			t.Errorf("event %q: webhook-id %q, want MessageID %q", ev.ID, wid, want)
		}
		if webhook.CheckEventID(string(ev.ID)) == nil && wid != string(ev.ID) {
			t.Errorf("event %q has a valid id but webhook-id %q", ev.ID, wid)
		}
		if prev, seen := webhookIDs[ev.ID]; seen && prev != wid {
			t.Errorf("event %q: webhook-id %q on one attempt, %q on another", ev.ID, prev, wid)
		}
		webhookIDs[ev.ID] = wid

		ts, err := strconv.ParseInt(h.Header.Get("Webhook-Timestamp"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		sig := h.Header.Get("Webhook-Signature")
		if !webhook.Verify(vectorSecret, wid, ts, h.Body, sig) || !verifyIndependently(vectorSecret, wid, strconv.FormatInt(ts, 10), h.Body, sig) {
			t.Errorf("event %q: signature %q does not verify over webhook-id %q", ev.ID, sig, wid)
		}
	}
	if len(webhookIDs) != len(events) {
		t.Errorf("deliveries for %d events, want %d", len(webhookIDs), len(events))
	}
}
