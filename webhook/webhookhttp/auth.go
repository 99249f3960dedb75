package webhookhttp

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// checkJWT accepts only an HS256 token signed with secret, already valid,
// unexpired and, unless allowNoExp, with an expiry; "none", RS256 and
// every other algorithm are refused.
func checkJWT(r *http.Request, secret string, allowNoExp bool) error {
	token, ok := bearer(r)
	if !ok {
		return errors.New("missing bearer token")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"})}
	if !allowNoExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	_, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return []byte(secret), nil }, opts...)
	if err != nil {
		return errors.New("invalid token: " + err.Error())
	}
	return nil
}

// admin guards the admin API with the admin token; without one
// configured, the admin API is off.
func (h *Handler) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.cfg.AdminToken == "" {
			writeError(w, http.StatusForbidden, "admin API disabled: set an admin token (auth.admin_token)")
			return
		}
		token, ok := bearer(r)
		if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(h.cfg.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="webhook-bridge admin"`)
			writeError(w, http.StatusUnauthorized, "admin token required")
			return
		}
		next(w, r)
	}
}
