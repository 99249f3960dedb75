package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// server is the bridge's HTTP surface.
type server struct {
	cfg     *Config
	be      *backend
	bridge  *webhook.Bridge
	subs    *subscriptions
	log     *slog.Logger
	metrics *metrics
}

func (s *server) routes(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events", s.postEvents)
	mux.HandleFunc("GET /v1/subscriptions", s.admin(s.listSubscriptions))
	mux.HandleFunc("POST /v1/subscriptions", s.admin(s.createSubscription))
	mux.HandleFunc("GET /v1/subscriptions/{id}", s.admin(s.getSubscription))
	mux.HandleFunc("PUT /v1/subscriptions/{id}", s.admin(s.putSubscription))
	mux.HandleFunc("DELETE /v1/subscriptions/{id}", s.admin(s.deleteSubscription))
	mux.HandleFunc("GET /v1/dlq", s.admin(s.listDeadLetters))
	mux.HandleFunc("POST /v1/dlq/replay", s.admin(s.replayDeadLetters))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if s.cfg.Demo.Enabled {
		mux.HandleFunc("POST /demo/receiver", s.demoReceiver)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// incoming is one event in a POST /v1/events body.
type incoming struct {
	Name          string          `json:"name"`
	Payload       json.RawMessage `json:"payload"`
	ID            string          `json:"id,omitempty"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	DryRun        bool            `json:"dry_run,omitempty"`
}

func (s *server) postEvents(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Auth.JWTSecret != "" {
		if err := checkJWT(r, s.cfg.Auth.JWTSecret); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="webhook-bridge"`)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", s.cfg.MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	evs, status, err := s.parseEvents(r.Context(), body)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	if err := s.be.pub.Emit(r.Context(), evs...); err != nil {
		s.log.Error("webhook-bridge: publishing posted events", "err", err, "count", len(evs))
		writeError(w, http.StatusServiceUnavailable, "events not published: "+err.Error())
		return
	}
	s.metrics.received.Add(float64(len(evs)))
	ids := make([]pubsub.ID, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"ids": ids})
}

// parseEvents reads one event object or an array of them.
func (s *server) parseEvents(ctx context.Context, body []byte) ([]pubsub.Event, int, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var in []incoming
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := strictJSON(body, &in); err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("body: %v", err)
		}
	} else {
		var one incoming
		if err := strictJSON(body, &one); err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("body: %v", err)
		}
		in = []incoming{one}
	}
	switch {
	case len(in) == 0:
		return nil, http.StatusBadRequest, errors.New("body: no events")
	case len(in) > s.cfg.MaxBatch:
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body: %d events, at most %d per request", len(in), s.cfg.MaxBatch)
	}
	evs := make([]pubsub.Event, len(in))
	for i, e := range in {
		where := ""
		if len(in) > 1 {
			where = fmt.Sprintf("event %d: ", i)
		}
		if e.Name == "" {
			return nil, http.StatusBadRequest, fmt.Errorf("%sname is required", where)
		}
		if e.Name == string(webhook.RetryEventName) {
			return nil, http.StatusBadRequest, fmt.Errorf("%sname %q is reserved", where, e.Name)
		}
		ectx := ctx
		if e.CorrelationID != "" {
			ectx = pubsub.WithCorrelationID(ectx, e.CorrelationID)
		}
		ev := pubsub.NewEvent(pubsub.WithDryRun(ectx, e.DryRun), pubsub.Name(e.Name), []byte(e.Payload))
		if e.ID != "" {
			ev.ID = pubsub.ID(e.ID)
		}
		evs[i] = ev
	}
	return evs, 0, nil
}

// strictJSON decodes one JSON value, refusing unknown fields and trailing
// data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	if s.be.client != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.be.client.Ping(ctx).Err(); err != nil {
			writeError(w, http.StatusServiceUnavailable, "redis unreachable: "+err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// admin guards the admin API with the admin token; without one
// configured, the admin API is off.
func (s *server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Auth.AdminToken == "" {
			writeError(w, http.StatusForbidden, "admin API disabled: set auth.admin_token")
			return
		}
		if !checkAdmin(r, s.cfg.Auth.AdminToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="webhook-bridge admin"`)
			writeError(w, http.StatusUnauthorized, "admin token required")
			return
		}
		h(w, r)
	}
}

// view is a subscription as the admin API shows it.
type view struct {
	webhook.Subscription
	Source string `json:"source"` // "config" or "api"
}

func (s *server) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	all, err := s.subs.all(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": all})
}

func (s *server) getSubscription(w http.ResponseWriter, r *http.Request) {
	all, err := s.subs.all(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	for _, v := range all {
		if v.ID == r.PathValue("id") {
			writeJSON(w, http.StatusOK, v)
			return
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no subscription %q", r.PathValue("id")))
}

func (s *server) readSubscription(w http.ResponseWriter, r *http.Request) (webhook.Subscription, bool) {
	var sub webhook.Subscription
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 256<<10))
	if err == nil {
		err = strictJSON(body, &sub)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return sub, false
	}
	if id := r.PathValue("id"); id != "" {
		if sub.ID != "" && sub.ID != id {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("body id %q differs from the path's %q", sub.ID, id))
			return sub, false
		}
		sub.ID = id
	}
	if err := webhook.Compile(sub); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return sub, false
	}
	// A literal address the target policy refuses is refused now; names
	// are checked when they resolve, at every delivery.
	if u, err := url.Parse(sub.URL); err == nil {
		if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
			policy, _ := s.cfg.targetPolicy()
			if err := policy.Permits(ip); err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("subscription %q: url: %v", sub.ID, err))
				return sub, false
			}
		}
	}
	return sub, true
}

func (s *server) createSubscription(w http.ResponseWriter, r *http.Request) {
	sub, ok := s.readSubscription(w, r)
	if !ok {
		return
	}
	s.save(w, r, sub, true)
}

func (s *server) putSubscription(w http.ResponseWriter, r *http.Request) {
	sub, ok := s.readSubscription(w, r)
	if !ok {
		return
	}
	s.save(w, r, sub, false)
}

func (s *server) save(w http.ResponseWriter, r *http.Request, sub webhook.Subscription, create bool) {
	status, err := s.subs.put(r.Context(), sub, create)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	writeJSON(w, status, view{Subscription: sub, Source: "api"})
}

func (s *server) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	status, err := s.subs.delete(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Pages of GET /v1/dlq.
const (
	dlqDefaultLimit = 100
	dlqMaxLimit     = 1000
)

// listDeadLetters answers one page of dead letters, oldest first, and the
// cursor of the next ("" after the last page).
func (s *server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := dlqDefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > dlqMaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want an integer from 1 to %d", v, dlqMaxLimit))
			return
		}
		limit = n
	}
	after := q.Get("after")
	page, next, err := s.bridge.DeadLetters().List(r.Context(), after, limit)
	if errors.Is(err, webhook.ErrInvalidCursor) {
		shown := after
		if len(shown) > 80 {
			shown = shown[:80] + "..."
		}
		writeError(w, http.StatusBadRequest, fmt.Sprintf("after %q: not a cursor of this dead-letter store: pass the next of an earlier page, or a dead letter's id", shown))
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if page == nil {
		page = []webhook.DeadLetter{}
	}
	writeJSON(w, http.StatusOK, dlqPage{DeadLetters: page, Next: next})
}

// dlqPage is the answer of GET /v1/dlq.
type dlqPage struct {
	DeadLetters []webhook.DeadLetter `json:"dead_letters"`
	Next        string               `json:"next"`
}

func (s *server) replayDeadLetters(w http.ResponseWriter, r *http.Request) {
	subID, evID := r.URL.Query().Get("subscription"), r.URL.Query().Get("event")
	n, err := s.bridge.Replay(r.Context(), replayMatch(subID, evID))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

func replayMatch(subID, evID string) func(webhook.DeadLetter) bool {
	return func(dl webhook.DeadLetter) bool {
		return (subID == "" || dl.SubscriptionID == subID) && (evID == "" || string(dl.Event.ID) == evID)
	}
}
