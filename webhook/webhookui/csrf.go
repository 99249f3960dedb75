package webhookui

import (
	"crypto/hmac"
	"net/http"
)

// CSRF protection has two layers. Every POST must carry the session's
// token, in the form field "csrf" or the header X-CSRF-Token (the
// console's script); the token is an HMAC of the session id, so it needs
// no storage and changes with every login. And before any handler runs,
// [http.CrossOriginProtection] refuses requests a browser marks as
// cross-site (Sec-Fetch-Site) or whose Origin is another host; requests
// without either header (not from a browser) pass on to the token check.

// csrfField is the name of the hidden form field holding the token.
const csrfField = "csrf"

// csrf is the CSRF token of session id.
func (s *sessions) csrf(id string) string { return s.mac("csrf", id) }

// checkCSRF reports whether r carries the CSRF token of session id.
func (c *Console) checkCSRF(r *http.Request, id string) bool {
	token := r.Header.Get("X-CSRF-Token")
	if token == "" {
		token = r.PostFormValue(csrfField)
	}
	return token != "" && hmac.Equal([]byte(token), []byte(c.sessions.csrf(id)))
}
