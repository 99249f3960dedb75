package webhookhttp

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/webhook"
)

// SubscriptionStore keeps the subscriptions made through the admin API,
// secrets included. Implementations are safe for concurrent use.
type SubscriptionStore interface {
	// List returns every stored subscription, by id.
	List(ctx context.Context) ([]webhook.Subscription, error)
	// Put creates or replaces s.
	Put(ctx context.Context, s webhook.Subscription) error
	// Delete removes id and reports whether it was there.
	Delete(ctx context.Context, id string) (bool, error)
	// Version changes with every Put and Delete, so replicas notice.
	Version(ctx context.Context) (int64, error)
}

// stored is a subscription as a store keeps it: with its secrets, which
// webhook.Subscription never writes out.
type stored struct {
	webhook.Subscription
	Secrets []string `json:"secret,omitempty"`
}

func encodeSub(s webhook.Subscription) ([]byte, error) {
	return json.Marshal(stored{Subscription: s, Secrets: s.Secrets})
}

func decodeSub(b []byte) (webhook.Subscription, error) {
	var st stored
	if err := json.Unmarshal(b, &st); err != nil {
		return webhook.Subscription{}, err
	}
	st.Subscription.Secrets = st.Secrets
	return st.Subscription, nil
}

// MemoryStore is a [SubscriptionStore] in process memory.
type MemoryStore struct {
	mu       sync.Mutex
	subs     map[string]webhook.Subscription
	disabled map[string]Disabled
	version  int64
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{subs: map[string]webhook.Subscription{}} }

// List implements [SubscriptionStore].
func (m *MemoryStore) List(context.Context) ([]webhook.Subscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]webhook.Subscription, 0, len(m.subs))
	for _, s := range m.subs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b webhook.Subscription) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Put implements [SubscriptionStore].
func (m *MemoryStore) Put(_ context.Context, s webhook.Subscription) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs[s.ID] = s
	m.version++
	return nil
}

// Delete implements [SubscriptionStore].
func (m *MemoryStore) Delete(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.subs[id]
	delete(m.subs, id)
	m.version++
	return ok, nil
}

// Version implements [SubscriptionStore].
func (m *MemoryStore) Version(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.version, nil
}

// RedisStore is a [SubscriptionStore] in Redis, shared by replicas: a hash
// at Key (id → JSON, secrets included) and a version at Key+":version",
// bumped with every change in the same transaction. Give Key a hash tag
// ("{events}:webhook:subscriptions") so both share a Cluster slot.
type RedisStore struct {
	Client goredis.UniversalClient
	Key    string
}

func (r RedisStore) versionKey() string { return r.Key + ":version" }

// List implements [SubscriptionStore].
func (r RedisStore) List(ctx context.Context) ([]webhook.Subscription, error) {
	all, err := r.Client.HGetAll(ctx, r.Key).Result()
	if err != nil {
		return nil, err
	}
	out := make([]webhook.Subscription, 0, len(all))
	for id, raw := range all {
		s, err := decodeSub([]byte(raw))
		if err != nil {
			return nil, fmt.Errorf("subscription %q in %s: %w", id, r.Key, err)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b webhook.Subscription) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// changeScript sets (ARGV[1] = "set", ARGV[2] the id, ARGV[3] the JSON) or
// deletes (ARGV[1] = "del") one subscription and bumps the version. A
// version key that is gone (Redis lost its data) starts again at a random
// number (ARGV[4]), not at 1: a replica that had seen version 1 of the lost
// store must see this one as a change.
var changeScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[4]) end
local n = 0
if ARGV[1] == 'set' then redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) else n = redis.call('HDEL', KEYS[1], ARGV[2]) end
redis.call('INCR', KEYS[2])
return n
`)

// change runs changeScript.
func (r RedisStore) change(ctx context.Context, op, id, value string) (int64, error) {
	start := time.Now().UnixNano()&(1<<52-1) | 1<<52 // far from the small numbers a lost store counted
	return changeScript.Run(ctx, r.Client, []string{r.Key, r.versionKey()}, op, id, value, start).Int64()
}

// Put implements [SubscriptionStore].
func (r RedisStore) Put(ctx context.Context, s webhook.Subscription) error {
	b, err := encodeSub(s)
	if err != nil {
		return err
	}
	_, err = r.change(ctx, "set", s.ID, string(b))
	return err
}

// Delete implements [SubscriptionStore].
func (r RedisStore) Delete(ctx context.Context, id string) (bool, error) {
	n, err := r.change(ctx, "del", id, "")
	return n == 1, err
}

// Version implements [SubscriptionStore].
func (r RedisStore) Version(ctx context.Context) (int64, error) {
	v, err := r.Client.Get(ctx, r.versionKey()).Int64()
	if err == goredis.Nil {
		return 0, nil
	}
	return v, err
}
