package webhook

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/switchyard-go/switchyard/pubsub"
)

// PartitionOf returns the partition, 0 to n-1, of an event whose
// partition key is key: the 32-bit FNV-1a hash of key modulo n. It is the
// choice the redis package's Publisher makes with PublisherConfig.Partitions
// and PartitionKey, so a producer writing to the partition streams itself
// places events where the bridge does. With n below 2 it returns 0.
func PartitionOf(key string, n int) int {
	if n < 2 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// partitionEvent returns the event whose key places ev: for a retry event
// the bridge emitted to itself ([RetryEventName]), the event it retries,
// so that the retries, replays and dead letters of an event land in the
// partition of the event; otherwise ev.
func partitionEvent(ev pubsub.Event) pubsub.Event {
	if _, inner, _, ok := UnwrapRetry(ev); ok {
		return inner
	}
	return ev
}

// partitionByID is the default partition key.
func partitionByID(ev pubsub.Event) string { return string(ev.ID) }

// partitionKeyWarnEvery is how often a partition key's fallbacks are
// logged at most.
const partitionKeyWarnEvery = time.Minute

// PartitionKey is a compiled partition key expression ([CompilePartitionKey]):
// what places an event in one of a topic's partitions. Events with equal
// keys share a partition, and so keep their order. It is safe for
// concurrent use.
type PartitionKey struct {
	src       string
	prog      *vm.Program // nil: the event's ID
	logger    *slog.Logger
	fallbacks atomic.Int64
	warns     *warnLimiter
}

// CompilePartitionKey compiles an expr-lang expression that gives each
// event its partition key. It sees what filters see ([FilterEnv]: data,
// the payload decoded as JSON, and event with id, name, attempts,
// correlation_id, created_at and dry_run), with the same nil-safe member
// access and comparisons ([CompileFilter]), node limit and memory budget.
// An empty src keys every event by its ID.
//
// Its value must be a string, a number or a bool, formatted canonically:
// a string as it is, a bool as "true" or "false", a whole number as its
// decimal digits whatever its type (1, 1.0 and the JSON 1 are all "1"), any
// other number in Go's shortest 'g' form. So data.customer_id gives the
// same key whether a producer sent it as 42 or as "42". An expression whose
// type the compiler knows to be anything else (a map, a list,
// event.created_at) is refused.
//
// An event for which the expression gives nil, "" (a field missing from
// its payload, say), an error or a value of another type is never
// dropped: its ID is its key, which spreads such events evenly.
// [PartitionKey.Fallbacks] counts these, and logger (nil: none) gets one
// warning a minute at most, saying how many went unlogged since the last.
//
// Keys should depend on what stays the same for an event everywhere (its
// payload, ID, name and correlation ID): event.attempts grows when a
// delivery of it is retried.
func CompilePartitionKey(src string, logger *slog.Logger) (*PartitionKey, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	k := &PartitionKey{src: src, logger: logger, warns: newWarnLimiter(partitionKeyWarnEvery)}
	if strings.TrimSpace(src) == "" {
		return k, nil
	}
	if err := checkStableKey(src); err != nil {
		return nil, err
	}
	p, err := expr.Compile(src,
		expr.Env(FilterEnv{}),
		expr.Patch(&nilSafe{}),
		expr.MaxNodes(filterMaxNodes),
	)
	if err != nil {
		return nil, oneLine(err)
	}
	if t := p.Node().Type(); t != nil && !partitionKeyKind(t.Kind()) {
		return nil, fmt.Errorf("the expression gives %s; want a string, a number or a bool", t)
	}
	k.prog = p
	return k, nil
}

// checkStableKey refuses a key that is not a function of the event alone,
// which would send its retries, dead letters and fan-out log elsewhere
// than the event: the clock (now, date) or event.attempts.
func checkStableKey(src string) error {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil // expr.Compile says what is wrong
	}
	v := &unstableKey{}
	ast.Walk(&tree.Node, v)
	return v.err
}

// unstableKey finds the first part of a key that changes while the event
// does not.
type unstableKey struct{ err error }

// Visit implements ast.Visitor.
func (v *unstableKey) Visit(n *ast.Node) {
	if v.err != nil {
		return
	}
	switch node := (*n).(type) {
	case *ast.BuiltinNode:
		if node.Name == "now" || node.Name == "date" {
			v.err = fmt.Errorf("%s() reads the clock: the key must depend on the event alone, or its retries and dead letters go to other partitions", node.Name)
		}
	case *ast.CallNode:
		if id, ok := node.Callee.(*ast.IdentifierNode); ok && (id.Value == "now" || id.Value == "date") {
			v.err = fmt.Errorf("%s() reads the clock: the key must depend on the event alone, or its retries and dead letters go to other partitions", id.Value)
		}
	case *ast.MemberNode:
		id, isID := node.Node.(*ast.IdentifierNode)
		prop, isStr := node.Property.(*ast.StringNode)
		if isID && isStr && id.Value == "event" && prop.Value == "attempts" {
			v.err = errors.New("event.attempts grows as deliveries are retried: the key must stay the same for an event, or its retries and dead letters go to other partitions")
		}
	}
}

// partitionKeyKind reports whether a value of kind k may give a key: a string, a
// number or a bool, or an interface (known only at run time).
func partitionKeyKind(k reflect.Kind) bool {
	switch k {
	case reflect.String, reflect.Bool, reflect.Interface,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// String returns the expression's source.
func (k *PartitionKey) String() string { return k.src }

// Fallbacks returns how many events the expression gave no key, which were
// keyed by their ID instead.
func (k *PartitionKey) Fallbacks() int64 { return k.fallbacks.Load() }

// Key returns ev's partition key: the expression's value, or ev's ID when
// the expression gives none (see [CompilePartitionKey]). For a retry event
// it is the key of the event it retries. Its method value is what
// [NewPartitionedPublisher] and [PartitionedDeadLetters] take.
func (k *PartitionKey) Key(ev pubsub.Event) string {
	ev = partitionEvent(ev)
	if k.prog == nil || ev.Name == RecoverEventName {
		return string(ev.ID) // a recovery's own event has no key of its own
	}
	machine := vm.VM{MemoryBudget: filterMemoryBudget}
	out, err := machine.Run(k.prog, filterEnv(ev))
	if err == nil {
		if key, ok := partitionKeyText(out); ok {
			return key
		}
		switch {
		case out == nil:
			err = errors.New("the expression gave nil")
		case out == "":
			err = errors.New(`the expression gave ""`)
		default:
			err = fmt.Errorf("the expression gave a %T; want a string, a number or a bool", out)
		}
	}
	k.fellBack(ev, oneLine(err))
	return string(ev.ID)
}

// fellBack counts a fallback and logs it, once a minute at most.
func (k *PartitionKey) fellBack(ev pubsub.Event, reason error) {
	k.fallbacks.Add(1)
	log, suppressed := k.warns.allow("")
	if !log {
		return
	}
	k.logger.Warn("webhook: the partition key expression gave no key for an event; its id places it instead",
		"event_id", partitionLogCut(string(ev.ID)), "event_name", partitionLogCut(string(ev.Name)), "reason", reason, "suppressed", suppressed)
}

// partitionLogCut shortens s to 128 bytes for a log line (the handler quotes it).
func partitionLogCut(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}

// partitionExactFloat is the largest magnitude below which every whole float64
// is exact: 2^53.
const partitionExactFloat = 1 << 53

// partitionKeyText formats a key canonically; ok is false for nil, "" and any type
// but strings, numbers and bools, and for NaN and infinities.
func partitionKeyText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, v != ""
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.FormatInt(int64(v), 10), true
	case int8:
		return strconv.FormatInt(int64(v), 10), true
	case int16:
		return strconv.FormatInt(int64(v), 10), true
	case int32:
		return strconv.FormatInt(int64(v), 10), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint:
		return strconv.FormatUint(uint64(v), 10), true
	case uint8:
		return strconv.FormatUint(uint64(v), 10), true
	case uint16:
		return strconv.FormatUint(uint64(v), 10), true
	case uint32:
		return strconv.FormatUint(uint64(v), 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case float32:
		return partitionFloatText(float64(v))
	case float64:
		return partitionFloatText(v)
	}
	return "", false
}

func partitionFloatText(f float64) (string, bool) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return "", false
	case f == math.Trunc(f) && math.Abs(f) <= partitionExactFloat:
		return strconv.FormatInt(int64(f), 10), true
	}
	return strconv.FormatFloat(f, 'g', -1, 64), true
}

// PartitionedPublisher is a [pubsub.DelayedPublisher] that spreads events
// over partitions, each written by a publisher of its own (in
// webhook-bridge, a redis Publisher per partition stream): an event goes
// to the partition [PartitionOf] its key picks, and a retry event
// ([RetryEventName]) to the partition of the event it retries, so an
// event's retries and replays land where the event did as long as the
// number of partitions stays the same.
//
// Emit and EmitAt keep the order of the events of one partition and write
// the partitions concurrently. They are not atomic across partitions: when
// some partitions fail, the events of the others are written, and the
// error names the partitions and the events that were not (or not all)
// written. It is safe for concurrent use.
type PartitionedPublisher struct {
	partitions []pubsub.DelayedPublisher
	key        func(pubsub.Event) string

	mu     sync.RWMutex // held for reading by emits, for writing by Close
	closed bool
}

// NewPartitionedPublisher returns a publisher over partitions, at least
// one; key gives an event's partition key (nil: its ID; for a retry event
// it is given the event retried). The PartitionedPublisher owns the
// partitions' publishers: its Close closes them.
func NewPartitionedPublisher(partitions []pubsub.DelayedPublisher, key func(pubsub.Event) string) (*PartitionedPublisher, error) {
	if len(partitions) == 0 {
		return nil, errors.New("webhook: NewPartitionedPublisher with no partition")
	}
	for i, p := range partitions {
		if p == nil {
			return nil, fmt.Errorf("webhook: NewPartitionedPublisher: partition %d has a nil publisher", i)
		}
	}
	if key == nil {
		key = partitionByID
	}
	return &PartitionedPublisher{partitions: append([]pubsub.DelayedPublisher(nil), partitions...), key: key}, nil
}

// Partitions returns the number of partitions.
func (p *PartitionedPublisher) Partitions() int { return len(p.partitions) }

// Partition returns the partition ev is written to.
func (p *PartitionedPublisher) Partition(ev pubsub.Event) int {
	return PartitionOf(p.key(partitionEvent(ev)), len(p.partitions))
}

// Emit writes the events, each to its partition; see [PartitionedPublisher].
func (p *PartitionedPublisher) Emit(ctx context.Context, events ...pubsub.Event) error {
	return p.write(ctx, time.Time{}, events)
}

// EmitAt schedules the events for at, each in its partition; see
// [PartitionedPublisher].
func (p *PartitionedPublisher) EmitAt(ctx context.Context, at time.Time, events ...pubsub.Event) error {
	return p.write(ctx, at, events)
}

func (p *PartitionedPublisher) write(ctx context.Context, at time.Time, events []pubsub.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// All or none is refused, rather than the partitions whose events
	// happen to be valid written.
	if err := pubsub.ValidateAll(events); err != nil {
		return err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return pubsub.ErrClosed
	}
	emit := func(i int, evs []pubsub.Event) error {
		if at.IsZero() {
			return p.partitions[i].Emit(ctx, evs...)
		}
		return p.partitions[i].EmitAt(ctx, at, evs...)
	}
	switch len(events) {
	case 0:
		return nil
	case 1:
		i := p.Partition(events[0])
		return p.partitionError(ctx, i, events, emit(i, events))
	}
	groups := make(map[int][]pubsub.Event)
	var order []int
	for _, ev := range events {
		i := p.Partition(ev)
		if _, ok := groups[i]; !ok {
			order = append(order, i)
		}
		groups[i] = append(groups[i], ev)
	}
	if len(order) == 1 {
		return p.partitionError(ctx, order[0], events, emit(order[0], events))
	}
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for k, i := range order {
		wg.Go(func() { errs[k] = emit(i, groups[i]) })
	}
	wg.Wait()
	failed := 0
	var written []pubsub.ID
	for k, err := range errs {
		if err != nil {
			failed++
			errs[k] = p.partitionError(context.Background(), order[k], groups[order[k]], err)
			continue
		}
		for _, ev := range groups[order[k]] {
			written = append(written, ev.ID)
		}
	}
	switch {
	case failed == 0:
		return nil
	case failed == len(order) && ctx.Err() != nil:
		return ctx.Err() // every partition gave up because ctx is done
	case failed == len(order):
		return errors.Join(errs...)
	}
	return &PartialEmitError{Written: written, Err: errors.Join(errs...)}
}

// PartialEmitError is the error of a [PartitionedPublisher] emit that
// wrote the events of some partitions and not of others: Written are the
// IDs of the events Redis confirmed (each partition is written in one
// pipeline, so a partition that failed may have written some of its
// events too: those are not in Written). POST /v1/events uses it to
// remember the written IDs for deduplication, so that posting the batch
// again emits only the others.
type PartialEmitError struct {
	// Written are the IDs of the events written, in emit order per
	// partition.
	Written []pubsub.ID
	// Err says which partitions failed and why.
	Err error
}

// Error implements error.
func (e *PartialEmitError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *PartialEmitError) Unwrap() error { return e.Err }

// partitionError names the partition and the events of a failed emit
// (nil for nil). The error of ctx, done, is returned as it is: it
// concerns every event of the emit.
func (p *PartitionedPublisher) partitionError(ctx context.Context, i int, events []pubsub.Event, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return ctx.Err()
	}
	ids := make([]string, 0, min(len(events), 5))
	for _, ev := range events[:min(len(events), 5)] {
		ids = append(ids, string(ev.ID))
	}
	more := ""
	if len(events) > len(ids) {
		more = fmt.Sprintf(" and %d more", len(events)-len(ids))
	}
	return fmt.Errorf("webhook: partition %d of %d: events %s%s not all written: %w", i, len(p.partitions), strings.Join(ids, ", "), more, err)
}

// Close closes every partition's publisher; later emits return
// [pubsub.ErrClosed]. It waits for the emits in flight, and is safe to
// call more than once.
func (p *PartitionedPublisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, pub := range p.partitions {
		errs = append(errs, pub.Close())
	}
	return errors.Join(errs...)
}

// PartitionedDeadLetters is a [DeadLetterStore] over the stores of a
// topic's partitions: a dead letter is added to the store of its event's
// partition ([PartitionOf] of Key; for a retry event, of the event it
// retries), so that an event's dead letters sit beside it (in
// webhook-bridge, in the partition's Redis Cluster slot). Drained stores
// are read but never written: those of partitions being drained after
// their number went down, or the store of the topic before it was
// partitioned.
//
// Its IDs are "p<k>:" and the ID of the k-th store (Partitions, then
// Drained), so they are unique across partitions and Remove finds the
// store of each; cursors look alike, "p<k>:" and that store's cursor.
//
// List walks the stores one after another (Partitions in order, then
// Drained), each oldest first, with one cursor; a page may span stores.
// It differs from [DeadLetterStore]'s walk in one way: the end of each
// store's part of the walk is fixed when the walk reaches that store, not
// when it starts, so a dead letter added to a later store while the walk
// is still on an earlier one is returned by this walk. A replay still
// ends: a replayed delivery dead-lettered again goes back to the store of
// its event's partition, which the walk has passed or is in, unless the
// number of partitions changed since the dead letter was stored (then it
// may be replayed twice in one walk; receivers deduplicate on
// webhook-id).
//
// The value is safe for concurrent use when its stores are.
type PartitionedDeadLetters struct {
	// Partitions are the stores of partitions 0 to n-1, where dead
	// letters are added. At least one.
	Partitions []DeadLetterStore
	// Drained are stores read (List, Remove, Len) and never added to.
	// default: none
	Drained []DeadLetterStore
	// Key gives an event's partition key; give it the publisher's.
	// default: the event's ID
	Key func(pubsub.Event) string
}

// partitionPrefix starts the IDs and cursors of a PartitionedDeadLetters.
const partitionPrefix = "p"

func (d PartitionedDeadLetters) stores() int { return len(d.Partitions) + len(d.Drained) }

func (d PartitionedDeadLetters) store(k int) DeadLetterStore {
	if k < len(d.Partitions) {
		return d.Partitions[k]
	}
	return d.Drained[k-len(d.Partitions)]
}

// Add stores dl in the store of its event's partition.
func (d PartitionedDeadLetters) Add(ctx context.Context, dl DeadLetter) error {
	if len(d.Partitions) == 0 {
		return errors.New("webhook: PartitionedDeadLetters has no partition")
	}
	key := d.Key
	if key == nil {
		key = partitionByID
	}
	return d.Partitions[PartitionOf(key(partitionEvent(dl.Event)), len(d.Partitions))].Add(ctx, dl)
}

// split reads "p<k>:<rest>".
func (d PartitionedDeadLetters) split(s string) (k int, rest string, ok bool) {
	body, found := strings.CutPrefix(s, partitionPrefix)
	if !found {
		return 0, "", false
	}
	num, rest, found := strings.Cut(body, ":")
	k, err := strconv.Atoi(num)
	if !found || err != nil || k < 0 || k >= d.stores() || strconv.Itoa(k) != num {
		return 0, "", false
	}
	return k, rest, true
}

func partitionRef(k int, s string) string { return partitionPrefix + strconv.Itoa(k) + ":" + s }

// List returns a page of the walk; see [PartitionedDeadLetters].
func (d PartitionedDeadLetters) List(ctx context.Context, after string, limit int) ([]DeadLetter, string, error) {
	if limit < 1 {
		limit = DefaultDeadLetterPage
	}
	k, inner := 0, ""
	if after != "" {
		var ok bool
		if k, inner, ok = d.split(after); !ok {
			return nil, "", fmt.Errorf("%w: %q", ErrInvalidCursor, after)
		}
	}
	var out []DeadLetter
	for k < d.stores() {
		page, next, err := d.store(k).List(ctx, inner, limit-len(out))
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil, "", ctx.Err()
			}
			if errors.Is(err, ErrInvalidCursor) {
				return nil, "", fmt.Errorf("%w: %q", ErrInvalidCursor, after)
			}
			return nil, "", fmt.Errorf("webhook: dead letters of store %d: %w", k, err)
		}
		for _, dl := range page {
			dl.ID = partitionRef(k, dl.ID)
			out = append(out, dl)
		}
		if next != "" {
			return out, partitionRef(k, next), nil
		}
		k, inner = k+1, ""
		if len(out) == limit && k < d.stores() {
			return out, partitionRef(k, ""), nil
		}
	}
	return out, "", nil
}

// Remove deletes the dead letters with these IDs from their stores; IDs
// of no store are ignored.
func (d PartitionedDeadLetters) Remove(ctx context.Context, ids ...string) error {
	byStore := map[int][]string{}
	var order []int
	for _, id := range ids {
		k, inner, ok := d.split(id)
		if !ok || inner == "" {
			continue
		}
		if _, seen := byStore[k]; !seen {
			order = append(order, k)
		}
		byStore[k] = append(byStore[k], inner)
	}
	var errs []error
	for _, k := range order {
		if err := d.store(k).Remove(ctx, byStore[k]...); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("webhook: removing dead letters from store %d: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// Len returns how many dead letters the stores hold together.
func (d PartitionedDeadLetters) Len(ctx context.Context) (int64, error) {
	var n int64
	for k := range d.stores() {
		l, err := d.store(k).Len(ctx)
		if err != nil {
			return 0, err
		}
		n += l
	}
	return n, nil
}
