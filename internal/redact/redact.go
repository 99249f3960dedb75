// Package redact keeps credentials out of logs and error messages.
package redact

import "net/url"

// URL returns raw with any password hidden; a URL that does not parse is
// not shown at all, since it may hold credentials in a form Parse missed.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
