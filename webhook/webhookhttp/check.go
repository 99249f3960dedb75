package webhookhttp

import (
	"net/http"

	"github.com/switchyard-go/switchyard/webhook"
)

// CheckResult is the answer of POST /v1/subscriptions/check for a
// subscription that would be accepted.
type CheckResult struct {
	OK bool `json:"ok"`
}

// checkSubscription answers whether the subscription in the body would be
// accepted by POST or PUT /v1/subscriptions, filter included, without
// storing anything: 200 {"ok": true}, or 400 with the reason (for a
// filter, expr's message with the position).
func (h *Handler) checkSubscription(w http.ResponseWriter, r *http.Request) {
	var in subscriptionInput
	if !readAdminJSON(w, r, &in) {
		return
	}
	if err := h.signingKeys(r.Context(), &in.Subscription, in.Signing, false); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := webhook.Compile(in.Subscription); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, CheckResult{OK: true})
}
