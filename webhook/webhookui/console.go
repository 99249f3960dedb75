package webhookui

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Config configures a [Console]. API and AdminToken are required; every
// other zero value is the default its doc states.
type Config struct {
	// API is the admin API the console shows: a *webhookhttp.Handler.
	API http.Handler
	// AdminToken is the API's admin token: what an operator types to log
	// in, and what the console's internal requests carry.
	AdminToken string
	// Logger receives logins, refusals and errors.
	// default: nil, which discards
	Logger *slog.Logger
	// SessionTTL is how long a login lasts.
	// default: 12h
	SessionTTL time.Duration
	// SecureCookie marks the session cookie Secure even over plain HTTP:
	// set it behind a proxy that terminates TLS. Over TLS it is always
	// Secure.
	// default: false
	SecureCookie bool
	// SampleEvery is how often the overview samples the API's /metrics.
	// default: 15s
	SampleEvery time.Duration
}

// Defaults of [Config].
const (
	DefaultSessionTTL  = 12 * time.Hour
	DefaultSampleEvery = 15 * time.Second
	// Points is how many samples the overview keeps: an hour at the
	// default interval.
	Points = 240
)

// Validate reports the first field of c that holds an invalid value.
func (c Config) Validate() error {
	switch {
	case c.API == nil:
		return errors.New("webhookui: Config.API is required")
	case c.AdminToken == "":
		return errors.New("webhookui: Config.AdminToken is required: the console is off without the admin API")
	case c.SessionTTL < 0:
		return errors.New("webhookui: Config.SessionTTL is negative")
	case c.SampleEvery < 0:
		return errors.New("webhookui: Config.SampleEvery is negative")
	}
	return nil
}

// Console serves the operator console under /ui/. Make it with [New];
// it is an [http.Handler]. Its sampler runs from [Console.Run] or the
// first request until [Console.Close].
type Console struct {
	cfg      Config
	mux      *http.ServeMux
	pages    map[string]*pageTemplate
	sessions *sessions
	cop      *http.CrossOriginProtection
	guarded  http.Handler // mux behind cop
	series   *ring

	start     sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New returns the console of cfg.
func New(cfg Config) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.SampleEvery == 0 {
		cfg.SampleEvery = DefaultSampleEvery
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // never fails (crypto/rand)
	c := &Console{
		cfg: cfg, mux: http.NewServeMux(), pages: pages,
		sessions: newSessions(cfg.AdminToken, secret, cfg.SessionTTL, rate.NewLimiter(loginRate, loginBurst)),
		cop:      http.NewCrossOriginProtection(),
		series:   &ring{},
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.cfg.Logger.Warn("webhookui: cross-origin request refused", "method", r.Method, "path", r.URL.Path)
		c.fail(w, r, http.StatusForbidden, "cross-origin request refused")
	}))
	c.routes()
	c.guarded = c.cop.Handler(c.mux)
	return c, nil
}

func (c *Console) routes() {
	m := c.mux
	for _, name := range []string{"console.css", "console.js"} {
		m.HandleFunc("GET /ui/static/"+name, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, assets, "static/"+name)
		})
	}
	m.HandleFunc("GET /ui/login", c.loginPage)
	m.HandleFunc("POST /ui/login", c.login)
	m.HandleFunc("POST /ui/logout", c.session(c.logout))
	m.HandleFunc("GET /ui/{$}", c.session(c.overview))
	m.HandleFunc("GET /ui/subscriptions", c.session(c.subscriptionsPage))
	m.HandleFunc("POST /ui/subscriptions/{id}/disable", c.session(c.disable))
	m.HandleFunc("POST /ui/subscriptions/{id}/enable", c.session(c.enable))
	m.HandleFunc("GET /ui/subscriptions/{id}/edit", c.session(c.editPage))
	m.HandleFunc("POST /ui/subscriptions/{id}/edit", c.session(c.save))
	m.HandleFunc("POST /ui/subscriptions/{id}/check", c.session(c.check))
	m.HandleFunc("GET /ui/log", c.session(c.logPage))
	m.HandleFunc("GET /ui/events/{id}", c.session(c.eventPage))
	m.HandleFunc("GET /ui/dlq", c.session(c.deadLettersPage))
	m.HandleFunc("POST /ui/dlq/replay", c.session(c.replay))
	m.HandleFunc("GET /ui/recover", c.session(c.recoverPage))
	m.HandleFunc("POST /ui/recover", c.session(c.recover))
}

// csp allows the console's own script and style files and nothing inline.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP answers a request under /ui/, with the security headers on
// every answer.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.start.Do(c.startSampler)
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	if _, pattern := c.mux.Handler(r); pattern == "" {
		c.fail(w, r, http.StatusNotFound, "no such page")
		return
	}
	c.guarded.ServeHTTP(w, r)
}

// Run starts the overview's sampler, if no request did, and returns when
// ctx is done, after closing the console.
func (c *Console) Run(ctx context.Context) {
	c.start.Do(c.startSampler)
	select {
	case <-ctx.Done():
	case <-c.ctx.Done():
	}
	c.Close()
}

// Close stops the sampler and waits for it. Safe to call twice; the
// console still answers pages afterwards, with the series it has.
func (c *Console) Close() error {
	c.closeOnce.Do(func() {
		c.start.Do(func() {}) // a sampler not started never will be
		c.cancel()
	})
	c.wg.Wait()
	return nil
}

func (c *Console) startSampler() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.sampleLoop(c.ctx)
	}()
}
