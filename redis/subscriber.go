package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/internal/lifecycle"
	"github.com/switchyard-go/switchyard/internal/tracing"
	"github.com/switchyard-go/switchyard/pubsub"
)

// Start says where a new consumer group begins in its streams.
type Start int

const (
	// StartNew makes a new group see only entries added after it was
	// made ("$").
	StartNew Start = iota
	// StartBeginning makes a new group read each stream from its first
	// entry ("0").
	StartBeginning
)

// SubscriberConfig configures a [Subscriber]. Group is required; every
// other zero value is the default its doc states.
type SubscriberConfig struct {
	// Streams are the streams to consume, all through one group.
	// default: ["events"]
	Streams []string
	// Partitions is the number of partitions each stream is spread over
	// (see [PublisherConfig.Partitions]); the subscriber consumes them all.
	// default: 0, no partitions
	Partitions int
	// Group is the consumer group; subscribers sharing it split the
	// entries. Required.
	Group string
	// Consumer names this subscriber within the group; it must be unique
	// and, to pick up its own pending entries after a restart, stable.
	// The consumers that runs under other names left behind are removed
	// once idle (see ForgetIdleConsumers).
	// default: "<hostname>-<pid>"
	Consumer string
	// Names limits the subscriber to events with these names; the group's
	// other entries are acknowledged without a handler call.
	// default: nil, every name
	Names []pubsub.Name
	// Start is where a group that does not exist yet begins.
	// default: StartNew
	Start Start
	// BatchSize is how many entries one XREADGROUP or XAUTOCLAIM asks for.
	// default: 100
	BatchSize int
	// Concurrency is how many handlers run at once. Order is kept only
	// with 1.
	// default: 1
	Concurrency int
	// MaxAttempts is how many deliveries an event gets before it goes to
	// the dead-letter stream ([DeadKey]), the first included.
	// default: 5
	MaxAttempts int
	// Backoff is the wait before each redelivery. A waiting retry stays
	// this consumer's however long the wait.
	// default: pubsub.ExponentialBackoff(time.Second, 30*time.Second)
	Backoff pubsub.Backoff
	// Block is how long one XREADGROUP waits for new entries; Close and a
	// cancelled Consume may wait that long for it to return.
	// default: 1s
	Block time.Duration
	// ClaimIdle is how long an entry stays pending with another consumer,
	// unrenewed, before this one takes it over with XAUTOCLAIM: how soon
	// the entries of a consumer that crashed, hung or was cut off are
	// handled by others. A live consumer renews what it holds every
	// ClaimIdle/4, however long its handlers run. Use one value across
	// the group.
	// default: 1m
	ClaimIdle time.Duration
	// ClaimInterval is how often to look for such entries.
	// default: ClaimIdle / 2
	ClaimInterval time.Duration
	// DelayedPoll is how often to move due delayed events into the
	// streams; it bounds how late a delayed event becomes visible.
	// default: 250ms
	DelayedPoll time.Duration
	// HandlerTimeout is the deadline of each handler run, set on its
	// context. A handler that returns its context's error is retried like
	// any failure. One that ignores the deadline is abandoned a grace
	// period later (a quarter of HandlerTimeout, at most 5s): its entry
	// stays pending, is taken over after ClaimIdle like a crashed
	// consumer's, and is dead-lettered once delivered more than
	// MaxAttempts times; what it returns later is ignored.
	// default: 1m
	HandlerTimeout time.Duration
	// DeadMaxLen bounds the dead-letter stream ([DeadKey]) to about this
	// many entries (XADD MAXLEN ~); the oldest go first. A negative value
	// keeps every dead letter.
	// default: 100000
	DeadMaxLen int64
	// ForgetIdleConsumers is how long another consumer of the group must
	// have been idle before this subscriber removes it from the group on
	// its streams (XGROUP DELCONSUMER), so that consumer names that change
	// from run to run (the default Consumer, "<hostname>-<pid>") do not
	// pile up in XINFO CONSUMERS. Only a consumer with no pending entry is
	// removed, checked by the same script that removes it, so no entry is
	// lost or delivered twice; never this subscriber's own name, nor a
	// name whose lease is held beside the stream or beside this
	// subscriber's first stream (a subscriber consuming under it). Idle is
	// XINFO CONSUMERS's figure: the time since the consumer's last read or
	// claim (on Redis 7.0 and older, since its last read that returned
	// entries, so a consumer waiting on a quiet stream looks idle; with
	// nothing pending, removing it is harmless: its next read that returns
	// entries makes it again). The subscriber looks every 5 minutes, or
	// every ForgetIdleConsumers when that is shorter, while Consume runs;
	// each look is bounded in time, and its failures are logged (Logger,
	// at warn level) and never disturb consuming. A negative value never
	// removes any.
	// default: 1h
	ForgetIdleConsumers time.Duration
	// Logger receives errors when Consume is given no ErrorHandler, and
	// the subscriber's notices.
	// default: nil, which discards
	Logger *slog.Logger
	// TracerProvider makes a consumer span per handled event ("process
	// <stream>"), the child of the trace context the entry carries
	// (traceparent, tracestate) and linked to it; the handler's context
	// holds it. An entry dead-lettered adds a producer span ("send
	// <stream>:dead"), in the event's trace. With no TracerProvider set
	// anywhere no span is made, and the handler's context still carries
	// the entry's trace context, so that what it emits continues the
	// trace.
	// default: nil, the global one (otel.GetTracerProvider)
	TracerProvider trace.TracerProvider
}

// Validate reports the first field of c that holds an invalid value.
func (c SubscriberConfig) Validate() error {
	if c.Group == "" {
		return errors.New("redis: SubscriberConfig.Group is required")
	}
	for _, s := range c.Streams {
		if err := validateStream(s); err != nil {
			return fmt.Errorf("redis: SubscriberConfig.Streams: %w", err)
		}
	}
	for name, v := range map[string]int64{
		"Partitions": int64(c.Partitions), "BatchSize": int64(c.BatchSize), "Concurrency": int64(c.Concurrency), "MaxAttempts": int64(c.MaxAttempts),
		"Block": int64(c.Block), "ClaimIdle": int64(c.ClaimIdle), "ClaimInterval": int64(c.ClaimInterval), "DelayedPoll": int64(c.DelayedPoll),
		"HandlerTimeout": int64(c.HandlerTimeout),
	} {
		if v < 0 {
			return fmt.Errorf("redis: SubscriberConfig.%s is negative; 0 means the default", name)
		}
	}
	if slices.Contains(c.Names, "") {
		return errors.New("redis: SubscriberConfig.Names holds an empty name")
	}
	if c.Start != StartNew && c.Start != StartBeginning {
		return fmt.Errorf("redis: SubscriberConfig.Start is %d, want StartNew or StartBeginning", c.Start)
	}
	return nil
}

func (c *SubscriberConfig) setDefaults() {
	if len(c.Streams) == 0 {
		c.Streams = []string{defaultStream}
	}
	var streams []string
	for _, s := range c.Streams {
		streams = append(streams, PartitionStreams(s, c.Partitions)...)
	}
	c.Streams = streams
	if c.Consumer == "" {
		host, _ := os.Hostname()
		c.Consumer = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.Backoff == nil {
		c.Backoff = pubsub.ExponentialBackoff(time.Second, 30*time.Second)
	}
	if c.Block == 0 {
		c.Block = time.Second
	}
	if c.ClaimIdle == 0 {
		c.ClaimIdle = time.Minute
	}
	if c.ClaimInterval == 0 {
		c.ClaimInterval = c.ClaimIdle / 2
	}
	if c.DelayedPoll == 0 {
		c.DelayedPoll = 250 * time.Millisecond
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = time.Minute
	}
	if c.DeadMaxLen == 0 {
		c.DeadMaxLen = 100000
	}
	if c.ForgetIdleConsumers == 0 {
		c.ForgetIdleConsumers = defaultForgetIdle
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Subscriber consumes Redis streams through a consumer group. It
// implements [pubsub.Subscriber] and never closes the client it was given.
type Subscriber struct {
	client goredis.UniversalClient
	cfg    SubscriberConfig
	names  map[pubsub.Name]bool // nil: every name
	pos    positions            // how far the group is known to have delivered
	// unreachable: the last acknowledgements failed; Close then leaves
	// the consumer in the group rather than wait on Redis again.
	unreachable atomic.Bool

	gate   *lifecycle.Gate
	tracer *tracing.Tracer
}

// NewSubscriber makes the group on each stream (creating the stream when
// it does not exist) and returns a subscriber in it; the group gets
// entries from then on, even before Consume. The caller keeps owning
// client.
func NewSubscriber(ctx context.Context, client goredis.UniversalClient, cfg SubscriberConfig) (*Subscriber, error) {
	if client == nil {
		return nil, errors.New("redis: NewSubscriber with a nil client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s := &Subscriber{client: client, cfg: cfg, gate: lifecycle.NewGate(), tracer: tracing.New(cfg.TracerProvider)}
	if len(cfg.Names) > 0 {
		s.names = make(map[pubsub.Name]bool, len(cfg.Names))
		for _, n := range cfg.Names {
			s.names[n] = true
		}
	}
	if err := s.createGroups(ctx); err != nil {
		return nil, err
	}
	for _, stream := range cfg.Streams {
		if err := s.notePosition(ctx, stream); err != nil {
			return nil, fmt.Errorf("redis: reading group %q on stream %q: %w", cfg.Group, stream, err)
		}
	}
	return s, nil
}

// createGroups makes the group on each stream that lacks it. Where it
// begins:
//   - StartBeginning: "0";
//   - the group exists on another of the subscriber's streams (partitions
//     were added): "0", as the group is not new;
//   - a position of the group was recorded beside the stream
//     ([Subscriber.positionKey]): there (the group existed and was
//     deleted), never past the stream's last entry;
//   - otherwise "$".
func (s *Subscriber) createGroups(ctx context.Context) error {
	var missing []string
	for _, stream := range s.cfg.Streams {
		ok, err := s.groupExists(ctx, stream)
		if err != nil {
			return err
		}
		if !ok {
			missing = append(missing, stream)
		}
	}
	existsElsewhere := len(missing) < len(s.cfg.Streams)
	for _, stream := range missing {
		// Where the group was, it is made again after what it delivered;
		// where it never was while it exists on the subscriber's other
		// streams (partitions added), everything there is new to it.
		start := "$"
		if p := s.recordedPosition(ctx, stream); p != "" {
			start = p
		} else if s.cfg.Start == StartBeginning || existsElsewhere {
			start = "0"
		}
		made, err := s.createGroupAt(ctx, stream, start)
		if err != nil {
			return err
		}
		if made && start != "$" && s.cfg.Start == StartNew {
			s.cfg.Logger.Warn("redis: consumer group missing on a stream it is known on; made it there", "stream", stream, "group", s.cfg.Group, "start", start)
		}
	}
	return nil
}

// groupExists reports whether the group exists on stream.
func (s *Subscriber) groupExists(ctx context.Context, stream string) (bool, error) {
	groups, err := s.client.XInfoGroups(ctx, stream).Result()
	switch {
	case err != nil && strings.Contains(err.Error(), "no such key"):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("redis: reading the groups of stream %q: %w", stream, err)
	}
	for _, g := range groups {
		if g.Name == s.cfg.Group {
			return true, nil
		}
	}
	return false, nil
}

// recordedPosition returns the group's position recorded beside stream,
// not past the stream's last entry; "" when there is none usable (a
// value that is not an entry ID, or a key of another type, is ignored
// and logged).
func (s *Subscriber) recordedPosition(ctx context.Context, stream string) string {
	key := s.positionKey(stream)
	last, err := s.client.Get(ctx, key).Result()
	switch {
	case errors.Is(err, goredis.Nil) || last == "":
		return ""
	case err != nil || !validID(last):
		s.cfg.Logger.Warn("redis: ignoring an unusable group position", "key", key, "value", truncate(last), "err", err)
		return ""
	}
	info, err := s.client.XInfoStream(ctx, stream).Result()
	if err != nil {
		return "0" // no stream yet: everything that comes is new
	}
	if compareIDs(last, info.LastGeneratedID) > 0 {
		return info.LastGeneratedID
	}
	return last
}

// createGroupAt makes the group on stream starting after entry ID start;
// a group that exists already is left as it is, and made is false.
func (s *Subscriber) createGroupAt(ctx context.Context, stream, start string) (made bool, err error) {
	err = s.client.XGroupCreateMkStream(ctx, stream, s.cfg.Group, start).Err()
	switch {
	case err == nil:
		return true, nil
	case strings.HasPrefix(err.Error(), "BUSYGROUP"):
		return false, nil
	}
	return false, fmt.Errorf("redis: creating group %q on stream %q: %w", s.cfg.Group, stream, err)
}

// Consume reads the group's entries and runs Concurrency handlers on them
// until ctx is done or the subscriber is closed; then it returns once they
// have finished and their acknowledgements are written. It first
// redelivers the entries still pending with this consumer, and takes over
// entries idle with others past ClaimIdle. A nil h panics.
func (s *Subscriber) Consume(ctx context.Context, h pubsub.Handler, eh pubsub.ErrorHandler) {
	if h == nil {
		panic("redis: Subscriber.Consume called with a nil Handler")
	}
	if eh == nil {
		eh = lifecycle.LogErrors(s.cfg.Logger, "redis: subscriber error", "group", s.cfg.Group, "consumer", s.cfg.Consumer)
	}
	if !s.gate.Enter() {
		eh(ctx, fmt.Errorf("redis: Consume on group %q: %w", s.cfg.Group, pubsub.ErrClosed), nil)
		return
	}
	defer s.gate.Leave()

	r := newRun(ctx, s, pubsub.Recover(h), eh)
	r.wait()
}

// Close stops Consume and waits for its handlers and acknowledgements.
// Entries not acknowledged stay pending for this consumer (or another,
// after ClaimIdle). When the consumer has no pending entry left, it is
// removed from the group. It is safe to call more than once, but not from
// a handler.
func (s *Subscriber) Close() error {
	if !s.gate.Close() {
		return nil
	}
	if s.unreachable.Load() {
		return nil
	}

	// The cleanup runs aside so that Close takes at most 2s against a
	// Redis that stopped answering (what it leaves undone is only
	// tidying).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = aside(2*time.Second, func() error {
		defer cancel()
		s.leaveGroup(ctx)
		return nil
	})
	return nil
}

// leaveGroup records the group's position on each stream and removes the
// consumer from the group where it has no pending entry left.
func (s *Subscriber) leaveGroup(ctx context.Context) {
	for _, stream := range s.cfg.Streams {
		// The group's position as this subscriber leaves it, for a group
		// deleted before the next start: made there, it delivers nothing
		// again.
		if err := s.notePosition(ctx, stream); err != nil && !isNoGroup(err) {
			s.cfg.Logger.Warn("redis: recording the group's position", "stream", stream, "group", s.cfg.Group, "err", err)
		}
		pending, err := s.client.XPendingExt(ctx, &goredis.XPendingExtArgs{
			Stream: stream, Group: s.cfg.Group, Start: "-", End: "+", Count: 1, Consumer: s.cfg.Consumer,
		}).Result()
		if err != nil || len(pending) > 0 {
			continue
		}
		if err := s.client.XGroupDelConsumer(ctx, stream, s.cfg.Group, s.cfg.Consumer).Err(); err != nil {
			s.cfg.Logger.Warn("redis: removing consumer from group", "stream", stream, "group", s.cfg.Group, "consumer", s.cfg.Consumer, "err", err)
		}
	}
}
