package main

import (
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// loaderKeys lists the key paths the loader knows, walking t as checkKeys
// does: the fields of structs by their yaml names, the items of slices
// ("subscriptions[].id"), pointers through; a type that reads itself
// (UnmarshalYAML, UnmarshalText) or a map is one key, whose insides
// checkKeys leaves alone. kinds maps each path to its Go kind.
func loaderKeys(t reflect.Type, path string, kinds map[string]reflect.Kind) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if path != "" {
		kinds[path] = t.Kind()
	}
	if reflect.PointerTo(t).Implements(yamlUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		for name, ft := range yamlFields(t) {
			loaderKeys(ft, join(path, name), kinds)
		}
	case reflect.Slice:
		loaderKeys(t.Elem(), path+"[]", kinds)
	}
}

// schemaNode is the part of a JSON Schema the test reads.
type schemaNode struct {
	Ref                  string                 `json:"$ref"`
	Type                 any                    `json:"type"`
	Properties           map[string]*schemaNode `json:"properties"`
	AdditionalProperties any                    `json:"additionalProperties"`
	Items                *schemaNode            `json:"items"`
	AnyOf                []*schemaNode          `json:"anyOf"`
	Description          string                 `json:"description"`
	Defs                 map[string]*schemaNode `json:"$defs"`
}

// schemaKeys lists the key paths of the schema as loaderKeys does, and
// reports objects with properties that do not refuse other keys and keys
// without a description.
func schemaKeys(t *testing.T, root, n *schemaNode, path string, keys map[string]bool) {
	t.Helper()
	if n.Ref != "" {
		name, ok := strings.CutPrefix(n.Ref, "#/$defs/")
		def := root.Defs[name]
		if !ok || def == nil {
			t.Fatalf("%s: $ref %q names no definition", path, n.Ref)
		}
		n = def
	}
	if n.Properties != nil {
		if n.AdditionalProperties != false {
			t.Errorf("schema: %s has properties but no \"additionalProperties\": false, while the loader refuses unknown keys there", orTop(path))
		}
		for name, p := range n.Properties {
			key := join(path, name)
			keys[key] = true
			if p.Description == "" {
				t.Errorf("schema: %s has no description", key)
			}
			schemaKeys(t, root, p, key, keys)
		}
	}
	if n.Items != nil {
		keys[path+"[]"] = true
		schemaKeys(t, root, n.Items, path+"[]", keys)
	}
}

func orTop(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

// TestSchemaKeys checks that docs/config.schema.json knows every key
// the loader knows, at the same path, and no other.
func TestSchemaKeys(t *testing.T) {
	raw, err := os.ReadFile("../../docs/config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var root schemaNode
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&root); err != nil {
		t.Fatalf("docs/config.schema.json: %v", err)
	}
	kinds := map[string]reflect.Kind{}
	loaderKeys(reflect.TypeFor[Config](), "", kinds)
	keys := map[string]bool{}
	schemaKeys(t, &root, &root, "", keys)
	if len(kinds) < 60 {
		t.Fatalf("the walk of Config found %d keys; it misses some", len(kinds))
	}
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		if !keys[k] {
			t.Errorf("the loader knows %s, the schema does not", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if _, ok := kinds[k]; !ok {
			t.Errorf("the schema has %s, which the loader refuses", k)
		}
	}
}
