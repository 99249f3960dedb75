package main

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

// checkJWT accepts only an HS256 token signed with secret, unexpired and
// already valid; "none", RS256 and every other algorithm are refused.
func checkJWT(r *http.Request, secret string) error {
	token, ok := bearer(r)
	if !ok {
		return errors.New("missing bearer token")
	}
	_, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		return errors.New("invalid token: " + err.Error())
	}
	return nil
}

// checkAdmin compares the bearer token with the admin token in constant
// time.
func checkAdmin(r *http.Request, adminToken string) bool {
	token, ok := bearer(r)
	return ok && subtle.ConstantTimeCompare([]byte(token), []byte(adminToken)) == 1
}
