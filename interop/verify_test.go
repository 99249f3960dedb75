package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	cebinding "github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	svix "github.com/svix/svix-webhooks/go"
)

// verifyStandardWebhooks checks a delivery with the official Standard
// Webhooks Go library, with one secret.
func verifyStandardWebhooks(secret string, header http.Header, body []byte) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return fmt.Errorf("NewWebhook: %w", err)
	}
	return wh.Verify(body, header)
}

// verifySvix checks a delivery with the Svix Go SDK, with one secret.
func verifySvix(secret string, header http.Header, body []byte) error {
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		return fmt.Errorf("NewWebhook: %w", err)
	}
	return wh.Verify(body, header)
}

// cloudEvent is what the CloudEvents Go SDK makes of a delivery in binary
// mode.
type cloudEvent struct {
	id, typ, source, specVersion, contentType string
	data                                      []byte
}

// readCloudEvent turns the delivery into an event with the CloudEvents Go
// SDK's HTTP binding, as a CloudEvents receiver would, and validates it.
func readCloudEvent(header http.Header, body []byte) (cloudEvent, error) {
	req, err := http.NewRequest(http.MethodPost, "http://receiver.invalid/", bytes.NewReader(body))
	if err != nil {
		return cloudEvent{}, err
	}
	req.Header = header.Clone()
	msg := cehttp.NewMessageFromHttpRequest(req)
	if enc := msg.ReadEncoding(); enc != cebinding.EncodingBinary {
		return cloudEvent{}, fmt.Errorf("the SDK reads the message as %s, want binary mode", enc)
	}
	ev, err := cebinding.ToEvent(context.Background(), msg)
	if err != nil {
		return cloudEvent{}, fmt.Errorf("binding.ToEvent: %w", err)
	}
	if err := ev.Validate(); err != nil {
		return cloudEvent{}, fmt.Errorf("Validate: %w", err)
	}
	return cloudEvent{
		id: ev.ID(), typ: ev.Type(), source: ev.Source(), specVersion: ev.SpecVersion(),
		contentType: ev.DataContentType(), data: ev.Data(),
	}, nil
}

// decodeHeaderValue decodes a ce-* string header strictly by the
// CloudEvents HTTP binding (3.1.3.2): the value is ASCII; space, '"', '%'
// and every character outside U+0021–U+007E appear only percent-encoded,
// as %XX with two hex digits; and the decoded bytes are valid UTF-8.
func decodeHeaderValue(raw string) (string, error) {
	var out []byte
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", fmt.Errorf("byte %d: %% not followed by two hex digits", i)
			}
			out = append(out, unhex(raw[i+1])<<4|unhex(raw[i+2]))
			i += 2
		case c == '"':
			return "", fmt.Errorf(`byte %d: a bare '"', which must be percent-encoded`, i)
		case c < 0x21 || c > 0x7e:
			return "", fmt.Errorf("byte %d is 0x%02x: outside U+0021–U+007E, so it must be percent-encoded", i, c)
		default:
			out = append(out, c)
		}
	}
	if !utf8.Valid(out) {
		return "", errors.New("decodes to invalid UTF-8")
	}
	return string(out), nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// webhookIDAlphabet is what a webhook-id may hold: every Standard
// Webhooks verifier reads such an id alike, and it has no '.', the
// separator of the signed content.
var webhookIDAlphabet = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// quote shows untrusted text in a failure message: quoted, and cut.
func quote(s string) string {
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return fmt.Sprintf("%q", s)
}

func TestDecodeHeaderValue(t *testing.T) {
	for _, tc := range []struct {
		raw, want, err string
	}{
		{raw: "evt-1", want: "evt-1"},
		{raw: "order%2042%20%22Zo%C3%AB%22%20100%25", want: `order 42 "Zoë" 100%`},
		{raw: "zo%c3%ab", want: "zoë"},
		{raw: "forge.1795385012", want: "forge.1795385012"},
		{raw: "order 42", err: "0x20"},
		{raw: `say-"hi"`, err: `bare '"'`},
		{raw: "100%", err: "two hex digits"},
		{raw: "%4", err: "two hex digits"},
		{raw: "%zz", err: "two hex digits"},
		{raw: "zoë", err: "0xc3"},
		{raw: "%C3", err: "invalid UTF-8"},
		{raw: "tab\there", err: "0x09"},
	} {
		got, err := decodeHeaderValue(tc.raw)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("decodeHeaderValue(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("decodeHeaderValue(%q) = %q, %v; want an error saying %q", tc.raw, got, err, tc.err)
		}
	}
}
