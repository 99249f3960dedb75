package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://:pa55@127.0.0.1:6379/0", "redis://:xxxxx@127.0.0.1:6379/0"},
		{"rediss://bridge:pa55@h:6380", "rediss://bridge:xxxxx@h:6380"},
		{"redis://s:pa55@h:26379?master_name=m&username=u&password=pa55", "redis://s:xxxxx@h:26379?master_name=m&password=xxxxx&username=u"},
		{"redis://h:26379?password=pa55&password=pa56", "redis://h:26379?password=xxxxx&password=xxxxx"},
		{"redis://h:26379?password=%zzpa55", "redis://h:26379?xxxxx"},
		{"redis://:pa55@h:notaport", "(unparseable URL)"},
	} {
		got := URL(tc.in)
		if got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "pa55") || strings.Contains(got, "pa56") {
			t.Errorf("URL(%q) = %q shows the password", tc.in, got)
		}
	}
}
