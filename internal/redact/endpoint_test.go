package redact

import (
	"strings"
	"testing"
)

func TestEndpoint(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://hooks.example.com/in", "https://hooks.example.com/in"},
		{"https://user:pa55@hooks.example.com:8443/in", "https://xxxxx@hooks.example.com:8443/in"},
		{"https://tok3n@hooks.example.com/in", "https://xxxxx@hooks.example.com/in"},
		{"http://h/in?token=s3cret&b=1&b=2", "http://h/in?b=xxxxx&b=xxxxx&token=xxxxx"},
		{"http://h/in?%zz=s3cret", "http://h/in?xxxxx"},
		{"http://h/in#s3cret", "http://h/in"},
		{"http://h/in?", "http://h/in?"},
		{"http://[::1", "(unparseable URL)"},
		{"mailto:s3cret@example.com", "(unparseable URL)"},
	} {
		got := Endpoint(tc.in)
		if got != tc.want {
			t.Errorf("Endpoint(%q) = %q, want %q", tc.in, got, tc.want)
		}
		for _, secret := range []string{"pa55", "tok3n", "s3cret"} {
			if strings.Contains(got, secret) {
				t.Errorf("Endpoint(%q) = %q shows %q", tc.in, got, secret)
			}
		}
	}
}
