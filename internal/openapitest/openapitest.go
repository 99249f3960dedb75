// Package openapitest holds the webhook bridge's routes to its OpenAPI
// description (docs/openapi.yaml) in tests: which operations it
// describes, and whether the patterns a server mounted are exactly
// those, with the same path parameters. It reads the description with
// gopkg.in/yaml.v3 alone, so the root module's tests can use it; the
// validation of requests and responses against the schemas lives in the
// deploy module, with its heavier tooling.
package openapitest

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/switchyard-go/switchyard/docs"
)

// Operation is one operation of the description.
type Operation struct {
	// Method is upper case: GET, POST…
	Method string
	// Path is the path template as the description spells it.
	Path string
	// ID is its operationId.
	ID string
	// PathParams are the names of its path parameters, path-level and
	// operation-level, sorted, each with whether it is required.
	PathParams map[string]bool
}

// Key is "METHOD /path", the form of a net/http pattern.
func (o Operation) Key() string { return o.Method + " " + o.Path }

type document struct {
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		Parameters map[string]parameter `yaml:"parameters"`
	} `yaml:"components"`
}

type parameter struct {
	Ref      string `yaml:"$ref"`
	Name     string `yaml:"name"`
	In       string `yaml:"in"`
	Required bool   `yaml:"required"`
}

type operation struct {
	OperationID string      `yaml:"operationId"`
	Parameters  []parameter `yaml:"parameters"`
}

var methods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true, "head": true, "patch": true, "trace": true}

// Operations returns every operation of docs/openapi.yaml, by path and
// method.
func Operations() ([]Operation, error) { return parse(docs.OpenAPI()) }

func parse(b []byte) ([]Operation, error) {
	var doc document
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("openapitest: the description does not parse: %w", err)
	}
	resolve := func(p parameter) (parameter, error) {
		if p.Ref == "" {
			return p, nil
		}
		name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/")
		q, found := doc.Components.Parameters[name]
		if !ok || !found {
			return p, fmt.Errorf("openapitest: parameter $ref %q resolves to nothing", p.Ref)
		}
		return q, nil
	}
	var out []Operation
	for path, item := range doc.Paths {
		var shared []parameter
		if n, ok := item["parameters"]; ok {
			if err := n.Decode(&shared); err != nil {
				return nil, fmt.Errorf("openapitest: %s: parameters: %w", path, err)
			}
		}
		for m, n := range item {
			if !methods[m] {
				continue
			}
			var op operation
			if err := n.Decode(&op); err != nil {
				return nil, fmt.Errorf("openapitest: %s %s: %w", m, path, err)
			}
			o := Operation{Method: strings.ToUpper(m), Path: path, ID: op.OperationID, PathParams: map[string]bool{}}
			for _, p := range append(append([]parameter(nil), shared...), op.Parameters...) {
				p, err := resolve(p)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", o.Key(), err)
				}
				if p.In == "path" {
					o.PathParams[p.Name] = p.Required
				}
			}
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, nil
}

var wildcard = regexp.MustCompile(`\{([^}]*)\}`)

// wildcards returns the names of a path template's or a net/http
// pattern's wildcards ("id" of "{id}" and of "{id...}"; "{$}" is none).
func wildcards(path string) []string {
	var out []string
	for _, m := range wildcard.FindAllStringSubmatch(path, -1) {
		name := strings.TrimSuffix(m[1], "...")
		if name != "$" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// shape returns path with every wildcard's name dropped: "/a/{}/b".
func shape(path string) string { return wildcard.ReplaceAllString(path, "{}") }

// Compare holds the patterns a server mounted to the operations: it
// returns what is wrong with the description's own path parameters, the
// patterns it does not describe (a pattern without a method, which takes
// every method, is described when its path has a GET operation), and the
// operations no pattern mounts, as "METHOD /path".
func Compare(ops []Operation, patterns []string) (problems, undescribed, unmounted []string) {
	byKey := map[string]Operation{}
	byPath := map[string][]string{}
	for _, o := range ops {
		byKey[o.Key()] = o
		byPath[o.Path] = append(byPath[o.Path], o.Method)
		var names []string
		for n, required := range o.PathParams {
			names = append(names, n)
			if !required {
				problems = append(problems, fmt.Sprintf("%s: path parameter %q is not required: true", o.Key(), n))
			}
		}
		sort.Strings(names)
		if want := wildcards(o.Path); !slices.Equal(names, want) {
			problems = append(problems, fmt.Sprintf("%s: path parameters %v, but the path template has %v", o.Key(), names, want))
		}
		if o.ID == "" {
			problems = append(problems, o.Key()+": no operationId")
		}
	}
	mounted := map[string]bool{}
	for _, p := range patterns {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			method, path = "", p
		}
		if strings.Contains(path, "{$}") || !strings.HasPrefix(path, "/") {
			problems = append(problems, fmt.Sprintf("pattern %q: a host or {$} the comparison cannot map to a path template", p))
			continue
		}
		if method == "" {
			if _, ok := byKey[http.MethodGet+" "+path]; !ok {
				undescribed = append(undescribed, p)
			}
			for _, m := range byPath[path] {
				mounted[m+" "+path] = true
			}
			continue
		}
		o, ok := byKey[method+" "+path]
		if !ok {
			undescribed = append(undescribed, p)
			for _, other := range ops {
				if other.Method == method && shape(other.Path) == shape(path) {
					problems = append(problems, fmt.Sprintf("pattern %q: the description has the path as %q: its wildcards are named differently", p, other.Path))
				}
			}
			continue
		}
		mounted[o.Key()] = true
	}
	for _, o := range ops {
		if !mounted[o.Key()] {
			unmounted = append(unmounted, o.Key())
		}
	}
	sort.Strings(undescribed)
	return problems, undescribed, unmounted
}
