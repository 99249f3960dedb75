package webhookhttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// Config configures a [Handler]. Bridge and Publisher are required; every
// other zero value is the default its doc states.
type Config struct {
	// Bridge delivers the events; the admin API sets its subscriptions
	// and reads and replays its dead letters.
	Bridge *webhook.Bridge
	// Publisher is where ingest emits events: the stream the bridge
	// consumes.
	Publisher pubsub.Publisher
	// Store keeps the subscriptions made through the admin API; share a
	// [RedisStore] between replicas.
	// default: a MemoryStore
	Store SubscriptionStore
	// ReadOnly are subscriptions from a configuration file: listed, in
	// force, and refused to the admin API (409).
	ReadOnly []webhook.Subscription
	// JWTSecret, when set, makes POST /v1/events require an HS256 bearer
	// token signed with it.
	// default: "", ingest is open
	JWTSecret string
	// AllowTokensWithoutExpiry accepts JWTs without an "exp" claim, which
	// never expire.
	// default: false, such tokens are refused (401)
	AllowTokensWithoutExpiry bool
	// AdminToken, when set, enables /v1/subscriptions, /v1/dlq,
	// /v1/attempts and /v1/events/{id} behind this bearer token.
	// default: "", the admin API answers 403
	AdminToken string
	// MaxBodyBytes limits a POST /v1/events body (413 above).
	// default: 1 MiB
	MaxBodyBytes int64
	// MaxBatch limits the events of one POST /v1/events (413 above).
	// default: 1000
	MaxBatch int
	// Dedupe remembers the ids ingest accepted, so that the same id
	// posted again within DedupeWindow is not emitted twice; share a
	// [RedisDedupe] between replicas.
	// default: a MemoryDedupe
	Dedupe Deduper
	// DedupeWindow is how long an accepted id is remembered; negative
	// turns deduplication off.
	// default: 1h
	DedupeWindow time.Duration
	// EmitTimeout bounds the Emit of one POST /v1/events; it must end
	// well inside [ClaimTTL], so that no other request can claim the ids
	// being emitted, and Publisher must honour it.
	// default: 10s; at most ClaimTTL/2
	EmitTimeout time.Duration
	// Targets is checked against subscription URLs that are literal
	// addresses when the admin API receives them; names are checked by
	// the bridge at every delivery.
	// default: every address
	Targets webhook.TargetPolicy
	// Unhandled lists what the backend dead-lettered before the bridge
	// could handle it (entries that are not events, or whose handling
	// crashed or hung every time): GET /v1/dlq shows them after the
	// bridge's dead letters, with kind "unhandled". Replays skip them.
	// default: none
	Unhandled []DeadLetterLister
	// Ready reports whether the bridge can work (its backend answers), for
	// /readyz.
	// default: always ready
	Ready func(context.Context) error
	// Gatherer, when set, is served at /metrics.
	// default: no /metrics
	Gatherer prometheus.Gatherer
	// Metrics, when set, counts what ingest accepts.
	Metrics *Metrics
	// TracerProvider makes a server span for each POST /v1/events, the
	// child of the caller's span when the request carries a W3C
	// traceparent header; the events emitted continue it (the Publisher's
	// send span is its child). Without one (nil, and no global provider
	// set) no span is made, and the events still carry the caller's
	// traceparent. Other routes are not traced.
	// default: nil, the global TracerProvider (otel.GetTracerProvider)
	TracerProvider trace.TracerProvider
	// Logger receives errors and subscription changes.
	// default: nil, which discards
	Logger *slog.Logger
}

// Defaults of [Config].
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxBatch     = 1000
	DefaultDedupeWindow = time.Hour
	DefaultEmitTimeout  = ClaimTTL / 3
)

// Validate reports the first field of c that holds an invalid value.
func (c Config) Validate() error {
	switch {
	case c.Bridge == nil:
		return errors.New("webhookhttp: Config.Bridge is required")
	case c.Publisher == nil:
		return errors.New("webhookhttp: Config.Publisher is required")
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("webhookhttp: Config.MaxBodyBytes is %d, want 0 (default) or more", c.MaxBodyBytes)
	case c.DedupeWindow > 0 && c.DedupeWindow < time.Second:
		return fmt.Errorf("webhookhttp: Config.DedupeWindow is %s, want at least 1s (negative: off)", c.DedupeWindow)
	case c.EmitTimeout < 0 || c.EmitTimeout > ClaimTTL/2:
		return fmt.Errorf("webhookhttp: Config.EmitTimeout is %s, want 0 (default) to %s", c.EmitTimeout, ClaimTTL/2)
	case c.MaxBatch < 0:
		return fmt.Errorf("webhookhttp: Config.MaxBatch is %d, want 0 (default) or more", c.MaxBatch)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Store == nil {
		c.Store = NewMemoryStore()
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.Dedupe == nil {
		c.Dedupe = NewMemoryDedupe()
	}
	if c.EmitTimeout == 0 {
		c.EmitTimeout = DefaultEmitTimeout
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Handler serves the bridge's HTTP API. Make it with [New], load the
// stored subscriptions into the bridge with [Handler.Sync], and keep them
// current with [Handler.Watch] when other replicas change them.
type Handler struct {
	cfg      Config
	mux      *http.ServeMux
	subs     *subscriptions
	patterns []string // every pattern mounted, in order
}

// New returns the handler of cfg.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	h.subs = &subscriptions{readOnly: cfg.ReadOnly, store: cfg.Store, bridge: cfg.Bridge, log: cfg.Logger, seen: -1}
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	h.handle("POST /v1/events", h.traced(http.HandlerFunc(h.postEvents)))
	h.handle("GET /v1/subscriptions", h.admin(h.listSubscriptions))
	h.handle("POST /v1/subscriptions", h.admin(h.createSubscription))
	h.handle("POST /v1/subscriptions/check", h.admin(h.checkSubscription))
	h.handle("GET /v1/subscriptions/{id}", h.admin(h.getSubscription))
	h.handle("PUT /v1/subscriptions/{id}", h.admin(h.putSubscription))
	h.handle("DELETE /v1/subscriptions/{id}", h.admin(h.deleteSubscription))
	h.handle("POST /v1/subscriptions/{id}/disable", h.admin(h.disableSubscription))
	h.handle("POST /v1/subscriptions/{id}/enable", h.admin(h.enableSubscription))
	h.handle("GET /v1/subscriptions/{id}/health", h.admin(h.subscriptionHealth))
	h.handle("POST /v1/subscriptions/{id}/recover", h.admin(h.recoverSubscription))
	h.handle("GET /v1/health", h.admin(h.listHealth))
	h.handle("GET /v1/attempts", h.admin(h.listAttempts))
	h.handle("GET /v1/events/{id}", h.admin(h.getEvent))
	h.handle("GET /v1/dlq", h.admin(h.listDeadLetters))
	h.handle("POST /v1/dlq/replay", h.admin(h.replayDeadLetters))
	h.handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	h.handle("GET /readyz", http.HandlerFunc(h.ready))
	if h.cfg.Gatherer != nil {
		h.handle("GET /metrics", promhttp.HandlerFor(h.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	h.handle("GET /openapi.yaml", http.HandlerFunc(serveOpenAPIYAML))
	h.handle("GET /openapi.json", http.HandlerFunc(serveOpenAPIJSON))
}

// handle mounts a route and records its pattern, so that tests can hold
// the routes to the OpenAPI description.
func (h *Handler) handle(pattern string, handler http.Handler) {
	h.mux.Handle(pattern, handler)
	h.patterns = append(h.patterns, pattern)
}

// Handle adds a route of the caller's to the handler's mux, with
// net/http's pattern syntax: for pages served beside the API.
func (h *Handler) Handle(pattern string, handler http.Handler) { h.handle(pattern, handler) }

// ServeHTTP answers a request; unknown paths and methods get the JSON
// error shape too.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); pattern == "" {
		h.unrouted(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// unrouted answers a request no route takes: 405 with Allow when the path
// exists for other methods, else 404.
func (h *Handler) unrouted(w http.ResponseWriter, r *http.Request) {
	probe := &statusProbe{header: http.Header{}}
	h.mux.ServeHTTP(probe, r)
	switch probe.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", probe.header.Get("Allow"))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %q (allowed: %s)", r.Method, shown(r.URL.Path), probe.header.Get("Allow")))
	case http.StatusNotFound, 0:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %q", r.Method, shown(r.URL.Path)))
	default: // a redirect that cleans the path
		for k, v := range probe.header {
			w.Header()[k] = v
		}
		w.WriteHeader(probe.status)
	}
}

// statusProbe records what the mux would answer, without a body.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int)      { p.status = status }

// Sync gives the bridge the read-only subscriptions and those in the store
// when the store changed since the last call.
func (h *Handler) Sync(ctx context.Context) error { return h.subs.sync(ctx) }

// Watch calls Sync every interval until ctx is done, so that changes other
// replicas make reach this bridge; errors are logged.
func (h *Handler) Watch(ctx context.Context, every time.Duration) { h.subs.watch(ctx, every) }

func (h *Handler) ready(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := h.cfg.Ready(ctx); err != nil {
			writeError(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
