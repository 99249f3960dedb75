// Package docs holds the user documentation of switchyard, and makes one
// of its files available to Go code: the OpenAPI 3.1 description of the
// webhook bridge's HTTP API (openapi.yaml), which webhook/webhookhttp
// serves at GET /openapi.yaml and GET /openapi.json, and which the tests
// of webhookhttp, cmd/webhook-bridge and deploy hold the API to.
//
// The file lives here once; nothing copies it.
package docs

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"gopkg.in/yaml.v3"
)

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI description of the webhook bridge's HTTP
// API as YAML: the bytes of docs/openapi.yaml. The caller must not
// change them.
func OpenAPI() []byte { return openAPI }

// OpenAPIJSON returns the same description as JSON, converted once.
func OpenAPIJSON() ([]byte, error) { return openAPIJSON() }

var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		return nil, fmt.Errorf("docs: openapi.yaml: %w", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("docs: openapi.yaml as JSON: %w", err)
	}
	return b, nil
})
