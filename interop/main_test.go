package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/bridgetest"
	"github.com/switchyard-go/switchyard/internal/redistest"
)

// What TestMain sets up once for every test: the bridge binary built from
// this checkout, a redis-server, and a directory holding the Node
// receiver with its npm packages installed.
var (
	bridgeBinary string
	redisServer  *redistest.Server
	nodeDir      string
)

// wait bounds every wait for a delivery or a process.
const wait = 20 * time.Second

func TestMain(m *testing.M) {
	os.Exit(setUp(m))
}

func setUp(m *testing.M) int {
	dir, err := os.MkdirTemp("", "switchyard-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	bridgeBinary = filepath.Join(dir, "webhook-bridge")
	if err := bridgetest.Build("..", bridgeBinary); err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}

	nodeDir = filepath.Join(dir, "node")
	if err := installNode(nodeDir); err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}

	redisDir := filepath.Join(dir, "redis")
	if err := os.Mkdir(redisDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	redisServer, err = redistest.Start(redisDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	defer redisServer.Kill()
	return m.Run()
}

// installNode copies the receiver and its package.json to dir and installs
// the pinned npm packages there. Missing node or npm is an error, never a
// reason to skip: CI must run these tests.
func installNode(dir string) error {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: the interop tests need Node.js and npm (scripts/test installs them: apt-get install nodejs npm): %w", tool, err)
		}
	}
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return fmt.Errorf("node --version: %w", err)
	}
	version := strings.TrimSpace(string(out))
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(version, "v"), ".", 2)[0])
	if major < 18 {
		return fmt.Errorf("node %s: the interop receiver needs Node.js 18 or later", version)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"package.json", "receiver.mjs"} {
		b, err := os.ReadFile(filepath.Join("node", name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	npm := exec.CommandContext(ctx, "npm", "install", "--prefix", dir,
		"--no-audit", "--no-fund", "--no-package-lock", "--ignore-scripts", "--loglevel=error")
	npm.Dir = dir
	npm.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := npm.CombinedOutput(); err != nil {
		return fmt.Errorf("npm install of node/package.json's packages: %v\n%s", err, out)
	}
	for _, pkg := range []string{"standardwebhooks", "svix"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			return fmt.Errorf("npm install left no %s: %w", pkg, err)
		}
	}
	return nil
}

// startBridge writes config, with LISTEN replaced by a free loopback
// address, and runs the bridge on it until it says it listens. The
// process is killed when the test ends; its log is shown if the test
// failed.
func startBridge(t *testing.T, config string) *bridgetest.Process {
	t.Helper()
	addr := bridgetest.FreeAddr(t)
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(config, "LISTEN", addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	return bridgetest.Start(t, bridgeBinary, path, addr, nil, wait)
}
