package webhookhttp

import (
	"net/http"

	"github.com/switchyard-go/switchyard/docs"
)

// serveOpenAPIYAML answers the API's OpenAPI 3.1 description,
// docs/openapi.yaml, as it is.
func serveOpenAPIYAML(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(docs.OpenAPI())
}

// serveOpenAPIJSON answers the same description as JSON.
func serveOpenAPIJSON(w http.ResponseWriter, _ *http.Request) {
	b, err := docs.OpenAPIJSON()
	if err != nil { // docs' own test keeps it from happening
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// Patterns returns the net/http patterns h has mounted, its own and those
// added with [Handler.Handle], in the order they were mounted.
func (h *Handler) Patterns() []string { return append([]string(nil), h.patterns...) }
