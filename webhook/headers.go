package webhook

import (
	"fmt"
	"net/http"
	"strings"
)

// percentEncode encodes s for a CloudEvents ce-* header (HTTP protocol
// binding 3.1.3.2): of its UTF-8 bytes, space, '"', '%' and every byte
// outside U+0021 to U+007E become %XX with uppercase hex digits, the rest
// stays as it is. The result is printable ASCII without spaces.
func percentEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if mustEncode(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	buf := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if mustEncode(c) {
			buf = append(buf, '%', hexDigits[c>>4], hexDigits[c&0xf])
			continue
		}
		buf = append(buf, c)
	}
	return string(buf)
}

func mustEncode(c byte) bool { return c <= ' ' || c > '~' || c == '"' || c == '%' }

// tchar reports whether c may appear in an HTTP token (RFC 9110 5.6.2),
// which is what a header name is.
func tchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// checkHeaderName reports why name is not an HTTP token, or nil.
func checkHeaderName(name string) error {
	if name == "" {
		return fmt.Errorf("empty name")
	}
	for i := 0; i < len(name); i++ {
		if !tchar(name[i]) {
			return fmt.Errorf("byte %d of the name is %q, not an HTTP token character", i, name[i])
		}
	}
	return nil
}

// checkHeaderValue reports why v cannot be sent as a header value, or nil:
// what net/http refuses (control characters other than tab), and, when
// asciiOnly, any byte beyond ASCII.
func checkHeaderValue(v string, asciiOnly bool) error {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c < ' ' && c != '\t', c == 0x7f:
			return fmt.Errorf("byte %d of the value is the control character %q", i, c)
		case c > 0x7f && asciiOnly:
			return fmt.Errorf("byte %d of the value is not ASCII", i)
		}
	}
	return nil
}

// checkRequestHeaders reports the first header of h that net/http would
// refuse to send, so that such a delivery is known undeliverable before
// any byte of it leaves, without reading the transport's error text.
func checkRequestHeaders(h http.Header) error {
	for k, vs := range h {
		if err := checkHeaderName(k); err != nil {
			return fmt.Errorf("header %q: %v", k, err)
		}
		for _, v := range vs {
			if err := checkHeaderValue(v, false); err != nil {
				return fmt.Errorf("header %s: %v", k, err)
			}
		}
	}
	return nil
}

// reservedHeader reports whether a subscription may not set the header
// called name: the bridge sets it, or HTTP manages it.
func reservedHeader(name string) bool {
	n := strings.ToLower(name)
	for _, prefix := range []string{"webhook-", "ce-", "proxy-"} {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	switch n {
	case "content-type", "content-length", "content-encoding", "transfer-encoding", "user-agent", "host",
		"connection", "te", "trailer", "upgrade", "keep-alive", "x-correlation-id":
		return true
	}
	return false
}
