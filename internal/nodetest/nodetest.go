// Package nodetest installs the pinned npm packages a test runs under
// Node.js, for the modules beside this one (interop, deploy): the test's
// files are copied into a temporary directory and npm installs there, so
// nothing under node_modules is ever written into the repository.
package nodetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Install copies files (package.json among them) from the directory src
// into dir and runs npm install there, within timeout. Node.js older than
// minMajor, or node or npm missing, is an error naming what to install,
// never a reason to skip: CI must run these tests.
func Install(src, dir string, files []string, minMajor int, timeout time.Duration) error {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: these tests need Node.js and npm (scripts/test installs them: apt-get install nodejs npm): %w", tool, err)
		}
	}
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return fmt.Errorf("node --version: %w", err)
	}
	version := strings.TrimSpace(string(out))
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(version, "v"), ".", 2)[0])
	if major < minMajor {
		return fmt.Errorf("node %s: these tests need Node.js %d or later", version, minMajor)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	npm := exec.CommandContext(ctx, "npm", "install", "--prefix", dir,
		"--no-audit", "--no-fund", "--no-package-lock", "--ignore-scripts", "--loglevel=error")
	npm.Dir = dir
	npm.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := npm.CombinedOutput(); err != nil {
		return fmt.Errorf("npm install of %s's packages: %v\n%s", filepath.Join(src, "package.json"), err, out)
	}
	return nil
}
