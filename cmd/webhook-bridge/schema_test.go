package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/webhook"
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
	Default              any                    `json:"default"`
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

// schemaDefaults maps the top-level and section keys of the schema to
// their defaults, where they give one.
func schemaDefaults(root *schemaNode) map[string]any {
	out := map[string]any{}
	for name, p := range root.Properties {
		if p.Default != nil {
			out[name] = p.Default
		}
		for sub, q := range p.Properties {
			if q.Default != nil {
				out[name+"."+sub] = q.Default
			}
		}
	}
	return out
}

// loaderValue is the field of v at a dotted yaml path.
func loaderValue(v reflect.Value, path string) (reflect.Value, bool) {
	for key := range strings.SplitSeq(path, ".") {
		for v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		found := false
		for i := range v.NumField() {
			if name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); name == key {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return v, false
		}
	}
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	return v, true
}

// TestSchemaDefaults checks the schema's defaults against an empty config
// completed by the loader, where the loader fills the key in itself (some
// defaults are the library's, applied later: those the schema gives as
// the loader leaves the key zero are skipped).
func TestSchemaDefaults(t *testing.T) {
	raw, err := os.ReadFile("../../docs/config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var root schemaNode
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, key := range slices.Sorted(maps.Keys(schemaDefaults(&root))) {
		def := schemaDefaults(&root)[key]
		v, ok := loaderValue(reflect.ValueOf(cfg).Elem(), key)
		if !ok {
			t.Errorf("schema default of %s: the loader has no such key", key)
			continue
		}
		if v.IsZero() {
			continue
		}
		var want any
		switch {
		case v.Type() == reflect.TypeFor[webhook.Duration]():
			d, err := time.ParseDuration(fmt.Sprint(def))
			if err != nil {
				t.Errorf("schema default of %s: %v", key, err)
				continue
			}
			want = webhook.Duration(d)
		case v.Kind() == reflect.String:
			want = fmt.Sprint(def)
		case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
			f, _ := def.(float64)
			want = reflect.ValueOf(int64(f)).Convert(v.Type()).Interface()
		default:
			want = def
		}
		if got := v.Interface(); !reflect.DeepEqual(got, want) {
			if d, ok := got.(webhook.Duration); ok {
				got = time.Duration(d)
			}
			t.Errorf("%s: the schema's default is %v, the loader's %v", key, def, got)
		}
		checked++
	}
	if checked < 10 {
		t.Errorf("only %d defaults compared", checked)
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
