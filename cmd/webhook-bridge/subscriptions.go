package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/webhook"
)

// subscriptions joins the read-only subscriptions of the config file with
// those made through the admin API, and keeps the bridge's set current.
type subscriptions struct {
	config []webhook.Subscription
	store  subscriptionStore
	bridge *webhook.Bridge
	log    *slog.Logger

	mu   sync.Mutex // serialises sync
	seen int64      // store version the bridge has, -1 before the first load
}

func (s *subscriptions) isConfig(id string) bool {
	for _, c := range s.config {
		if c.ID == id {
			return true
		}
	}
	return false
}

func (s *subscriptions) all(ctx context.Context) ([]view, error) {
	stored, err := s.store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading subscriptions: %w", err)
	}
	out := make([]view, 0, len(s.config)+len(stored))
	for _, c := range s.config {
		out = append(out, view{Subscription: c, Source: "config"})
	}
	for _, st := range stored {
		out = append(out, view{Subscription: st, Source: "api"})
	}
	return out, nil
}

func (s *subscriptions) put(ctx context.Context, sub webhook.Subscription, create bool) (int, error) {
	if s.isConfig(sub.ID) {
		return http.StatusConflict, fmt.Errorf("subscription %q comes from the config file; change it there", sub.ID)
	}
	stored, err := s.store.List(ctx)
	if err != nil {
		return http.StatusServiceUnavailable, err
	}
	exists := false
	for _, st := range stored {
		if st.ID == sub.ID {
			exists = true
			// Secrets are never shown, so a PUT built from a GET has none:
			// without a "secret" key it keeps the stored ones ("secret": []
			// removes them).
			if sub.Secrets == nil {
				sub.Secrets = st.Secrets
			}
		}
	}
	switch {
	case create && exists:
		return http.StatusConflict, fmt.Errorf("subscription %q exists; PUT /v1/subscriptions/%s replaces it", sub.ID, sub.ID)
	case !create && !exists:
		return http.StatusNotFound, fmt.Errorf("no subscription %q", sub.ID)
	}
	if err := s.store.Put(ctx, sub); err != nil {
		return http.StatusServiceUnavailable, err
	}
	if err := s.sync(ctx); err != nil {
		return http.StatusServiceUnavailable, err
	}
	if create {
		return http.StatusCreated, nil
	}
	return http.StatusOK, nil
}

func (s *subscriptions) delete(ctx context.Context, id string) (int, error) {
	if s.isConfig(id) {
		return http.StatusConflict, fmt.Errorf("subscription %q comes from the config file; remove it there", id)
	}
	ok, err := s.store.Delete(ctx, id)
	if err != nil {
		return http.StatusServiceUnavailable, err
	}
	if !ok {
		return http.StatusNotFound, fmt.Errorf("no subscription %q", id)
	}
	return http.StatusNoContent, s.sync(ctx)
}

// sync gives the bridge the current set when the store changed.
func (s *subscriptions) sync(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.store.Version(ctx)
	if err != nil {
		return err
	}
	if v == s.seen {
		return nil
	}
	stored, err := s.store.List(ctx)
	if err != nil {
		return err
	}
	all := append(append([]webhook.Subscription(nil), s.config...), stored...)
	if err := s.bridge.SetSubscriptions(all); err != nil {
		return err
	}
	s.seen = v
	s.log.Info("webhook-bridge: subscriptions in force", "count", len(all), "version", v)
	return nil
}

// watch picks up changes other replicas make, within a second.
func (s *subscriptions) watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.sync(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("webhook-bridge: reloading subscriptions", "err", err)
			}
		}
	}
}
