package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr/vm"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/internal/lifecycle"
	"github.com/switchyard-go/switchyard/internal/tracing"
	"github.com/switchyard-go/switchyard/pubsub"
)

// Config configures a [Bridge]. Subscriber and Publisher are required;
// every other zero value is the default its doc states.
type Config struct {
	// Subscriber delivers the events to match, and the bridge's own retry
	// events. Its concurrency bounds how many events are being delivered
	// at once (each waits for its deliveries); MaxInFlight bounds the
	// deliveries.
	Subscriber pubsub.Subscriber
	// Publisher writes retry events where Subscriber reads them. It must
	// be a [pubsub.DelayedPublisher]: retries wait in the backend, so
	// they survive a restart.
	Publisher pubsub.Publisher
	// Subscriptions are the initial subscriptions; see
	// [Bridge.SetSubscriptions].
	Subscriptions []Subscription
	// Retry is the retry policy.
	// default: RetryPolicy{} (DefaultSchedule, 8 attempts, ±20% jitter)
	Retry RetryPolicy
	// Circuit says when an endpoint's circuit opens.
	// default: CircuitConfig{} (5 failures in a row, 30s)
	Circuit CircuitConfig
	// Timeout bounds a delivery when its subscription sets none.
	// default: 10s
	Timeout time.Duration
	// PerEndpoint is how many deliveries may be in flight to one
	// endpoint (scheme, host and port) at once.
	// default: 16
	PerEndpoint int
	// MaxInFlight is how many deliveries may be in flight at once, to
	// every endpoint together. Deliveries wait in a queue per endpoint
	// and are sent as slots free up, the endpoints with work served in
	// turn. Deliveries stuck at an endpoint that answered nothing for
	// SlotWait (a hanging one's) do not count, so that they do not
	// starve the others, up to twice MaxInFlight in all. Events queue
	// their deliveries in the order they came, while fewer than 16 ×
	// MaxInFlight wait (an event with more goes in once the queues are
	// empty); beyond that, events wait before queueing theirs.
	// default: 64
	MaxInFlight int
	// SlotWait is how often an event checks on its deliveries still
	// waiting in their endpoints' queues. Those at an endpoint that holds
	// things up are deferred (re-emitted a second later, without
	// spending an attempt): one that answered nothing over the last
	// SlotWait or two; one that would take more than 40 × SlotWait to get
	// through its queue at the pace it answered lately; or more than
	// 4 × SlotWait while it takes more than twice as long per delivery
	// as the other endpoints do on average. So a slow endpoint never keeps
	// events waiting long, while one that is merely busy, or a bridge
	// slowed all round, gets through its queues without deferrals.
	// default: 250ms
	SlotWait time.Duration
	// FanoutLog records which deliveries of an event matching several
	// subscriptions are settled, so that an event handed over again
	// (after a crash, or an error scheduling a retry) goes only where it
	// has not gone: [RedisFanoutLog] across replicas and restarts.
	// default: a MemoryFanoutLog
	FanoutLog FanoutLog
	// RateLimiter enforces the subscriptions' RateLimit and
	// EndpointLimits: [RedisRateLimiter] across replicas,
	// [MemoryRateLimiter] in one process. A delivery over a limit is
	// deferred (re-emitted for when the limiter says, without spending
	// an attempt) rather than waited for, so a limited endpoint never
	// holds up deliveries to others.
	// default: nil, no rate limits (New logs a warning when a
	// subscription sets one)
	RateLimiter RateLimiter
	// EndpointLimits limits the deliveries to an endpoint, whichever
	// subscriptions they are for; keyed by the endpoint as
	// scheme://host:port or by any URL of it (the port may be left out
	// when it is the scheme's default). A delivery passes its
	// subscription's limit and then its endpoint's.
	// default: none
	EndpointLimits map[string]RateLimit
	// AttemptLog, when set, records every delivery attempt (deferrals,
	// dry runs and dead letters included) with the request's headers and
	// the response's status, headers and first ResponseBodyBytes, for
	// [AttemptLog.Query]: [RedisAttemptLog] across replicas,
	// [MemoryAttemptLog] in one process. Attempts are written in batches
	// by one goroutine; deliveries wait only when it falls far behind, and
	// a batch the log refuses for 10s is dropped with a warning (and
	// reported to an Observer that is a [LogObserver]).
	// default: nil, no delivery log
	AttemptLog AttemptLog
	// Health, when set, counts what each subscription's deliveries come
	// to, for [Bridge.Health] and for disabling subscriptions that only
	// fail: [RedisHealth] across replicas, [MemoryHealth] in one process.
	// default: nil, no health stats and no automatic disabling
	Health HealthStore
	// DisableAfter disables a subscription (with Health set) once every
	// delivery to it has failed for this long: the bridge then emits a
	// [SubscriptionDisabledEvent] into its stream and logs a warning.
	// Negative never disables.
	// default: DefaultDisableAfter (5 days)
	DisableAfter time.Duration
	// Disable disables a subscription for the bridge (DisableAfter): it
	// reports whether that changed anything, so that of several replicas
	// deciding at once one tells of it. It must make the bridge's set
	// change too (webhookhttp does it through its store, for every
	// replica).
	// default: the bridge disables it in its own set, until the next
	// SetSubscriptions
	Disable func(ctx context.Context, subscriptionID, reason string) (changed bool, err error)
	// Reload, when set, brings the bridge's subscriptions up to date (it
	// calls SetSubscriptions when they changed): the bridge calls it before
	// dead-lettering a retry as orphaned, so that a change another replica
	// has just made (a subscription enabled, then recovered) counts.
	// default: nil
	Reload func(ctx context.Context) error
	// ResponseBodyBytes is how much of each response body the delivery
	// log keeps, at most MaxResponseBodyBytes; negative keeps none.
	// default: DefaultResponseBodyBytes (4 KiB)
	ResponseBodyBytes int
	// DeadLetters keeps deliveries given up on.
	// default: a MemoryDeadLetters
	DeadLetters DeadLetterStore
	// Source is the CloudEvents ce-source of every delivery.
	// default: "urn:switchyard:webhook-bridge"
	Source string
	// Targets limits the addresses deliveries may reach; see
	// [TargetPolicy]. It applies to the default Transport only.
	// default: every address
	Targets TargetPolicy
	// Transport sends each delivery as one round trip: redirects are
	// never followed, whatever the transport.
	// default: a clone of http.DefaultTransport keeping PerEndpoint idle
	// connections per host
	Transport http.RoundTripper
	// Observer is told of deliveries, retries and dead letters.
	// default: NopObserver
	Observer Observer
	// TracerProvider makes the span of each delivery attempt ("webhook
	// deliver", a child of the event's consumer span) and of its HTTP
	// request; see the package doc's Tracing. Without one (nil, and no
	// global provider set) no span is made, and each delivery still
	// carries the event's trace context as traceparent.
	// default: nil, the global TracerProvider (otel.GetTracerProvider)
	TracerProvider trace.TracerProvider
	// Logger receives one line per delivery outcome and every error.
	// default: nil, which discards
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	c.Retry.setDefaults()
	c.Circuit.setDefaults()
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.PerEndpoint == 0 {
		c.PerEndpoint = 16
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 64
	}
	if c.FanoutLog == nil {
		c.FanoutLog = &MemoryFanoutLog{}
	}
	if c.SlotWait == 0 {
		c.SlotWait = 250 * time.Millisecond
	}
	if c.DisableAfter == 0 {
		c.DisableAfter = DefaultDisableAfter
	}
	if c.ResponseBodyBytes == 0 {
		c.ResponseBodyBytes = DefaultResponseBodyBytes
	}
	if c.DeadLetters == nil {
		c.DeadLetters = &MemoryDeadLetters{}
	}
	if c.Source == "" {
		c.Source = "urn:switchyard:webhook-bridge"
	}
	if c.Transport == nil {
		c.Transport = newTransport(c.PerEndpoint, c.Targets)
	}
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first field of c that holds an invalid value.
func (c Config) Validate() error {
	switch {
	case c.Subscriber == nil:
		return errors.New("webhook: Config.Subscriber is required")
	case c.Publisher == nil:
		return errors.New("webhook: Config.Publisher is required")
	case c.Timeout < 0 || c.SlotWait < 0:
		return errors.New("webhook: Config.Timeout and SlotWait must not be negative")
	case c.PerEndpoint < 0:
		return fmt.Errorf("webhook: Config.PerEndpoint is %d, want 0 (default) or more", c.PerEndpoint)
	case c.MaxInFlight < 0:
		return fmt.Errorf("webhook: Config.MaxInFlight is %d, want 0 (default) or more", c.MaxInFlight)
	case c.Targets.DenyPrivate && c.Transport != nil:
		return errors.New("webhook: Config.Targets applies to the default transport; with a Transport of your own, guard its dialer instead")
	case c.Retry.MaxAttempts < 0:
		return fmt.Errorf("webhook: Config.Retry.MaxAttempts is %d, want 0 (default) or more", c.Retry.MaxAttempts)
	case c.ResponseBodyBytes > MaxResponseBodyBytes:
		return fmt.Errorf("webhook: Config.ResponseBodyBytes is %d, want at most %d (the bridge reads no more of a response)", c.ResponseBodyBytes, MaxResponseBodyBytes)
	}
	for i, d := range c.Retry.Schedule {
		if d <= 0 {
			return fmt.Errorf("webhook: Config.Retry.Schedule[%d] is %s, want a positive wait", i, d)
		}
	}
	for k, l := range c.EndpointLimits {
		if endpointKey(k) == "invalid-url" {
			return fmt.Errorf("webhook: Config.EndpointLimits: %q is not scheme://host:port", k)
		}
		if err := l.Validate(); err != nil {
			return fmt.Errorf("webhook: Config.EndpointLimits[%q]: %w", k, err)
		}
	}
	if _, ok := c.Publisher.(pubsub.DelayedPublisher); !ok {
		return fmt.Errorf("webhook: Config.Publisher %T cannot emit with a delay (pubsub.DelayedPublisher), which retries need", c.Publisher)
	}
	return nil
}

// Bridge delivers events to the subscriptions that match them: by topic
// and filter, signed, retried, dead-lettered. It is safe for concurrent
// use.
type Bridge struct {
	cfg          Config
	pub          pubsub.DelayedPublisher
	transport    http.RoundTripper
	traced       http.RoundTripper // transport, making a span per request
	tracer       *tracing.Tracer
	ownTransport bool // made by New: Close closes its idle connections
	endpoints    *endpoints
	disp         *dispatcher
	table        atomic.Pointer[table]
	rec          *attemptRecorder // nil without an AttemptLog or a HealthStore
	disableMu    sync.Mutex       // serialises disableHere
	gate         *lifecycle.Gate
	source       string // cfg.Source, percent-encoded for ce-source
	inFlight     atomic.Int64
	filterWarns  *warnLimiter
	// endpointLimits are cfg.EndpointLimits by endpointKey, defaults set.
	endpointLimits map[string]RateLimit
	spreadMu       sync.Mutex
	spreadNext     map[string]time.Time // by limiter key: when the next deferred delivery returns
}

// route is a compiled subscription.
type route struct {
	sub      Subscription
	filter   *vm.Program
	signers  []signer   // one per secret, decoded once
	endpoint string     // scheme://host:port, for slots and circuits
	traceURL string     // sub.URL for spans: no user info, query values REDACTED
	cond     *condition // what its filter requires, for the index; nil for none
	// limitedAt is when a rate limit last held a delivery back (unix ns).
	limitedAt atomic.Int64
}

// sign signs a delivery once with each of the route's secrets.
func (r *route) sign(id string, timestamp int64, body []byte) string {
	return signWith(r.signers, id, timestamp, body)
}

// New returns a bridge; it compiles cfg.Subscriptions and refuses the
// first that does not compile, naming it.
func New(cfg Config) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	own := cfg.Transport == nil
	cfg.setDefaults()
	b := &Bridge{
		ownTransport:   own,
		cfg:            cfg,
		pub:            cfg.Publisher.(pubsub.DelayedPublisher),
		transport:      cfg.Transport,
		traced:         tracedTransport(cfg.Transport, cfg.TracerProvider),
		tracer:         tracing.New(cfg.TracerProvider),
		endpoints:      &endpoints{m: map[string]*endpoint{}},
		disp:           newDispatcher(cfg.PerEndpoint, cfg.MaxInFlight, cfg.SlotWait),
		gate:           lifecycle.NewGate(),
		source:         percentEncode(cfg.Source),
		filterWarns:    newWarnLimiter(filterWarnEvery),
		endpointLimits: map[string]RateLimit{},
		spreadNext:     map[string]time.Time{},
	}
	for k, l := range cfg.EndpointLimits {
		b.endpointLimits[endpointKey(k)] = l.withDefaults()
	}
	if cfg.RateLimiter == nil && len(cfg.EndpointLimits) > 0 {
		cfg.Logger.Warn("webhook: Config.EndpointLimits set without a RateLimiter: no rate limit is enforced")
	}
	if err := b.SetSubscriptions(cfg.Subscriptions); err != nil {
		return nil, err
	}
	if cfg.AttemptLog != nil || cfg.Health != nil {
		b.rec = newAttemptRecorder(cfg.AttemptLog, cfg.Health, cfg.Logger, cfg.Observer, b.disableFailing)
	}
	return b, nil
}

// Compile checks a subscription as [Bridge.SetSubscriptions] would,
// filter included, without a bridge: for validating input early.
func Compile(s Subscription) error {
	_, err := compileRoute(s)
	return err
}

func compileRoute(s Subscription) (*route, error) {
	s = s.clone() // the route's own, whatever the caller does with theirs
	if err := s.Validate(); err != nil {
		return nil, err
	}
	p, err := CompileFilter(s.Filter)
	if err != nil {
		return nil, fmt.Errorf("webhook: subscription %q: filter: %w", s.ID, err)
	}
	r := &route{sub: s, filter: p, endpoint: endpointKey(s.URL), traceURL: spanURL(s.URL)}
	if c, ok := filterCondition(s.Filter); ok {
		r.cond = &c
	}
	for _, sec := range s.Secrets {
		sg, _ := parseSigner(sec) // checked by Validate
		r.signers = append(r.signers, sg)
	}
	return r, nil
}

// SetSubscriptions replaces the subscriptions in force, at once for every
// event delivered from then on. It compiles them all first and changes
// nothing when one fails or two share an ID.
func (b *Bridge) SetSubscriptions(subs []Subscription) error {
	t, err := compileTable(subs, b.table.Load())
	if err != nil {
		return err
	}
	b.table.Store(t)
	if b.cfg.RateLimiter == nil {
		for _, s := range subs {
			if s.RateLimit != nil {
				b.cfg.Logger.Warn("webhook: subscription sets rate_limit but the bridge has no RateLimiter: not enforced", "subscription", s.ID)
			}
		}
	}
	b.filterWarns.keepOnly(func(id string) bool { _, ok := t.byID[id]; return ok })
	return nil
}

// InFlight returns how many deliveries are being made now: from the
// moment one is taken up until its outcome (success, retry scheduled,
// deferral or dead letter) is recorded. Dry runs are not counted. It is
// meant for progress reports, such as a shutdown's log line.
func (b *Bridge) InFlight() int { return int(b.inFlight.Load()) }

// Subscriptions returns the subscriptions in force.
// Each is a copy: editing it in place changes nothing until it is given
// to SetSubscriptions.
func (b *Bridge) Subscriptions() []Subscription {
	list := b.table.Load().list
	out := make([]Subscription, len(list))
	for i, s := range list {
		out[i] = s.clone()
	}
	return out
}

// AttemptLog returns the bridge's delivery log, nil when it has none.
func (b *Bridge) AttemptLog() AttemptLog { return b.cfg.AttemptLog }

// DeadLetters returns the bridge's dead-letter store.
func (b *Bridge) DeadLetters() DeadLetterStore { return b.cfg.DeadLetters }

// Run consumes events and delivers them until ctx is done or Close is
// called, then returns once the deliveries in flight have finished.
func (b *Bridge) Run(ctx context.Context) {
	if !b.gate.Enter() {
		return
	}
	defer b.gate.Leave()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.gate.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	b.cfg.Subscriber.Consume(ctx, b.Handle, b.reportError)
}

// Close stops Run and waits for it, then closes the idle connections of
// the default transport. It does not close the Subscriber, Publisher or a
// Transport of the caller's. It is safe to call more than once.
func (b *Bridge) Close() error {
	if b.rec != nil {
		b.rec.beginClose() // deliveries no longer wait on a log that hangs
	}
	b.gate.Close()
	b.disp.close() // its idle workers stop
	if b.rec != nil {
		b.rec.close() // after the deliveries, which it records
	}
	if b.ownTransport {
		b.transport.(*http.Transport).CloseIdleConnections()
	}
	return nil
}

func (b *Bridge) reportError(_ context.Context, err error, ev *pubsub.Event) {
	attrs := []any{"err", err}
	if ev != nil {
		attrs = append(attrs, "event_id", ev.ID, "event_name", ev.Name)
	}
	msg := "webhook: event not handled"
	if ev == nil {
		// About no one event: a read that failed, Redis unreachable, an
		// acknowledgement waiting.
		msg = "webhook: consuming events"
	}
	if errors.Is(err, pubsub.ErrDeadLetter) || errors.Is(err, pubsub.ErrMalformed) {
		// Where an operator finds it: webhook-bridge lists the backend's
		// dead letters beside its own.
		msg = "webhook: event dead-lettered by the backend before any subscription saw it (listed with kind unhandled: GET /v1/dlq?kind=unhandled, webhook-bridge dlq list)"
	}
	b.cfg.Logger.Error(msg, attrs...)
}
