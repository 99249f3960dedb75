package webhook

import (
	"fmt"
	"net/http"
	"testing"
)

// Every byte is encoded exactly when CloudEvents' HTTP binding says so:
// space, '"', '%' and everything outside U+0021 to U+007E.
func TestPercentEncodeEveryByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		in := string([]byte{byte(c)})
		want := in
		if c <= 0x20 || c >= 0x7f || c == '"' || c == '%' {
			want = fmt.Sprintf("%%%02X", c)
		}
		if got := percentEncode(in); got != want {
			t.Errorf("percentEncode(%q) = %q, want %q", in, got, want)
		}
	}
	if got := percentEncode("ce.commande.créée 100%"); got != "ce.commande.cr%C3%A9%C3%A9e%20100%25" {
		t.Errorf("percentEncode = %q", got)
	}
}

func TestCheckRequestHeaders(t *testing.T) {
	for _, h := range []http.Header{
		{"X-A": {"line\nbreak"}}, {"X-A": {"cr\r"}}, {"X-A": {"\x00"}}, {"X-A": {"\x7f"}}, {"X A": {"v"}}, {"": {"v"}},
	} {
		if err := checkRequestHeaders(h); err == nil {
			t.Errorf("%q passed", h)
		}
	}
	if err := checkRequestHeaders(http.Header{"X-A": {"tab\tand space", "obs-text \xe9"}}); err != nil {
		t.Errorf("what net/http sends was refused: %v", err)
	}
}
