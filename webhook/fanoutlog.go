package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
)

// FanoutLog remembers, for an event delivered to several subscriptions,
// which of its deliveries are settled (sent, retry scheduled, deferred or
// dead-lettered), so that an event handed over again after a crash or an
// error goes only to the subscriptions it has not reached. A bridge
// writes to it only while an event's deliveries take longer than a
// quarter of a second, and before it returns an error; deliveries settled
// in the last quarter second before a crash may be made again (deliveries
// are at-least-once; receivers deduplicate on webhook-id).
//
// Records are kept by event ID: two different events sharing an ID, both
// handed over again while the record of the first lasts, share it (event
// IDs are meant to be unique; receivers deduplicate on them too).
type FanoutLog interface {
	// Settled returns the subscriptions recorded for ev.
	Settled(ctx context.Context, ev pubsub.Event) ([]string, error)
	// Add records subscriptions as settled for ev.
	Add(ctx context.Context, ev pubsub.Event, subscriptionIDs ...string) error
	// Forget removes ev's record.
	Forget(ctx context.Context, ev pubsub.Event) error
}

// DefaultFanoutTTL is how long a FanoutLog keeps an event's record when the
// bridge does not remove it (it stopped, or the event went to another
// replica).
const DefaultFanoutTTL = 24 * time.Hour

// MemoryFanoutLog is a [FanoutLog] in memory, for one process: it lets an
// event whose handling failed skip the deliveries already made when it is
// handed over again. The zero value is ready to use.
type MemoryFanoutLog struct {
	mu sync.Mutex
	m  map[string]*memoryFanout
}

type memoryFanout struct {
	subs    map[string]bool
	expires time.Time
}

// Settled implements [FanoutLog].
func (m *MemoryFanoutLog) Settled(_ context.Context, ev pubsub.Event) ([]string, error) {
	eventID := string(ev.ID)
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.m[eventID]
	if !ok || time.Now().After(f.expires) {
		return nil, nil
	}
	out := make([]string, 0, len(f.subs))
	for s := range f.subs {
		out = append(out, s)
	}
	return out, nil
}

// Add implements [FanoutLog]; records older than DefaultFanoutTTL are
// dropped as new ones come.
func (m *MemoryFanoutLog) Add(_ context.Context, ev pubsub.Event, subscriptionIDs ...string) error {
	eventID := string(ev.ID)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if m.m == nil {
		m.m = map[string]*memoryFanout{}
	}
	f, ok := m.m[eventID]
	if !ok || now.After(f.expires) {
		for id, old := range m.m { // a few records at most, except after failures
			if now.After(old.expires) {
				delete(m.m, id)
			}
		}
		f = &memoryFanout{subs: map[string]bool{}}
		m.m[eventID] = f
	}
	f.expires = now.Add(DefaultFanoutTTL)
	for _, s := range subscriptionIDs {
		f.subs[s] = true
	}
	return nil
}

// Forget implements [FanoutLog].
func (m *MemoryFanoutLog) Forget(_ context.Context, ev pubsub.Event) error {
	m.mu.Lock()
	delete(m.m, string(ev.ID))
	m.mu.Unlock()
	return nil
}

// RedisFanoutLog is a [FanoutLog] in Redis, shared by replicas: one set
// per event, at Prefix followed by 32 hex digits of the SHA-256 of the
// event ID, expiring TTL after its last write.
type RedisFanoutLog struct {
	// Client is the caller's; it is never closed here.
	Client goredis.UniversalClient
	// Prefix starts every key, e.g. "{events}:webhook:fanout:" to keep
	// them in the stream's Cluster slot.
	Prefix string
	// TTL is how long a record stays after its last write.
	// default: DefaultFanoutTTL
	TTL time.Duration
}

func (r RedisFanoutLog) key(ev pubsub.Event) string {
	sum := sha256.Sum256([]byte(ev.ID))
	return r.Prefix + hex.EncodeToString(sum[:16])
}

// Settled implements [FanoutLog].
func (r RedisFanoutLog) Settled(ctx context.Context, ev pubsub.Event) ([]string, error) {
	return r.Client.SMembers(ctx, r.key(ev)).Result()
}

// Add implements [FanoutLog].
func (r RedisFanoutLog) Add(ctx context.Context, ev pubsub.Event, subscriptionIDs ...string) error {
	if len(subscriptionIDs) == 0 {
		return nil
	}
	ttl := r.TTL
	if ttl <= 0 {
		ttl = DefaultFanoutTTL
	}
	members := make([]any, len(subscriptionIDs))
	for i, s := range subscriptionIDs {
		members[i] = s
	}
	k := r.key(ev)
	_, err := r.Client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.SAdd(ctx, k, members...)
		p.PExpire(ctx, k, ttl)
		return nil
	})
	return err
}

// Forget implements [FanoutLog].
func (r RedisFanoutLog) Forget(ctx context.Context, ev pubsub.Event) error {
	return r.Client.Del(ctx, r.key(ev)).Err()
}

// PartitionedFanoutLog is a [FanoutLog] over one log per partition, so
// that with a partitioned stream ([PartitionedPublisher]) each event's
// record stays beside its partition (in its Redis Cluster slot). An event
// handed over again after the number of partitions changed looks in
// another partition's log, finds nothing, and goes to every subscription
// it matches again.
type PartitionedFanoutLog struct {
	// Partitions are the logs of partitions 0 to n-1. At least one.
	Partitions []FanoutLog
	// Key gives an event's partition key; give it the publisher's.
	// default: the event's ID
	Key func(pubsub.Event) string
}

func (l PartitionedFanoutLog) of(ev pubsub.Event) FanoutLog {
	key := l.Key
	if key == nil {
		key = partitionByID
	}
	return l.Partitions[PartitionOf(key(partitionEvent(ev)), len(l.Partitions))]
}

// Settled implements [FanoutLog].
func (l PartitionedFanoutLog) Settled(ctx context.Context, ev pubsub.Event) ([]string, error) {
	return l.of(ev).Settled(ctx, ev)
}

// Add implements [FanoutLog].
func (l PartitionedFanoutLog) Add(ctx context.Context, ev pubsub.Event, subscriptionIDs ...string) error {
	return l.of(ev).Add(ctx, ev, subscriptionIDs...)
}

// Forget implements [FanoutLog].
func (l PartitionedFanoutLog) Forget(ctx context.Context, ev pubsub.Event) error {
	return l.of(ev).Forget(ctx, ev)
}
