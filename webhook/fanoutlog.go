package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// FanoutLog remembers, for an event delivered to several subscriptions,
// which of its deliveries are settled (sent, retry scheduled, deferred or
// dead-lettered), so that an event handed over again after a crash or an
// error goes only to the subscriptions it has not reached. A bridge
// writes to it only while an event's deliveries take longer than a
// quarter of a second, and before it returns an error; deliveries settled
// in the last quarter second before a crash may be made again (deliveries
// are at-least-once; receivers deduplicate on webhook-id).
type FanoutLog interface {
	// Settled returns the subscriptions recorded for eventID.
	Settled(ctx context.Context, eventID string) ([]string, error)
	// Add records subscriptions as settled for eventID.
	Add(ctx context.Context, eventID string, subscriptionIDs ...string) error
	// Forget removes eventID's record.
	Forget(ctx context.Context, eventID string) error
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
func (m *MemoryFanoutLog) Settled(_ context.Context, eventID string) ([]string, error) {
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
func (m *MemoryFanoutLog) Add(_ context.Context, eventID string, subscriptionIDs ...string) error {
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
func (m *MemoryFanoutLog) Forget(_ context.Context, eventID string) error {
	m.mu.Lock()
	delete(m.m, eventID)
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

func (r RedisFanoutLog) key(eventID string) string {
	sum := sha256.Sum256([]byte(eventID))
	return r.Prefix + hex.EncodeToString(sum[:16])
}

// Settled implements [FanoutLog].
func (r RedisFanoutLog) Settled(ctx context.Context, eventID string) ([]string, error) {
	return r.Client.SMembers(ctx, r.key(eventID)).Result()
}

// Add implements [FanoutLog].
func (r RedisFanoutLog) Add(ctx context.Context, eventID string, subscriptionIDs ...string) error {
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
	k := r.key(eventID)
	_, err := r.Client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.SAdd(ctx, k, members...)
		p.PExpire(ctx, k, ttl)
		return nil
	})
	return err
}

// Forget implements [FanoutLog].
func (r RedisFanoutLog) Forget(ctx context.Context, eventID string) error {
	return r.Client.Del(ctx, r.key(eventID)).Err()
}
