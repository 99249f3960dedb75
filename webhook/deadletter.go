package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
)

// DeadLetter is a delivery given up on: the event, the subscription, and
// why.
type DeadLetter struct {
	// ID identifies the dead letter in its store.
	ID string `json:"id"`
	// SubscriptionID is the subscription the delivery was for.
	SubscriptionID string `json:"subscription_id"`
	// Attempts is how many deliveries were tried.
	Attempts int `json:"attempts"`
	// LastStatus is the last HTTP status, 0 when there was no response.
	LastStatus int `json:"last_status"`
	// LastError says what went wrong last.
	LastError string `json:"last_error"`
	// At is when the delivery was given up on.
	At time.Time `json:"at"`
	// Event is the event as it was emitted.
	Event pubsub.Event `json:"event"`
}

// DeadLetterStore keeps dead letters until they are replayed.
type DeadLetterStore interface {
	// Add stores dl; its ID is set by the store.
	Add(ctx context.Context, dl DeadLetter) error
	// List returns every dead letter, oldest first.
	List(ctx context.Context) ([]DeadLetter, error)
	// Remove deletes the dead letters with these IDs.
	Remove(ctx context.Context, ids ...string) error
}

// MemoryDeadLetters is a [DeadLetterStore] in process memory, the default
// when no store is configured. It is safe for concurrent use.
type MemoryDeadLetters struct {
	mu   sync.Mutex
	next int
	dls  []DeadLetter
}

// Add stores dl.
func (m *MemoryDeadLetters) Add(_ context.Context, dl DeadLetter) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	dl.ID = fmt.Sprint(m.next)
	m.dls = append(m.dls, dl)
	return nil
}

// List returns a copy of the dead letters, oldest first.
func (m *MemoryDeadLetters) List(context.Context) ([]DeadLetter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.dls), nil
}

// Remove deletes the dead letters with these IDs.
func (m *MemoryDeadLetters) Remove(_ context.Context, ids ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dls = slices.DeleteFunc(m.dls, func(dl DeadLetter) bool { return slices.Contains(ids, dl.ID) })
	return nil
}

// RedisDeadLetters is a [DeadLetterStore] in a Redis stream, one entry per
// dead letter (a "dead_letter" field holding its JSON), so that every
// replica and the `webhook-bridge dlq` commands see the same list.
type RedisDeadLetters struct {
	// Client is the caller's; it is never closed here.
	Client goredis.UniversalClient
	// Key is the stream's key.
	Key string
}

// Add appends dl to the stream; its ID is the entry ID.
func (r RedisDeadLetters) Add(ctx context.Context, dl DeadLetter) error {
	b, err := json.Marshal(dl)
	if err != nil {
		return err
	}
	return r.Client.XAdd(ctx, &goredis.XAddArgs{Stream: r.Key, Values: []any{"dead_letter", b}}).Err()
}

// List reads the whole stream, oldest first. Entries that are not dead
// letters are skipped.
func (r RedisDeadLetters) List(ctx context.Context) ([]DeadLetter, error) {
	entries, err := r.Client.XRange(ctx, r.Key, "-", "+").Result()
	if err != nil {
		return nil, fmt.Errorf("webhook: reading dead letters from %q: %w", r.Key, err)
	}
	out := make([]DeadLetter, 0, len(entries))
	for _, e := range entries {
		raw, _ := e.Values["dead_letter"].(string)
		var dl DeadLetter
		if json.Unmarshal([]byte(raw), &dl) != nil {
			continue
		}
		dl.ID = e.ID
		out = append(out, dl)
	}
	return out, nil
}

// Remove deletes entries by ID.
func (r RedisDeadLetters) Remove(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return r.Client.XDel(ctx, r.Key, ids...).Err()
}
