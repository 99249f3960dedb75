// Package scripts_test checks the behaviour of the repository's scripts.
package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// scripts/test says, with the time, what it is about to do, and still
// stops at the first step that fails. Here go is a stub that fails on
// vet, so nothing after vet may run.
func TestScriptSaysEachStepAndStopsAtAFailure(t *testing.T) {
	stubs := t.TempDir()
	ran := filepath.Join(t.TempDir(), "ran")
	for name, body := range map[string]string{
		"go":           `echo "go $*" >> "` + ran + `"; [ "$1" != vet ]`,
		"gofmt":        `exit 0`,
		"redis-server": `echo "Redis server v=0.0.0 (stub)"`,
		"redis-cli":    `exit 0`,
		"initdb":       `exit 0`,
	} {
		if err := os.WriteFile(filepath.Join(stubs, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", "test")
	cmd.Env = append(os.Environ(), "PATH="+stubs+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("scripts/test succeeded although go vet failed:\n%s", out)
	}
	var steps []string
	line := regexp.MustCompile(`^[0-9]{2}:[0-9]{2}:[0-9]{2} scripts/test: (.+)$`)
	for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if m := line.FindStringSubmatch(l); m != nil {
			steps = append(steps, m[1])
		}
	}
	if got, want := strings.Join(steps, "|"), "gofmt|go vet"; got != want {
		t.Errorf("steps announced: %q, want %q; output:\n%s", got, want, out)
	}
	calls, _ := os.ReadFile(ran)
	if got := strings.TrimSpace(string(calls)); got != "go vet ./..." {
		t.Errorf("go was run as:\n%s\nwant only go vet ./...", got)
	}
}
