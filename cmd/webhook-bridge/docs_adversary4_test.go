package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// docSlug is GitHub's anchor for a heading: lower case, punctuation other
// than '-' and '_' dropped, spaces as '-'.
func docSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Every link within docs/webhook-bridge.md leads to a heading of it.
func TestBridgeDocLinksWithinItResolve(t *testing.T) {
	doc, err := os.ReadFile("../../docs/webhook-bridge.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	inCode := false
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if !inCode && strings.HasPrefix(line, "#") {
			anchors[docSlug(strings.TrimLeft(line, "#"))] = true
		}
	}
	for _, m := range regexp.MustCompile(`\]\(#([^)]+)\)`).FindAllStringSubmatch(string(doc), -1) {
		if !anchors[m[1]] {
			t.Errorf("link to #%s: no such heading", m[1])
		}
	}
}

// What the bridge does must be in its doc: topic prefix patterns
// ("order.*") in the subscription table, and the fan-out log's Redis keys
// ({stream}:webhook:fanout:…) beside every other key the bridge writes.
func TestBridgeDocDescribesPrefixTopicsAndTheFanoutLog(t *testing.T) {
	doc, err := os.ReadFile("../../docs/webhook-bridge.md")
	if err != nil {
		t.Fatal(err)
	}
	var topicRow string
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "| `topic` |") {
			topicRow = line
		}
	}
	if !strings.Contains(topicRow, ".*") {
		t.Errorf("the subscription table's topic row does not mention prefix patterns such as order.*: %q", topicRow)
	}
	if !strings.Contains(string(doc), "webhook:fanout") {
		t.Errorf("the fan-out log ({stream}:webhook:fanout:<hash>, a set per event, 24h) is nowhere in the doc, nor what a crash mid-fan-out repeats")
	}
}
