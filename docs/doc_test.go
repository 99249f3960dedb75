package docs_test

import (
	"encoding/json"
	"testing"

	"github.com/switchyard-go/switchyard/docs"
)

// The JSON form is the YAML's content: a client that reads either gets
// the same description.
func TestOpenAPIJSON(t *testing.T) {
	b, err := docs.OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if _, ok := doc.Paths["/v1/events"]["post"]; !ok {
		t.Errorf("paths lack POST /v1/events: %v", doc.Paths)
	}
}
