package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/bridgetest"
	"github.com/switchyard-go/switchyard/internal/nodetest"
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
// the pinned npm packages there.
func installNode(dir string) error {
	if err := nodetest.Install("node", dir, []string{"package.json", "receiver.mjs"}, 18, 3*time.Minute); err != nil {
		return err
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
