package redact

import (
	"net/url"
	"slices"
	"strings"
)

// hidden stands for a value kept out of a log line, as in
// [url.URL.Redacted].
const hidden = "xxxxx"

// Endpoint returns raw for a log line: scheme, host and path as they are,
// the whole user info (a user name may be a token too) and every query
// value hidden, the query's keys kept, the fragment dropped. A URL that
// does not parse is not shown at all.
func Endpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return "(unparseable URL)"
	}
	if u.User != nil {
		u.User = url.User(hidden)
	}
	if u.RawQuery != "" || u.ForceQuery {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery = hidden
		} else {
			var parts []string
			for k, vs := range q {
				for range vs {
					parts = append(parts, url.QueryEscape(k)+"="+hidden)
				}
			}
			slices.Sort(parts)
			u.RawQuery = strings.Join(parts, "&")
		}
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}
