package webhookhttp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/webhook"
)

// SubscriptionView is a subscription as the admin API shows it: its
// fields, how many secrets it has (never their values) and where it comes
// from. A view sent back unchanged with PUT replaces the subscription with
// itself: source and secret_count are read-only and ignored on input, and
// a PUT without "secret" keeps the stored secrets ("secret": [] removes
// them).
type SubscriptionView struct {
	ID          string             `json:"id"`
	Topic       string             `json:"topic"`
	Filter      string             `json:"filter,omitempty"`
	URL         string             `json:"url"`
	Headers     map[string]string  `json:"headers,omitempty"`
	Timeout     webhook.Duration   `json:"timeout,omitempty"`
	MaxAttempts int                `json:"max_attempts,omitempty"`
	RateLimit   *webhook.RateLimit `json:"rate_limit,omitempty"`
	Disabled    bool               `json:"disabled,omitempty"`
	SecretCount int                `json:"secret_count"`
	// PublicKeys are the "whpk_" public keys of the subscription's
	// ed25519 private keys ("whsk_" secrets, which sign with "v1a"), in
	// the order of its secrets: what receivers verify with. Read-only;
	// a "whpk_" key sent back in "secret" keeps its private key.
	PublicKeys []string `json:"public_keys,omitempty"`
	// Source is "config" (read-only) or "api".
	Source string `json:"source"`
	// DisabledReason, DisabledAt and DisabledBy say why a subscription is
	// disabled at run time (by "operator" or "bridge"), apart from its
	// definition; absent otherwise. Read-only.
	DisabledReason string     `json:"disabled_reason,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	DisabledBy     string     `json:"disabled_by,omitempty"`
}

// withDisabled marks v disabled at run time when off holds it.
func (v SubscriptionView) withDisabled(off map[string]Disabled) SubscriptionView {
	if d, ok := off[v.ID]; ok {
		at := d.At
		v.Disabled, v.DisabledReason, v.DisabledAt, v.DisabledBy = true, d.Reason, &at, d.By
	}
	return v
}

func viewOf(s webhook.Subscription, source string) SubscriptionView {
	return SubscriptionView{
		ID: s.ID, Topic: s.Topic, Filter: s.Filter, URL: s.URL, Headers: s.Headers, Timeout: s.Timeout,
		MaxAttempts: s.MaxAttempts, RateLimit: s.RateLimit, Disabled: s.Disabled, SecretCount: len(s.Secrets),
		PublicKeys: s.PublicKeys(), Source: source,
	}
}

// subscriptionInput is a subscription as the admin API reads it: the
// fields of webhook.Subscription, and the read-only fields of a view.
type subscriptionInput struct {
	webhook.Subscription
	// Signing "ed25519" adds an ed25519 key pair made by the bridge to
	// the secrets; see Handler.signingKeys.
	Signing        string          `json:"signing,omitempty"`
	SecretCount    *int            `json:"secret_count,omitempty"`
	PublicKeys     json.RawMessage `json:"public_keys,omitempty"`
	Source         string          `json:"source,omitempty"`
	DisabledReason string          `json:"disabled_reason,omitempty"`
	DisabledAt     json.RawMessage `json:"disabled_at,omitempty"`
	DisabledBy     string          `json:"disabled_by,omitempty"`
}

// adminBodyLimit bounds admin request bodies.
const adminBodyLimit = 256 << 10

// subscriptions joins the read-only subscriptions with those made through
// the admin API, and keeps the bridge's set current.
type subscriptions struct {
	readOnly []webhook.Subscription
	store    SubscriptionStore
	bridge   *webhook.Bridge
	log      *slog.Logger

	mu   sync.Mutex // serialises sync
	seen int64      // store version the bridge has, -1 before the first load
}

func (s *subscriptions) isReadOnly(id string) bool {
	for _, c := range s.readOnly {
		if c.ID == id {
			return true
		}
	}
	return false
}

func (s *subscriptions) all(ctx context.Context) ([]SubscriptionView, error) {
	stored, err := s.store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading subscriptions: %w", err)
	}
	off, err := s.disabledSet(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]SubscriptionView, 0, len(s.readOnly)+len(stored))
	for _, c := range s.readOnly {
		out = append(out, viewOf(c, "config").withDisabled(off))
	}
	for _, st := range stored {
		out = append(out, viewOf(st, "api").withDisabled(off))
	}
	return out, nil
}

// stored returns the subscription made through the admin API with id.
func (s *subscriptions) stored(ctx context.Context, id string) (webhook.Subscription, error) {
	stored, err := s.store.List(ctx)
	if err != nil {
		return webhook.Subscription{}, err
	}
	for _, st := range stored {
		if st.ID == id {
			return st, nil
		}
	}
	return webhook.Subscription{}, fmt.Errorf("no subscription %q", id)
}

func (s *subscriptions) put(ctx context.Context, sub webhook.Subscription, create bool) (int, error) {
	if s.isReadOnly(sub.ID) {
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
			// without a "secret" key it keeps the stored ones.
			if sub.Secrets == nil {
				sub.Secrets = st.Secrets
			}
			// A view shows a subscription disabled at run time as
			// disabled: sent back, that leaves its definition as it was.
			if sub.Disabled && !st.Disabled {
				if off, err := s.disabledSet(ctx); err == nil {
					if _, ok := off[sub.ID]; ok {
						sub.Disabled = false
					}
				}
			}
		}
	}
	switch {
	case create && exists:
		return http.StatusConflict, fmt.Errorf("subscription %q exists; PUT /v1/subscriptions/%s replaces it", sub.ID, sub.ID)
	case !create && !exists:
		return http.StatusNotFound, fmt.Errorf("no subscription %q", sub.ID)
	}
	if create {
		// One made again with the id of one removed starts afresh: what
		// was counted of that one after it was forgotten (deliveries in
		// flight when it was removed) is not this one's.
		if err := s.bridge.ResetHealth(ctx, sub.ID); err != nil {
			return http.StatusServiceUnavailable, fmt.Errorf("resetting the health of subscription %q: %w", sub.ID, err)
		}
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
	if s.isReadOnly(id) {
		return http.StatusConflict, fmt.Errorf("subscription %q comes from the config file; remove it there", id)
	}
	ok, err := s.store.Delete(ctx, id)
	if err != nil {
		return http.StatusServiceUnavailable, err
	}
	if !ok {
		return http.StatusNotFound, fmt.Errorf("no subscription %q", id)
	}
	// One made again with this id starts afresh.
	if ds, ok := s.store.(DisabledStore); ok {
		if _, err := ds.SetDisabled(ctx, id, nil); err != nil {
			return http.StatusServiceUnavailable, err
		}
	}
	if err := s.bridge.ResetHealth(ctx, id); err != nil {
		s.log.Warn("webhook-bridge: forgetting the health of a removed subscription", "subscription", id, "err", err)
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
	off, err := s.disabledSet(ctx)
	if err != nil {
		return err
	}
	all := append([]webhook.Subscription(nil), s.readOnly...)
	for _, st := range stored {
		if s.isReadOnly(st.ID) {
			// The config file now has this id too (a rolling deploy, say):
			// it wins, and the stored one waits, unused, until removed.
			s.log.Warn("webhook-bridge: a subscription made through the admin API has the id of one in the config file; the config's is in force", "subscription", st.ID)
			continue
		}
		all = append(all, st)
	}
	for i := range all {
		if _, ok := off[all[i].ID]; ok {
			all[i].Disabled = true
		}
	}
	if err := s.bridge.SetSubscriptions(all); err != nil {
		return err
	}
	s.seen = v
	s.log.Info("webhook-bridge: subscriptions in force", "count", len(all), "version", v)
	return nil
}

// watch picks up changes other replicas make.
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

// SubscriptionPage is the answer of GET /v1/subscriptions.
type SubscriptionPage struct {
	Subscriptions []SubscriptionView `json:"subscriptions"`
	// Next is the cursor of the following page, "" after the last.
	Next string `json:"next"`
}

// Pages of GET /v1/subscriptions.
const (
	subscriptionsDefaultLimit = 100
	// SubscriptionsMaxLimit is the largest page GET /v1/subscriptions
	// answers.
	SubscriptionsMaxLimit = 1000
)

// listSubscriptions answers one page of the subscriptions, by id, after
// the cursor (the last id of the previous page).
func (h *Handler) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	if page, ok := h.subscriptionPage(w, r); ok {
		writeJSON(w, http.StatusOK, page)
	}
}

// subscriptionPage reads the page that limit and cursor ask for, by id,
// or answers the error.
func (h *Handler) subscriptionPage(w http.ResponseWriter, r *http.Request) (SubscriptionPage, bool) {
	q := r.URL.Query()
	limit := subscriptionsDefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > SubscriptionsMaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want an integer from 1 to %d", shown(v), SubscriptionsMaxLimit))
			return SubscriptionPage{}, false
		}
		limit = n
	}
	all, err := h.subs.all(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return SubscriptionPage{}, false
	}
	slices.SortFunc(all, func(a, b SubscriptionView) int { return strings.Compare(a.ID, b.ID) })
	cursor := q.Get("cursor")
	start, _ := slices.BinarySearchFunc(all, cursor, func(v SubscriptionView, id string) int { return strings.Compare(v.ID, id) })
	if start < len(all) && cursor != "" && all[start].ID == cursor {
		start++
	}
	page := SubscriptionPage{Subscriptions: all[start:min(start+limit, len(all))]}
	if end := start + limit; end < len(all) {
		page.Next = all[end-1].ID
	}
	return page, true
}

func (h *Handler) getSubscription(w http.ResponseWriter, r *http.Request) {
	if v, ok := h.find(w, r); ok {
		writeJSON(w, http.StatusOK, v)
	}
}

func (h *Handler) readSubscription(w http.ResponseWriter, r *http.Request) (webhook.Subscription, bool) {
	var in subscriptionInput
	if !readAdminJSON(w, r, &in) {
		return in.Subscription, false
	}
	sub := in.Subscription
	if id := r.PathValue("id"); id != "" {
		if sub.ID != "" && sub.ID != id {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("body id %q differs from the path's %q", shown(sub.ID), shown(id)))
			return sub, false
		}
		sub.ID = id
	}
	if err := h.signingKeys(r.Context(), &sub, in.Signing, r.PathValue("id") == ""); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return sub, false
	}
	if err := webhook.Compile(sub); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return sub, false
	}
	// A literal address the target policy refuses is refused now; names
	// are checked when they resolve, at every delivery.
	if u, err := url.Parse(sub.URL); err == nil {
		if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
			if err := h.cfg.Targets.Permits(ip); err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("subscription %q: url: %v", sub.ID, err))
				return sub, false
			}
		}
	}
	return sub, true
}

// SigningEd25519 is the value of "signing" that has the bridge make an
// ed25519 key pair for a subscription: its private key ("whsk_") is
// added to the secrets and signs with "v1a"; only its public key
// ("whpk_", in the view's public_keys) is ever shown.
const SigningEd25519 = "ed25519"

// signingKeys applies to sub's secrets what the admin API adds to them.
// A "whpk_" public key in "secret" stands for the stored "whsk_" private
// key it belongs to: so a PUT keeps a key whose private half was never
// shown, and drops the secrets it does not list (the end of a rotation).
// signing "ed25519" then adds a key pair made here: on create, to the
// secrets given; on PUT, to those the PUT leaves in force (the stored
// ones when "secret" is absent), so both old and new sign until the old
// are dropped. create is false for PUT and check.
func (h *Handler) signingKeys(ctx context.Context, sub *webhook.Subscription, signing string, create bool) error {
	switch signing {
	case "", SigningEd25519:
	default:
		return fmt.Errorf("subscription %q: signing %q: want %q (a key pair made by the bridge; HMAC secrets are given in \"secret\")",
			sub.ID, shown(signing), SigningEd25519)
	}
	refers := slices.ContainsFunc(sub.Secrets, webhook.IsPublicKey)
	if !refers && (signing == "" || create || sub.Secrets != nil) {
		if signing != "" {
			return addSigningKey(sub)
		}
		return nil
	}
	if h.subs.isReadOnly(sub.ID) {
		return nil // put refuses it, naming the config file
	}
	var kept webhook.Subscription
	if !create {
		st, err := h.subs.stored(ctx, sub.ID)
		if err == nil {
			kept = st
		}
	}
	if sub.Secrets == nil {
		sub.Secrets = append(webhook.Secrets{}, kept.Secrets...)
	} else if refers {
		byPublic := map[string]string{}
		for _, sec := range kept.Secrets {
			if pk, err := webhook.PublicKey(sec); err == nil {
				byPublic[pk] = sec
			}
		}
		out := make(webhook.Secrets, len(sub.Secrets))
		for i, sec := range sub.Secrets {
			out[i] = sec
			if !webhook.IsPublicKey(sec) {
				continue
			}
			priv, ok := byPublic[sec]
			if !ok {
				return fmt.Errorf("subscription %q: secret %d: a \"whpk_\" public key cannot sign; here it may only name a private key the subscription already has, and it has none with this public key",
					sub.ID, i+1)
			}
			out[i] = priv
		}
		sub.Secrets = out
	}
	if signing != "" {
		return addSigningKey(sub)
	}
	return nil
}

// addSigningKey adds a new ed25519 private key to sub's secrets.
func addSigningKey(sub *webhook.Subscription) error {
	priv, _, err := webhook.NewSigningKey()
	if err != nil {
		return fmt.Errorf("subscription %q: making an ed25519 key: %v", sub.ID, err)
	}
	sub.Secrets = append(append(webhook.Secrets{}, sub.Secrets...), priv)
	return nil
}

// reservedSubscriptionID is the one id the admin API does not create:
// /v1/subscriptions/check is the check endpoint, so OpenAPI tooling,
// which matches that literal path before /v1/subscriptions/{id}, could
// never reach a subscription of that id. (One in the config file is
// still served.)
const reservedSubscriptionID = "check"

func (h *Handler) createSubscription(w http.ResponseWriter, r *http.Request) {
	if sub, ok := h.readSubscription(w, r); ok {
		if sub.ID == reservedSubscriptionID {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("subscription %q: id: reserved, as /v1/subscriptions/%s is the check endpoint; choose another", sub.ID, sub.ID))
			return
		}
		h.save(w, r, sub, true)
	}
}

func (h *Handler) putSubscription(w http.ResponseWriter, r *http.Request) {
	if sub, ok := h.readSubscription(w, r); ok {
		h.save(w, r, sub, false)
	}
}

func (h *Handler) save(w http.ResponseWriter, r *http.Request, sub webhook.Subscription, create bool) {
	status, err := h.subs.put(r.Context(), sub, create)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	if status == http.StatusCreated {
		w.Header().Set("Location", "/v1/subscriptions/"+url.PathEscape(sub.ID))
	}
	all, err := h.subs.all(r.Context())
	if err == nil {
		for _, v := range all {
			if v.ID == sub.ID {
				writeJSON(w, status, v)
				return
			}
		}
	}
	writeJSON(w, status, viewOf(sub, "api"))
}

func (h *Handler) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	status, err := h.subs.delete(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
