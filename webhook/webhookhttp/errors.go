package webhookhttp

import (
	"encoding/json"
	"net/http"
)

// Problem is the body of every error answer.
type Problem struct {
	// Error says what was wrong, in one line.
	Error string `json:"error"`
	// Status repeats the HTTP status.
	Status int `json:"status"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, Problem{Error: msg, Status: status})
}

// shown cuts s for an error message, quoting what it keeps.
func shown(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}
