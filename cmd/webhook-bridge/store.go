package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/webhook"
)

// subscriptionStore keeps the subscriptions made through the admin API.
type subscriptionStore interface {
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

type memoryStore struct {
	mu      sync.Mutex
	subs    map[string]webhook.Subscription
	version int64
}

func newMemoryStore() *memoryStore { return &memoryStore{subs: map[string]webhook.Subscription{}} }

func (m *memoryStore) List(context.Context) ([]webhook.Subscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]webhook.Subscription, 0, len(m.subs))
	for _, s := range m.subs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b webhook.Subscription) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (m *memoryStore) Put(_ context.Context, s webhook.Subscription) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs[s.ID] = s
	m.version++
	return nil
}

func (m *memoryStore) Delete(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.subs[id]
	delete(m.subs, id)
	m.version++
	return ok, nil
}

func (m *memoryStore) Version(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.version, nil
}

// redisStore keeps subscriptions in a hash (id → JSON) and bumps a
// version key in the same slot with every change.
type redisStore struct {
	client goredis.UniversalClient
	key    string
}

func (r *redisStore) versionKey() string { return r.key + ":version" }

func (r *redisStore) List(ctx context.Context) ([]webhook.Subscription, error) {
	all, err := r.client.HGetAll(ctx, r.key).Result()
	if err != nil {
		return nil, err
	}
	out := make([]webhook.Subscription, 0, len(all))
	for id, raw := range all {
		s, err := decodeSub([]byte(raw))
		if err != nil {
			return nil, fmt.Errorf("subscription %q in %s: %w", id, r.key, err)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b webhook.Subscription) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (r *redisStore) Put(ctx context.Context, s webhook.Subscription) error {
	b, err := encodeSub(s)
	if err != nil {
		return err
	}
	_, err = r.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HSet(ctx, r.key, s.ID, b)
		p.Incr(ctx, r.versionKey())
		return nil
	})
	return err
}

func (r *redisStore) Delete(ctx context.Context, id string) (bool, error) {
	var del *goredis.IntCmd
	_, err := r.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		del = p.HDel(ctx, r.key, id)
		p.Incr(ctx, r.versionKey())
		return nil
	})
	if err != nil {
		return false, err
	}
	return del.Val() == 1, nil
}

func (r *redisStore) Version(ctx context.Context) (int64, error) {
	v, err := r.client.Get(ctx, r.versionKey()).Int64()
	if err == goredis.Nil {
		return 0, nil
	}
	return v, err
}
