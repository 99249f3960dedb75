// Package redact keeps credentials out of logs and error messages.
package redact

import "net/url"

// URL returns raw with any password hidden: the user info's, and the
// value of every "password" query parameter (go-redis's Sentinel URLs
// carry the primary's password there). A URL that does not parse is not
// shown at all, since it may hold credentials in a form Parse missed.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery = hidden
		} else if vs, ok := q["password"]; ok {
			for i := range vs {
				vs[i] = hidden
			}
			u.RawQuery = q.Encode()
		}
	}
	return u.Redacted()
}
