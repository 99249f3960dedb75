package inbox

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/switchyard-go/switchyard/pubsub"
)

// Registry dispatches events by name to the handlers registered for them,
// each idempotent under its own key: when one of several handlers of an
// event fails, a redelivery runs only the ones that have not succeeded.
type Registry struct {
	store Store
	opts  Options

	mu     sync.RWMutex
	byName map[pubsub.Name][]registered
}

type registered struct {
	key string
	h   pubsub.Handler
}

// NewRegistry returns an empty registry whose handlers record their work
// in store.
func NewRegistry(store Store, opts Options) *Registry {
	return &Registry{store: store, opts: opts, byName: map[pubsub.Name][]registered{}}
}

// Register adds h for events named name, under key (unique per name, and
// stable: it is what the store remembers).
func (r *Registry) Register(name pubsub.Name, key string, h pubsub.Handler) error {
	if name == "" || key == "" || h == nil {
		return errors.New("inbox: Register needs a name, a key and a handler")
	}
	return r.add(name, key, func() pubsub.Handler { return Middleware(r.store, key, r.opts)(h) })
}

// RegisterTx adds h for events named name, under key (unique per name,
// and stable), in the transactional form ([Transactional]): h's writes
// and the done mark commit in one transaction of the store's DB. It needs
// the registry's store to be a [SQLStore].
func (r *Registry) RegisterTx(name pubsub.Name, key string, h TxHandler) error {
	if name == "" || key == "" || h == nil {
		return errors.New("inbox: RegisterTx needs a name, a key and a handler")
	}
	var store SQLStore
	switch s := r.store.(type) {
	case SQLStore:
		store = s
	case *SQLStore:
		if s == nil {
			return errors.New("inbox: RegisterTx needs a SQLStore; the registry's store is a nil *SQLStore")
		}
		store = *s
	default:
		return fmt.Errorf("inbox: RegisterTx needs the registry's store to be a SQLStore (the handler's writes commit with the done mark in its DB), not %T", r.store)
	}
	if store.DB == nil {
		return errors.New("inbox: RegisterTx needs a SQLStore with a DB")
	}
	return r.add(name, key, func() pubsub.Handler { return Transactional(store, key, r.opts, h) })
}

// add registers the handler wrap makes under key, unless name has one
// with that key already.
func (r *Registry) add(name pubsub.Name, key string, wrap func() pubsub.Handler) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, reg := range r.byName[name] {
		if reg.key == key {
			return fmt.Errorf("inbox: %q already has a handler with key %q", name, key)
		}
	}
	r.byName[name] = append(r.byName[name], registered{key: key, h: wrap()})
	return nil
}

// Handle runs every handler registered for ev's name, one after another,
// and returns their errors joined; an event no handler wants is done.
// It is a [pubsub.Handler].
func (r *Registry) Handle(ctx context.Context, ev pubsub.Event) error {
	r.mu.RLock()
	regs := r.byName[ev.Name]
	r.mu.RUnlock()
	var errs []error
	for _, reg := range regs {
		if err := reg.h(ctx, ev); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
