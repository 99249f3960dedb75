package memory

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-go/switchyard/internal/tracing"
	"github.com/switchyard-go/switchyard/pubsub"
	"go.opentelemetry.io/otel/trace"
)

// Options configures a [Broker]. The zero value is ready to use.
type Options struct {
	// Buffer is how many events each consumer group holds while they wait
	// for a handler; when a group is full, Emit waits for room.
	// default: 1024
	Buffer int
	// MaxDeadLetters is how many dead letters [Broker.DeadLetters] keeps;
	// past it the oldest is dropped, with a warning in the log.
	// default: 10000
	MaxDeadLetters int
	// Logger receives what the broker cannot report otherwise, such as
	// errors of subscribers without an ErrorHandler.
	// default: nil, which discards
	Logger *slog.Logger
	// TracerProvider makes a producer span per Emit ("send memory") and
	// a consumer span per handled event ("process memory"), its child;
	// each event keeps the trace context it was emitted under, through
	// retries and delays, and the handler's context holds it. With no
	// TracerProvider set anywhere no span is made and an event emitted
	// under a context holding trace context still passes it on.
	// default: nil, the global one (otel.GetTracerProvider)
	TracerProvider trace.TracerProvider
}

const (
	defaultBuffer         = 1024
	defaultMaxDeadLetters = 10000
)

func (o *Options) setDefaults() {
	if o.Buffer == 0 {
		o.Buffer = defaultBuffer
	}
	if o.MaxDeadLetters == 0 {
		o.MaxDeadLetters = defaultMaxDeadLetters
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first field of o that holds an invalid value.
func (o Options) Validate() error {
	switch {
	case o.Buffer < 0:
		return fmt.Errorf("memory: Options.Buffer is %d, want 0 (default) or more", o.Buffer)
	case o.MaxDeadLetters < 0:
		return fmt.Errorf("memory: Options.MaxDeadLetters is %d, want 0 (default) or more", o.MaxDeadLetters)
	}
	return nil
}

// DeadLetter is an event the broker gave up on.
type DeadLetter struct {
	// Event is the event as last delivered.
	Event pubsub.Event
	// Group is the consumer group that gave up.
	Group string
	// Err is why: the last handler error.
	Err error
	// Attempts is how many times the event was delivered to the group.
	Attempts int
	// At is when the event was given up on.
	At time.Time
}

// Broker is an in-process event broker. It is a [pubsub.DelayedPublisher];
// its subscribers come from [Broker.NewSubscriber]. All methods are safe for
// concurrent use.
type Broker struct {
	opts Options

	// emitMu is held for reading by every Emit and for writing by Close,
	// so that Close waits for Emits in flight.
	emitMu sync.RWMutex
	closed atomic.Bool
	life   context.Context // done when the broker closes
	stop   context.CancelFunc

	groups atomic.Pointer[[]*group] // copy-on-write snapshot for Emit

	mu     sync.Mutex // guards what follows
	byName map[string]*group
	subs   map[*Subscriber]struct{}
	dead   []DeadLetter
	nextID int

	sched  *scheduler
	tracer *tracing.Tracer
}

// NewBroker returns a broker configured by opts. It panics when opts is
// invalid (see [Options.Validate]), as a programming error.
func NewBroker(opts Options) *Broker {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	opts.setDefaults()
	life, stop := context.WithCancel(context.Background())
	b := &Broker{
		opts:   opts,
		life:   life,
		stop:   stop,
		byName: make(map[string]*group),
		subs:   make(map[*Subscriber]struct{}),
		tracer: tracing.New(opts.TracerProvider),
	}
	b.groups.Store(new([]*group))
	b.sched = newScheduler(b)
	return b
}

// Emit hands each event to every consumer group that wants its name, in
// order. It waits while a group is full; a done ctx then returns ctx.Err()
// with the events possibly delivered in part.
func (b *Broker) Emit(ctx context.Context, events ...pubsub.Event) error {
	return b.emit(ctx, time.Time{}, events)
}

// EmitAt schedules the events to be emitted at at, or at once when at is
// not in the future. Scheduled events live in memory only: closing the
// broker drops them.
func (b *Broker) EmitAt(ctx context.Context, at time.Time, events ...pubsub.Event) error {
	return b.emit(ctx, at, events)
}

// system and destination are the messaging.system and
// messaging.destination.name of the broker's spans.
const (
	system      = "switchyard.memory"
	destination = "memory"
)

func (b *Broker) emit(ctx context.Context, at time.Time, events []pubsub.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := pubsub.ValidateAll(events); err != nil {
		return err
	}
	b.emitMu.RLock()
	defer b.emitMu.RUnlock()
	if b.closed.Load() {
		return pubsub.ErrClosed
	}
	if b.tracer.On() {
		ctx, span := b.tracer.Send(ctx, system, destination, events)
		err := b.put(ctx, at, events)
		span.End(err)
		return err
	}
	return b.put(ctx, at, events)
}

// put delivers or schedules events with the trace context ctx gives them.
func (b *Broker) put(ctx context.Context, at time.Time, events []pubsub.Event) error {
	traces := carried(ctx, len(events))
	if !at.IsZero() && at.After(time.Now()) {
		b.sched.add(at, slices.Clone(events), traces)
		return nil
	}
	return b.deliver(ctx, events, traces)
}

// carried returns the trace context each of n events emitted under ctx
// carries; nil when none carries any.
func carried(ctx context.Context, n int) []*trace.SpanContext {
	if !tracing.Any(ctx) {
		return nil
	}
	c, _ := tracing.Carried(ctx)
	var traces []*trace.SpanContext
	for i := range n {
		sc := c.SpanContext(i)
		if !sc.IsValid() {
			continue
		}
		if traces == nil {
			traces = make([]*trace.SpanContext, n)
		}
		if i > 0 && traces[i-1] != nil && traces[i-1].Equal(sc) {
			traces[i] = traces[i-1]
		} else {
			p := new(trace.SpanContext) // not &sc: that would put sc on the heap for every event
			*p = sc
			traces[i] = p
		}
	}
	return traces
}

// deliver puts events into the groups, waiting for room until ctx is
// done; traces (nil, or one per event) are their trace contexts. The
// caller holds emitMu for reading, or is the scheduler.
func (b *Broker) deliver(ctx context.Context, events []pubsub.Event, traces []*trace.SpanContext) error {
	for _, g := range *b.groups.Load() {
		for i := range events {
			if !g.wants(events[i].Name) {
				continue
			}
			env := envelope{ev: events[i]}
			if traces != nil {
				env.trace = traces[i]
			}
			select {
			case g.ch <- env:
				continue
			default:
			}
			select {
			case g.ch <- env:
			case <-ctx.Done():
				return ctx.Err()
			case <-b.life.Done():
				return pubsub.ErrClosed
			}
		}
	}
	return nil
}

// DeadLetters returns a copy of the dead letters kept so far, oldest first.
func (b *Broker) DeadLetters() []DeadLetter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.dead)
}

func (b *Broker) addDeadLetter(dl DeadLetter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.dead) >= b.opts.MaxDeadLetters {
		drop := b.dead[0]
		b.opts.Logger.Warn("memory: dead-letter list full, dropping the oldest",
			"event_id", drop.Event.ID, "event_name", drop.Event.Name, "group", drop.Group, "max", b.opts.MaxDeadLetters)
		b.dead = slices.Delete(b.dead, 0, 1)
	}
	b.dead = append(b.dead, dl)
}

// Close stops the broker: it waits for Emits in flight, closes every
// subscriber (waiting for their handlers, each at most until its deadline
// plus grace, see [SubscriberConfig.HandlerTimeout]), and drops events
// still buffered or scheduled. It is safe to call more than once.
func (b *Broker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.stop()
	// Taking the lock is the point: it waits for Emits in flight, which
	// stop has released.
	b.emitMu.Lock()
	//lint:ignore SA2001 the empty critical section is the wait
	b.emitMu.Unlock()
	b.sched.stop()

	b.mu.Lock()
	subs := make([]*Subscriber, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	// Together, so that Close waits for the slowest handler's deadline
	// plus grace once rather than for each subscriber in turn.
	var closing sync.WaitGroup
	for _, s := range subs {
		closing.Go(func() { _ = s.Close() })
	}
	closing.Wait()
	return nil
}

// groupFor returns the group a subscriber with cfg joins, making it when
// it does not exist yet.
func (b *Broker) groupFor(cfg SubscriberConfig) (*group, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	name := cfg.Group
	if name == "" {
		// A private group: nobody else can name it, so it is not listed.
		b.nextID++
		name = fmt.Sprintf("(private %d)", b.nextID)
	} else if g, ok := b.byName[name]; ok {
		if !g.sameNames(cfg.Names) {
			return nil, fmt.Errorf("memory: group %q was made for names %v, not %v: subscribers of one group must select the same names",
				name, g.nameList(), cfg.Names)
		}
		return g, nil
	}
	g := newGroup(name, cfg.Names, b.opts.Buffer)
	if cfg.Group != "" {
		b.byName[name] = g
	}
	next := append(slices.Clone(*b.groups.Load()), g)
	b.groups.Store(&next)
	return g, nil
}
