// Package redact keeps credentials out of logs and error messages.
package redact

import (
	"net/url"
	"strings"
)

// URL returns raw with any password hidden: the user info's, and the
// value of every query parameter whose name says it holds a password, a
// secret or a token ("password", where go-redis's Sentinel URLs carry the
// primary's, and names such as sentinel_password or auth_token that
// other clients use and go-redis refuses, naming the URL). A URL that does not parse is not
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
		} else {
			hide := false
			for k, vs := range q {
				if secretOption(k) {
					for i := range vs {
						vs[i] = hidden
					}
					hide = true
				}
			}
			if hide {
				u.RawQuery = q.Encode()
			}
		}
	}
	return u.Redacted()
}

// secretOption reports whether a query parameter's name says that its
// value is a password, a secret or a token.
func secretOption(name string) bool {
	name = strings.ToLower(name)
	for _, w := range []string{"pass", "secret", "token", "auth", "key", "cred"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
