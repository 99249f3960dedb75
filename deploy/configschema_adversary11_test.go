package deploy

import "testing"

// TestSchemaAndLoaderAgreeOnNumbers: zero written as a YAML number
// other than 0 is a zero duration to both the schema and the bridge,
// and a count past 64 bits is refused by both.
func TestSchemaAndLoaderAgreeOnNumbers(t *testing.T) {
	sch := configSchema(t)
	for _, tc := range []struct {
		config string
		ok     bool
	}{
		{"timeout: 0.0\n", true},
		{"shutdown_delay: 00\n", true},
		{"disable_after: 0x0\n", true},
		{"retry:\n  schedule: [1s, 0.0]\n", false},
		{"stream_max_len: 9223372036854775807\n", true},
		{"stream_max_len: 9223372036854775808\n", false},
		{"concurrency: 9223372036854775808\n", false},
		{"dead_letters:\n  max_len: 9223372036854775808\n", false},
	} {
		serr := validateYAML(sch, tc.config)
		if (serr == nil) != tc.ok {
			t.Errorf("%q: schema error %v, want ok %v", tc.config, serr, tc.ok)
		}
		code, out := configCheck(t, tc.config, nil)
		if (code == 0) != tc.ok {
			t.Errorf("%q: config check exit status %d, want ok %v:\n%s", tc.config, code, tc.ok, out)
		}
	}
}
