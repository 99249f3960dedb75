package webhookhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/webhook"
)

// Disabled says why and since when a subscription is disabled at run
// time: by an operator (POST /v1/subscriptions/{id}/disable) or by the
// bridge, after every delivery failed for its DisableAfter.
type Disabled struct {
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
	// By is "operator" or "bridge".
	By string `json:"by"`
}

// DisabledStore keeps which subscriptions are disabled at run time, those
// of the config file included, apart from their definitions. Changes bump
// the store's [SubscriptionStore.Version], so that every replica picks
// them up. [MemoryStore] and [RedisStore] implement it; a Store that does
// not cannot disable or enable at run time (501).
type DisabledStore interface {
	// SetDisabled disables id (d not nil) or enables it (nil), and reports
	// whether that changed anything.
	SetDisabled(ctx context.Context, id string, d *Disabled) (changed bool, err error)
	// DisabledSet returns every subscription disabled at run time.
	DisabledSet(ctx context.Context) (map[string]Disabled, error)
}

// SetDisabled implements [DisabledStore].
func (m *MemoryStore) SetDisabled(_ context.Context, id string, d *Disabled) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, was := m.disabled[id]
	if d == nil {
		if !was {
			return false, nil
		}
		delete(m.disabled, id)
	} else {
		if was {
			return false, nil
		}
		if m.disabled == nil {
			m.disabled = map[string]Disabled{}
		}
		m.disabled[id] = *d
	}
	m.version++
	return true, nil
}

// DisabledSet implements [DisabledStore].
func (m *MemoryStore) DisabledSet(context.Context) (map[string]Disabled, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Disabled, len(m.disabled))
	for k, v := range m.disabled {
		out[k] = v
	}
	return out, nil
}

func (r RedisStore) disabledKey() string { return r.Key + ":disabled" }

// disableScript disables (ARGV[1] = "set", ARGV[3] the JSON) or enables
// ("del") ARGV[2] and bumps the version when that changed anything; it
// returns 1 then, else 0. ARGV[4] starts a lost version, as changeScript.
var disableScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[4]) end
local n
if ARGV[1] == 'set' then n = redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) else n = redis.call('HDEL', KEYS[1], ARGV[2]) end
if n == 1 then redis.call('INCR', KEYS[2]) end
return n
`)

// SetDisabled implements [DisabledStore]: a hash at Key+":disabled", in
// Key's slot, changed with the version in one script.
func (r RedisStore) SetDisabled(ctx context.Context, id string, d *Disabled) (bool, error) {
	op, value := "del", ""
	if d != nil {
		b, err := json.Marshal(d)
		if err != nil {
			return false, err
		}
		op, value = "set", string(b)
	}
	start := time.Now().UnixNano()&(1<<52-1) | 1<<52
	n, err := disableScript.Run(ctx, r.Client, []string{r.disabledKey(), r.versionKey()}, op, id, value, start).Int64()
	return n == 1, err
}

// DisabledSet implements [DisabledStore]. A field that does not decode
// still disables its subscription, with the reason saying so.
func (r RedisStore) DisabledSet(ctx context.Context) (map[string]Disabled, error) {
	all, err := r.Client.HGetAll(ctx, r.disabledKey()).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]Disabled, len(all))
	for id, raw := range all {
		var d Disabled
		if json.Unmarshal([]byte(raw), &d) != nil {
			d = Disabled{Reason: "(the record of why does not decode)", By: "unknown"}
		}
		out[id] = d
	}
	return out, nil
}

// disabledSet returns the store's run-time disabled set, empty when the
// store keeps none.
func (s *subscriptions) disabledSet(ctx context.Context) (map[string]Disabled, error) {
	ds, ok := s.store.(DisabledStore)
	if !ok {
		return nil, nil
	}
	m, err := ds.DisabledSet(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading disabled subscriptions: %w", err)
	}
	return m, nil
}

// Disable disables a subscription for every replica, as the bridge's
// [webhook.Config.Disable] asks: give it this method.
func (h *Handler) Disable(ctx context.Context, id, reason string) (bool, error) {
	return h.setDisabled(ctx, id, &Disabled{Reason: reason, At: time.Now().UTC(), By: "bridge"})
}

func (h *Handler) setDisabled(ctx context.Context, id string, d *Disabled) (bool, error) {
	ds, ok := h.cfg.Store.(DisabledStore)
	if !ok {
		return false, errors.New("the subscription store cannot disable subscriptions at run time")
	}
	changed, err := ds.SetDisabled(ctx, id, d)
	if err != nil {
		return false, err
	}
	return changed, h.subs.sync(ctx)
}

// find returns the view of subscription id, or answers 404.
func (h *Handler) find(w http.ResponseWriter, r *http.Request) (SubscriptionView, bool) {
	all, err := h.subs.all(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return SubscriptionView{}, false
	}
	for _, v := range all {
		if v.ID == r.PathValue("id") {
			return v, true
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no subscription %q", shown(r.PathValue("id"))))
	return SubscriptionView{}, false
}

func (h *Handler) disableSubscription(w http.ResponseWriter, r *http.Request) {
	v, ok := h.find(w, r)
	if !ok {
		return
	}
	var in struct {
		Reason string `json:"reason"`
	}
	// The body, and its reason, are optional.
	if body, status, err := readBody(w, r, adminBodyLimit); err != nil && !errors.Is(err, errEmptyBody) {
		writeError(w, status, err.Error())
		return
	} else if len(body) > 0 {
		if err := strictJSON(body, &in); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("body: %v", err))
			return
		}
	}
	if in.Reason == "" {
		in.Reason = "disabled by an operator"
	}
	if _, err := h.setDisabled(r.Context(), v.ID, &Disabled{Reason: in.Reason, At: time.Now().UTC(), By: "operator"}); err != nil {
		h.storeError(w, err)
		return
	}
	h.cfg.Logger.Info("webhook-bridge: subscription disabled", "subscription", v.ID, "reason", in.Reason)
	h.writeSubscription(w, r, v.ID)
}

func (h *Handler) enableSubscription(w http.ResponseWriter, r *http.Request) {
	v, ok := h.find(w, r)
	if !ok {
		return
	}
	if v.Source == "config" && v.DisabledBy == "" && v.Disabled {
		writeError(w, http.StatusConflict, fmt.Sprintf("subscription %q is disabled in the config file; change it there", v.ID))
		return
	}
	if v.Source == "api" && v.DisabledBy == "" && v.Disabled {
		// Disabled in its definition: enabling it is changing that.
		sub, err := h.subs.stored(r.Context(), v.ID)
		if err == nil {
			sub.Disabled = false
			_, err = h.subs.put(r.Context(), sub, false)
		}
		if err != nil {
			h.storeError(w, err)
			return
		}
	}
	if _, err := h.setDisabled(r.Context(), v.ID, nil); err != nil {
		h.storeError(w, err)
		return
	}
	// A fresh start: the failures that disabled it would disable it again
	// at the next one.
	if err := h.cfg.Bridge.ResetHealth(r.Context(), v.ID); err != nil {
		h.cfg.Logger.Warn("webhook-bridge: resetting the health of an enabled subscription", "subscription", v.ID, "err", err)
	}
	h.cfg.Logger.Info("webhook-bridge: subscription enabled", "subscription", v.ID)
	h.writeSubscription(w, r, v.ID)
}

func (h *Handler) storeError(w http.ResponseWriter, err error) {
	status := http.StatusServiceUnavailable
	if _, ok := h.cfg.Store.(DisabledStore); !ok {
		status = http.StatusNotImplemented
	}
	writeError(w, status, err.Error())
}

// writeSubscription answers with the view of subscription id as it is now.
func (h *Handler) writeSubscription(w http.ResponseWriter, r *http.Request, id string) {
	r.SetPathValue("id", id)
	if v, ok := h.find(w, r); ok {
		writeJSON(w, http.StatusOK, v)
	}
}

// HealthView is a subscription's health as the API shows it.
type HealthView struct {
	webhook.SubscriptionHealth
	// SuccessRatio is of the last hour, -1 without attempts.
	SuccessRatio float64 `json:"success_ratio"`
	P50MS        float64 `json:"p50_ms"`
	P99MS        float64 `json:"p99_ms"`
}

func healthView(h webhook.SubscriptionHealth) HealthView {
	return HealthView{SubscriptionHealth: h, SuccessRatio: h.SuccessRatio(),
		P50MS: float64(h.P50) / float64(time.Millisecond), P99MS: float64(h.P99) / float64(time.Millisecond)}
}

// HealthPage is the answer of GET /v1/health.
type HealthPage struct {
	Subscriptions []HealthView `json:"subscriptions"`
	Next          string       `json:"next"`
}

func (h *Handler) subscriptionHealth(w http.ResponseWriter, r *http.Request) {
	v, ok := h.find(w, r)
	if !ok {
		return
	}
	hs, err := h.cfg.Bridge.Health(r.Context(), v.ID)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if len(hs) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("subscription %q is not in force yet", shown(v.ID)))
		return
	}
	writeJSON(w, http.StatusOK, healthView(hs[0]))
}

// listHealth answers one page of the subscriptions' health, in the order
// and with the paging of GET /v1/subscriptions.
func (h *Handler) listHealth(w http.ResponseWriter, r *http.Request) {
	page, ok := h.subscriptionPage(w, r)
	if !ok {
		return
	}
	ids := make([]string, len(page.Subscriptions))
	for i, v := range page.Subscriptions {
		ids[i] = v.ID
	}
	hs, err := h.cfg.Bridge.Health(r.Context(), ids...)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	out := HealthPage{Subscriptions: make([]HealthView, len(hs)), Next: page.Next}
	for i, s := range hs {
		out.Subscriptions[i] = healthView(s)
	}
	writeJSON(w, http.StatusOK, out)
}

// RecoverRequest is the body of POST /v1/subscriptions/{id}/recover: the
// window, each an RFC 3339 time or a duration before now ("24h"); until
// may be left out (now).
type RecoverRequest struct {
	Since string `json:"since"`
	Until string `json:"until,omitempty"`
}

func (h *Handler) recoverSubscription(w http.ResponseWriter, r *http.Request) {
	if h.attemptLog(w) == nil {
		return
	}
	var in RecoverRequest
	if !readAdminJSON(w, r, &in) {
		return
	}
	now := time.Now()
	since, err := pointInTime(in.Since, now)
	if err == nil && since.IsZero() {
		err = errors.New(`required: the start of the window, e.g. "24h" or "2026-01-02T15:04:05Z"`)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "since: "+err.Error())
		return
	}
	until, err := pointInTime(in.Until, now)
	if err != nil {
		writeError(w, http.StatusBadRequest, "until: "+err.Error())
		return
	}
	if !until.IsZero() && !until.After(since) {
		writeError(w, http.StatusBadRequest, "until: not after since")
		return
	}
	id := r.PathValue("id")
	rep, err := h.cfg.Bridge.Recover(r.Context(), id, since, until)
	switch {
	case errors.Is(err, webhook.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no subscription %q in force", shown(id)))
	case errors.Is(err, webhook.ErrSubscriptionDisabled):
		writeError(w, http.StatusConflict, fmt.Sprintf("subscription %q is disabled: enable it first, or its deliveries are only skipped again", shown(id)))
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		h.cfg.Logger.Info("webhook-bridge: recovery scheduled", "subscription", id, "since", since, "until", until,
			"scheduled", rep.Scheduled, "in_progress", rep.InProgress, "expired", rep.Expired)
		writeJSON(w, http.StatusOK, rep)
	}
}
