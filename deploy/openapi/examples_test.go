package openapi

import (
	"encoding/json"
	"fmt"
	"testing"

	yaml "github.com/pb33f/go-yaml"
	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"

	"github.com/switchyard-go/switchyard/docs"
)

// Every JSON example of docs/openapi.yaml, of a request body or a
// response, is valid against its schema: an example a newcomer copies
// works.
func TestExamplesMatchSchemas(t *testing.T) {
	doc, err := libopenapi.NewDocument(docs.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	sv := schema_validation.NewSchemaValidator(config.WithFormatAssertions())
	checked := 0
	check := func(where string, content *orderedmap.Map[string, *v3.MediaType]) {
		if content == nil {
			return // no body: 204, 301
		}
		mt, ok := content.Get("application/json")
		if !ok || mt.Schema == nil {
			return
		}
		schema := mt.Schema.Schema()
		examples := map[string]*yaml.Node{}
		if mt.Example != nil {
			examples["example"] = mt.Example
		}
		for name, ex := range mt.Examples.FromOldest() {
			examples["examples."+name] = ex.Value
		}
		for name, node := range examples {
			var v any
			if err := node.Decode(&v); err != nil {
				t.Errorf("%s %s: does not decode: %v", where, name, err)
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				t.Errorf("%s %s: not JSON: %v", where, name, err)
				continue
			}
			checked++
			if ok, errs := sv.ValidateSchemaBytes(schema, b); !ok {
				for _, e := range errs {
					t.Errorf("%s %s %s: %s", where, name, b, e.Error())
				}
			}
		}
	}
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			where := fmt.Sprintf("%s %s", method, path)
			if op.RequestBody != nil {
				check(where+" request", op.RequestBody.Content)
			}
			for code, resp := range op.Responses.Codes.FromOldest() {
				check(where+" "+code, resp.Content)
			}
		}
	}
	for name, resp := range model.Model.Components.Responses.FromOldest() {
		check("components.responses."+name, resp.Content)
	}
	if checked < 10 {
		t.Errorf("%d examples checked; the description has more", checked)
	}
}
