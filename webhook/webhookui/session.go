package webhookui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// CookieName is the session cookie's name.
const CookieName = "webhookui_session"

// Failed logins a process allows: a burst, then one every few seconds.
const (
	loginBurst = 10
	loginRate  = rate.Limit(1.0 / 3)
	// maxSessions bounds the sessions a process keeps; the oldest expiry
	// goes first when full.
	maxSessions = 10_000
)

// sessions keeps the logins of this process. A cookie is
// "<id>.<expiry>.<mac>": a random id, the expiry in Unix seconds and an
// HMAC-SHA256 of both with key; the id must also be live here (logout
// ends it).
type sessions struct {
	key    []byte // HMAC-SHA256(per-process secret, admin token)
	token  [32]byte
	ttl    time.Duration
	failed *rate.Limiter

	mu   sync.Mutex
	live map[string]time.Time
}

func newSessions(token string, secret []byte, ttl time.Duration, failed *rate.Limiter) *sessions {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("webhookui session key\x00" + token))
	return &sessions{key: m.Sum(nil), token: sha256.Sum256([]byte(token)), ttl: ttl, failed: failed, live: map[string]time.Time{}}
}

func (s *sessions) mac(parts ...string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// tokenMatches compares in constant time, whatever the lengths.
func (s *sessions) tokenMatches(typed string) bool {
	sum := sha256.Sum256([]byte(typed))
	return subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}

// create starts a session and returns its cookie value.
func (s *sessions) create(now time.Time) string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	exp := now.Add(s.ttl)
	s.mu.Lock()
	for k, e := range s.live {
		if !e.After(now) {
			delete(s.live, k)
		}
	}
	for len(s.live) >= maxSessions {
		oldest, at := "", time.Time{}
		for k, e := range s.live {
			if oldest == "" || e.Before(at) {
				oldest, at = k, e
			}
		}
		delete(s.live, oldest)
	}
	s.live[id] = exp
	s.mu.Unlock()
	expText := strconv.FormatInt(exp.Unix(), 10)
	return id + "." + expText + "." + s.mac("session", id, expText)
}

// check returns the session id of a cookie value that is well MAC'd,
// unexpired and live.
func (s *sessions) check(value string, now time.Time) (string, bool) {
	parts := strings.Split(value, ".")
	if len(parts) != 3 {
		return "", false
	}
	id, expText, mac := parts[0], parts[1], parts[2]
	if !hmac.Equal([]byte(mac), []byte(s.mac("session", id, expText))) {
		return "", false
	}
	exp, err := strconv.ParseInt(expText, 10, 64)
	if err != nil || now.Unix() >= exp {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	liveExp, ok := s.live[id]
	return id, ok && now.Before(liveExp)
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.live, id)
	s.mu.Unlock()
}

type sessionKey struct{}

// sessionID returns the session of a request the session middleware let
// through.
func sessionID(ctx context.Context) string { id, _ := ctx.Value(sessionKey{}).(string); return id }

func (c *Console) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: CookieName, Value: value, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || c.cfg.SecureCookie,
	}
}

// session lets through requests with a valid session: a GET without one
// is sent to the login page, a POST is refused; a POST must also carry
// the session's CSRF token.
func (c *Console) session(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := "", false
		if ck, err := r.Cookie(CookieName); err == nil {
			id, ok = c.sessions.check(ck.Value, time.Now())
		}
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.fail(w, r, http.StatusUnauthorized, "log in first: no valid session")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !c.checkCSRF(r, id) {
			c.cfg.Logger.Warn("webhookui: request without the session's CSRF token refused", "path", r.URL.Path)
			c.fail(w, r, http.StatusForbidden, "missing or wrong CSRF token: reload the page and try again")
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, id)))
	}
}

// safeNext is where to go after logging in: a console path, else the
// overview. The path is judged cleaned, as the browser resolves it
// ("/ui/../v1/x" is "/v1/x", a page of the API, not of the console), and
// no control character, space or backslash is let through: http.Redirect
// sends a URL it cannot parse as it is, without cleaning it, and browsers
// drop tabs and newlines from it.
func safeNext(next string) string {
	for i := 0; i < len(next); i++ {
		if c := next[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return "/ui/"
		}
	}
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "/ui//") {
		return "/ui/"
	}
	p, query, hasQuery := strings.Cut(next, "?")
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && !strings.HasSuffix(clean, "/") {
		clean += "/"
	}
	if !strings.HasPrefix(clean, "/ui/") || strings.HasPrefix(clean, "//") {
		return "/ui/"
	}
	if hasQuery {
		clean += "?" + query
	}
	return clean
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", "Log in", loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

type loginData struct {
	Next  string
	Error string
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	if c.sessions.failed.Tokens() < 1 {
		c.cfg.Logger.Warn("webhookui: login refused: too many failed logins")
		w.Header().Set("Retry-After", "5")
		c.render(w, r, http.StatusTooManyRequests, "login", "Log in", loginData{Next: next, Error: "Too many failed logins: wait a few seconds and try again."})
		return
	}
	if !c.sessions.tokenMatches(r.PostFormValue("token")) {
		c.sessions.failed.Allow()
		c.cfg.Logger.Warn("webhookui: failed login")
		c.render(w, r, http.StatusUnauthorized, "login", "Log in", loginData{Next: next, Error: "That is not the admin token."})
		return
	}
	http.SetCookie(w, c.cookie(r, c.sessions.create(time.Now()), int(c.cfg.SessionTTL/time.Second)))
	c.cfg.Logger.Info("webhookui: login")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	c.sessions.end(sessionID(r.Context()))
	http.SetCookie(w, c.cookie(r, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}
