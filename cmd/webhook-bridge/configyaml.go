package main

// The config file's YAML, checked node by node before it is decoded:
// unknown keys and values of the wrong type named by their path, alias
// cycles and merge keys, and ${NAME} replaced from the environment.

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/switchyard-go/switchyard/webhook"
)

// yamlError puts the YAML library's errors, one per line, on one line.
func yamlError(err error) error {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) {
		msg = strings.Join(te.Errors, "; ")
	}
	// Values quoted in the message may hold line breaks of their own.
	return fmt.Errorf("config: %s", strings.ReplaceAll(msg, "\n", `\n`))
}

var (
	yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkKeys refuses any mapping key that no field of t names, with its
// path ("subscriptions[1].filtr").
func checkKeys(n *yaml.Node, t reflect.Type, path string, merged map[mergeCheck]bool) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(yamlUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return nil
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		// yaml.v3 would cut 2.5 down to 2 without a word.
		if f, err := strconv.ParseFloat(n.Value, 64); n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" && err == nil && f != math.Trunc(f) {
			return fmt.Errorf("config: %s %s (line %d): want a whole number", path, n.Value, n.Line)
		}
		// and refuse one too large for the key with only a line number.
		if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
			if _, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, t.Bits()); err != nil {
				if f, ferr := strconv.ParseFloat(n.Value, 64); ferr != nil || f != math.Trunc(f) || math.Abs(f) >= math.Ldexp(1, t.Bits()-1) {
					return fmt.Errorf("config: %s %s (line %d): want a whole number that fits %d bits", path, n.Value, n.Line, t.Bits())
				}
			}
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // a type error, which checkTypes reports
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i].Value, n.Content[i+1]
			if isMerge(n.Content[i]) {
				// << merges the keys of a mapping (or of a list of them) here.
				for _, m := range mergedMappings(val) {
					if merged[mergeCheck{m, t}] {
						continue // checked already: a merge named by many aliases is walked once
					}
					merged[mergeCheck{m, t}] = true
					if err := checkKeys(m, t, path, merged); err != nil {
						return err
					}
				}
				continue
			}
			ft, ok := fields[key]
			if !ok {
				return fmt.Errorf("config: unknown key %s (line %d)", join(path, key), n.Content[i].Line)
			}
			if err := checkKeys(val, ft, join(path, key), merged); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, item := range n.Content {
			if err := checkKeys(item, t.Elem(), path+"["+strconv.Itoa(i)+"]", merged); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkAliasCycles refuses an alias inside the node it names
// ("a: &x [*x]"), which the checks below would follow forever. state
// marks the nodes being walked (1) and those done (2), so that each node
// is walked once however many aliases name it.
func checkAliasCycles(n *yaml.Node, state map[*yaml.Node]int) error {
	switch state[n] {
	case 1:
		return fmt.Errorf("config: line %d: an alias names a node that holds it", n.Line)
	case 2:
		return nil
	}
	state[n] = 1
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		if err := checkAliasCycles(n.Alias, state); err != nil {
			return err
		}
	}
	for _, c := range n.Content {
		if err := checkAliasCycles(c, state); err != nil {
			return err
		}
	}
	state[n] = 2
	return nil
}

// mergeCheck is a merged mapping checked as a type: the checks walk each
// once, so that merges of merges cannot make them walk exponentially.
type mergeCheck struct {
	n *yaml.Node
	t reflect.Type
}

// isMerge reports whether key is YAML's merge key, <<.
func isMerge(key *yaml.Node) bool {
	return key.Kind == yaml.ScalarNode && key.Value == "<<" && (key.Tag == "!!merge" || key.ShortTag() == "!!merge")
}

// mergedMappings are the mappings a merge key's value names: one
// mapping, or a list of them, each possibly an alias.
func mergedMappings(n *yaml.Node) []*yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.SequenceNode {
		return []*yaml.Node{n}
	}
	var ms []*yaml.Node
	for _, item := range n.Content {
		ms = append(ms, mergedMappings(item)...)
	}
	return ms
}

// yamlFields maps the YAML keys of struct type t to their fields' types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	return fields
}

var yamlLinePrefix = regexp.MustCompile(`^line \d+: `)

// checkTypes decodes every value that is not a mapping into a struct or
// a list into a slice on its own, into its field's type, so that a value
// of the wrong type is refused with its key's path: the YAML library
// names only a line. It runs after expandEnv, whose replacements are in
// expanded.
func checkTypes(n *yaml.Node, t reflect.Type, path string, expanded map[*yaml.Node]bool, merged map[mergeCheck]bool) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// A value reached through an alias was written under another key,
	// perhaps a secret one: it is checked here, and not shown.
	aliased, line := false, n.Line
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n, aliased = n.Alias, true
	}
	custom := reflect.PointerTo(t).Implements(yamlUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)
	switch {
	case !custom && t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if isMerge(n.Content[i]) {
				for _, m := range mergedMappings(n.Content[i+1]) {
					if merged[mergeCheck{m, t}] {
						continue
					}
					merged[mergeCheck{m, t}] = true
					if err := checkTypes(m, t, path, expanded, merged); err != nil {
						return err
					}
				}
				continue
			}
			ft, ok := fields[key]
			if !ok {
				continue // refused by checkKeys
			}
			if err := checkTypes(n.Content[i+1], ft, join(path, key), expanded, merged); err != nil {
				return err
			}
		}
		return nil
	case !custom && t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			if err := checkTypes(item, t.Elem(), path+"["+strconv.Itoa(i)+"]", expanded, merged); err != nil {
				return err
			}
		}
		return nil
	}
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return nil
	}
	msg := strings.TrimPrefix(yamlError(err).Error(), "config: ")
	msg = yamlLinePrefix.ReplaceAllString(msg, "")
	switch {
	case aliased:
		msg = "the value of the alias *" + n.Anchor + " is not " + typeWord(t) + " (not shown: it may be a secret)"
	case holdsText(t):
		// A text key refused for a tag: its value may be a secret.
		msg = "want " + typeWord(t) + " without a tag such as !!int (the value is not shown: it may be a secret)"
	}
	if expanded[n] {
		// Not the value: the variable may hold a secret.
		msg = "the text ${NAME} gave is not " + typeWord(t)
		switch t.Kind() {
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Float32, reflect.Float64:
			if t != reflect.TypeFor[webhook.Duration]() {
				msg += " (${NAME} is replaced in strings and durations only: write numbers and booleans as they are)"
			}
		}
	}
	where := path
	if where == "" {
		where = "the document"
	}
	return fmt.Errorf("config: %s (line %d): %s", where, line, msg)
}

// holdsText reports whether t is text, or a list or map of text: the
// kinds of key that hold passwords, tokens, secrets and header values.
func holdsText(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String:
		return true
	case reflect.Slice, reflect.Map, reflect.Pointer:
		return holdsText(t.Elem())
	}
	return false
}

// typeWord names what a value of type t is written as.
func typeWord(t reflect.Type) string {
	if t == reflect.TypeFor[webhook.Duration]() {
		return "a Go duration such as 5s or 2h"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "text"
	case reflect.Map:
		return "a mapping of text"
	case reflect.Slice:
		return "a list of text"
	}
	return "a " + t.String()
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// expandEnv replaces ${NAME} in string values with the environment
// variable, and ${NAME:-default} with default when NAME is unset or
// empty, except in filters and partition_key (expressions are not
// templates).
func expandEnv(n *yaml.Node, path string, expanded map[*yaml.Node]bool) error {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if key == "filter" || key == "partition_key" {
				continue
			}
			if err := expandEnv(n.Content[i+1], join(path, key), expanded); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			if err := expandEnv(item, path+"["+strconv.Itoa(i)+"]", expanded); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		var missing []string
		if envRef.MatchString(n.Value) {
			expanded[n] = true
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			m := envRef.FindStringSubmatch(ref)
			name, def := m[1], m[2]
			v, ok := os.LookupEnv(name)
			if def != "" {
				if v == "" {
					v = def[len(":-"):]
				}
				return v
			}
			if !ok {
				missing = append(missing, name)
			}
			return v
		})
		if len(missing) > 0 {
			return fmt.Errorf("config: %s: environment variable %s is not set", path, strings.Join(missing, ", "))
		}
	}
	return nil
}
