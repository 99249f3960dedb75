package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/internal/tracing"
	"github.com/switchyard-go/switchyard/pubsub"
)

// PublisherConfig configures a [Publisher]. The zero value writes every
// event to the stream "events" and never trims.
type PublisherConfig struct {
	// Stream is the stream events are written to when Route is nil.
	// default: "events"
	Stream string
	// Route, when set, picks the stream of each event from its name.
	// default: nil, every event to Stream
	Route func(pubsub.Name) string
	// Partitions spreads each stream over this many streams, "<stream>:0"
	// to "<stream>:<n-1>" ([PartitionStreams]), which Redis Cluster places
	// in different slots; subscribers set the same number. Order is kept
	// only among events of one partition.
	// default: 0, no partitions
	Partitions int
	// PartitionKey picks the text whose hash chooses an event's
	// partition; events with equal keys share a partition, and so keep
	// their order.
	// default: the event's ID, which spreads events evenly
	PartitionKey func(pubsub.Event) string
	// MaxLen trims each stream written to to about this many entries
	// (XADD MAXLEN ~).
	// default: 0, no length limit
	MaxLen int64
	// MaxAge trims entries older than this (XADD MINID ~), measured by
	// their entry IDs. It cannot be set together with MaxLen.
	// default: 0, no age limit
	MaxAge time.Duration
	// WaitReplicas makes every write wait until this many replicas have
	// acknowledged it (WAIT, sent on the connection of the write, in its
	// pipeline), so that an Emit that returned nil survives a failover
	// to one of them: Redis replicates asynchronously, and a primary that
	// fails over loses the writes its replicas had not received. An Emit
	// whose writes fewer replicas acknowledged within WaitTimeout returns
	// an error wrapping [ErrNotReplicated], although the events were
	// written and may still be delivered. It needs a client of one
	// primary (NewClient, NewFailoverClient): on a Cluster client
	// NewPublisher refuses it, since a WAIT without a key would reach a
	// node of its own choosing.
	// default: 0, no wait
	WaitReplicas int
	// WaitTimeout bounds the wait for WaitReplicas.
	// default: 1s
	WaitTimeout time.Duration
	// TracerProvider makes the producer span of each Emit ("send
	// <stream>"); the events carry its trace context in their
	// traceparent and tracestate fields. With no TracerProvider set
	// anywhere no span is made, and an Emit under a context that holds
	// trace context (say, in a handler of an event that carried one)
	// still passes that on.
	// default: nil, the global one (otel.GetTracerProvider)
	TracerProvider trace.TracerProvider
}

// ErrNotReplicated says that a write was made but fewer replicas than
// [PublisherConfig.WaitReplicas] acknowledged it in time.
var ErrNotReplicated = errors.New("redis: write not acknowledged by enough replicas")

const defaultStream = "events"

// Validate reports the first field of c that holds an invalid value.
func (c PublisherConfig) Validate() error {
	switch {
	case c.MaxLen < 0:
		return fmt.Errorf("redis: PublisherConfig.MaxLen is %d, want 0 (no limit) or more", c.MaxLen)
	case c.MaxAge < 0:
		return fmt.Errorf("redis: PublisherConfig.MaxAge is %s, want 0 (no limit) or more", c.MaxAge)
	case c.Partitions < 0:
		return fmt.Errorf("redis: PublisherConfig.Partitions is %d, want 0 (none) or more", c.Partitions)
	case c.WaitReplicas < 0:
		return fmt.Errorf("redis: PublisherConfig.WaitReplicas is %d, want 0 (no wait) or more", c.WaitReplicas)
	case c.WaitTimeout < 0:
		return fmt.Errorf("redis: PublisherConfig.WaitTimeout is %s, want 0 (the default) or more", c.WaitTimeout)
	case c.MaxLen > 0 && c.MaxAge > 0:
		return errors.New("redis: PublisherConfig.MaxLen and MaxAge are both set; trim by one of them")
	case c.Stream != "":
		if err := validateStream(c.Stream); err != nil {
			return fmt.Errorf("redis: PublisherConfig.Stream: %w", err)
		}
	}
	return nil
}

// Publisher writes events to Redis streams in the wire format of
// docs/wire-format.md. It implements [pubsub.DelayedPublisher]. It never
// closes the client it was given.
type Publisher struct {
	client goredis.UniversalClient
	cfg    PublisherConfig

	mu     sync.RWMutex // held for reading by Emits, for writing by Close
	closed bool
	single *coalescer
	tracer *tracing.Tracer
}

// NewPublisher returns a publisher writing through client, which the caller
// keeps owning.
func NewPublisher(client goredis.UniversalClient, cfg PublisherConfig) (*Publisher, error) {
	if client == nil {
		return nil, errors.New("redis: NewPublisher with a nil client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Stream == "" {
		cfg.Stream = defaultStream
	}
	if cfg.WaitReplicas > 0 {
		if _, ok := client.(*goredis.ClusterClient); ok {
			return nil, errors.New("redis: PublisherConfig.WaitReplicas needs a client of one primary (NewClient, NewFailoverClient), not a Cluster client")
		}
		if cfg.WaitTimeout == 0 {
			cfg.WaitTimeout = time.Second
		}
	}
	p := &Publisher{client: client, cfg: cfg, tracer: tracing.New(cfg.TracerProvider)}
	p.single = newCoalescer(p)
	return p, nil
}

// stream returns the stream ev is written to: routed, then partitioned.
func (p *Publisher) stream(ev pubsub.Event) (string, error) {
	s := p.cfg.Stream
	if p.cfg.Route != nil {
		s = p.cfg.Route(ev.Name)
		if err := validateStream(s); err != nil {
			return "", fmt.Errorf("redis: Route(%q): %w", ev.Name, err)
		}
	}
	if p.cfg.Partitions > 1 {
		key := string(ev.ID)
		if p.cfg.PartitionKey != nil {
			key = p.cfg.PartitionKey(ev)
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(key))
		s = partition(s, int(h.Sum32()%uint32(p.cfg.Partitions)))
	}
	return s, nil
}

// Emit writes the events in one pipelined round trip, in order. It returns
// nil only when Redis confirmed every write; otherwise the error names each
// event that was not written. Concurrent Emits of one event each share
// pipelines, so many callers need few round trips.
func (p *Publisher) Emit(ctx context.Context, events ...pubsub.Event) error {
	return p.write(ctx, time.Time{}, events)
}

// EmitAt stores the events in each stream's delayed set (see [DelayedKey]),
// durably; a subscriber of the stream moves them into it once at is
// reached, exactly once however many subscribers run. A time not in the
// future emits at once.
//
// Each event is one member of the sorted set, scored by at in Unix
// milliseconds: a unique prefix, "u" and 16 hex digits of a random 64-bit
// number then ";", followed by the event's fields as netstrings (see
// packFields). The prefix keeps equal events apart, so emitting the same
// event twice delivers it twice. docs/wire-format.md describes the format
// for scheduling delayed events from other languages.
func (p *Publisher) EmitAt(ctx context.Context, at time.Time, events ...pubsub.Event) error {
	return p.write(ctx, at, events)
}

func (p *Publisher) write(ctx context.Context, at time.Time, events []pubsub.Event) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := pubsub.ValidateAll(events); err != nil {
		return err
	}
	streams := make([]string, len(events))
	for i, ev := range events {
		s, err := p.stream(ev)
		if err != nil {
			return err
		}
		streams[i] = s
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return pubsub.ErrClosed
	}
	if len(events) == 0 {
		return nil
	}

	ctx, span := p.tracer.Send(ctx, "redis", destination(p.cfg.Stream, streams), events)
	defer func() { span.End(err) }()
	tc, _ := tracing.Carried(ctx)
	fields := func(i int) traceFields {
		tp, ts := tc.Fields(i)
		return traceFields{tp, ts}
	}

	delayed := !at.IsZero() && at.After(time.Now())
	if len(events) == 1 && !delayed {
		return p.single.emit(ctx, events[0], streams[0], fields(0))
	}
	pipe := p.client.Pipeline()
	cmds := make([]goredis.Cmder, len(events))
	for i, ev := range events {
		if delayed {
			cmds[i] = pipe.ZAdd(ctx, DelayedKey(streams[i]), goredis.Z{Score: float64(at.UnixMilli()), Member: delayedMember(appendFields(nil, ev, fields(i)))})
		} else {
			cmds[i] = pipe.Do(ctx, p.xadd(streams[i], ev, fields(i))...)
		}
	}
	wait := p.waitCmd(ctx, pipe)
	_, _ = pipe.Exec(ctx) // errors are per command, below
	if err := ctx.Err(); err != nil {
		return err
	}
	werr := p.waitErr(wait)
	var errs []error
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			errs = append(errs, fmt.Errorf("redis: event %s not written to stream %q: %w", events[i].ID, streams[i], err))
		} else if werr != nil {
			errs = append(errs, fmt.Errorf("redis: event %s written to stream %q: %w", events[i].ID, streams[i], werr))
		}
	}
	return errors.Join(errs...)
}

// waitCmd adds a WAIT for cfg.WaitReplicas to pipe, after its writes and
// on their connection; nil when no wait is asked for.
func (p *Publisher) waitCmd(ctx context.Context, pipe goredis.Pipeliner) *goredis.Cmd {
	if p.cfg.WaitReplicas == 0 {
		return nil
	}
	return pipe.Do(ctx, "wait", p.cfg.WaitReplicas, max(p.cfg.WaitTimeout.Milliseconds(), 1))
}

// waitErr returns nil when wait is nil or enough replicas acknowledged
// the pipeline's writes.
func (p *Publisher) waitErr(wait *goredis.Cmd) error {
	if wait == nil {
		return nil
	}
	n, err := wait.Int64()
	switch {
	case err != nil:
		return fmt.Errorf("%w: WAIT: %w", ErrNotReplicated, err)
	case n < int64(p.cfg.WaitReplicas):
		return fmt.Errorf("%w: %d of %d within %s", ErrNotReplicated, n, p.cfg.WaitReplicas, p.cfg.WaitTimeout)
	}
	return nil
}

// xadd returns the whole XADD command for ev, built in one slice that the
// client sends as it is.
func (p *Publisher) xadd(stream string, ev pubsub.Event, tc traceFields) []any {
	args := make([]any, 0, 22)
	args = append(args, "xadd", stream)
	switch {
	case p.cfg.MaxLen > 0:
		args = append(args, "maxlen", "~", p.cfg.MaxLen)
	case p.cfg.MaxAge > 0:
		args = append(args, "minid", "~", time.Now().Add(-p.cfg.MaxAge).UnixMilli())
	}
	return appendFields(append(args, "*"), ev, tc)
}

// destination names where an Emit wrote, for its span: the one stream all
// its events went to, or the configured stream when they went to several
// (partitions, routes).
func destination(configured string, streams []string) string {
	for _, s := range streams[1:] {
		if s != streams[0] {
			return configured
		}
	}
	return streams[0]
}

// Close waits for Emits in flight; later ones return [pubsub.ErrClosed].
// It does not close the client. It is safe to call more than once.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.single.stop()
	return nil
}

// delayedMember returns the delayed-set member of a field/value list: a
// unique prefix, "u" and 16 lowercase hex digits of a random 64-bit
// number then ";", before the fields packed by packFields. Without the
// prefix two equal events would be one member (ZADD of a member already
// there only changes its score), and one of them would be lost.
func delayedMember(vals []any) string {
	return fmt.Sprintf("u%016x;", rand.Uint64()) + packFields(vals)
}

// packFields serialises a field/value list for the delayed set, as
// netstrings: for each field and then its value, the length in bytes in
// decimal, ":", the bytes, "," ("4:name,13:order.created,"). The move
// script unpacks them with no library and without touching binary
// payloads.
//
// A member of the delayed set is such netstrings, with a unique prefix
// before them (see [Publisher.EmitAt] and delayedMember) or, as members
// written before prefixes were, without one: a member that begins with an
// ASCII digit has no prefix; any other begins with a prefix of up to 64
// bytes ended by the first ";", which the move script drops. A member of
// another shape, or whose fields do not pair up, is moved to the
// dead-letter stream with the reason instead of into the stream.
func packFields(vals []any) string {
	var b strings.Builder
	for _, v := range vals {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case []byte:
			s = string(v)
		}
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
		b.WriteByte(',')
	}
	return b.String()
}
