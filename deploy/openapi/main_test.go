package openapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/bridgetest"
	"github.com/switchyard-go/switchyard/internal/nodetest"
	"github.com/switchyard-go/switchyard/internal/redistest"
)

// What TestMain sets up once: the bridge binary built from this checkout,
// a redis-server, and (in the background) the npm packages of the client
// test.
var (
	bridgeBinary string
	redisServer  *redistest.Server
	nodeDir      string
	nodeReady    = make(chan struct{})
	nodeErr      error
)

// wait bounds every wait for a delivery or a process.
const wait = 30 * time.Second

func TestMain(m *testing.M) { os.Exit(setUp(m)) }

func setUp(m *testing.M) int {
	dir, err := os.MkdirTemp("", "switchyard-openapi-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapi:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	nodeDir = filepath.Join(dir, "node")
	go func() {
		defer close(nodeReady)
		nodeErr = installNode(nodeDir)
	}()
	defer func() { <-nodeReady }() // the temporary directory outlives npm

	bridgeBinary = filepath.Join(dir, "webhook-bridge")
	if err := bridgetest.Build("../..", bridgeBinary); err != nil {
		fmt.Fprintln(os.Stderr, "openapi:", err)
		return 1
	}
	redisDir := filepath.Join(dir, "redis")
	if err := os.Mkdir(redisDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "openapi:", err)
		return 1
	}
	if redisServer, err = redistest.Start(redisDir); err != nil {
		fmt.Fprintln(os.Stderr, "openapi:", err)
		return 1
	}
	defer redisServer.Kill()
	return m.Run()
}

// installNode installs node/package.json's pinned packages into dir.
func installNode(dir string) error {
	return nodetest.Install("node", dir, []string{"package.json", "client.ts", "tsconfig.json"}, 18, 4*time.Minute)
}

// startBridge writes config, with LISTEN replaced by a free loopback
// address and REDIS by the server's, and runs the bridge until it says it
// listens. It is killed when the test ends; its log is shown if the test
// failed.
func startBridge(t *testing.T, config string) *bridgetest.Process {
	t.Helper()
	addr := bridgetest.FreeAddr(t)
	config = strings.NewReplacer("LISTEN", addr, "REDIS", redisServer.Addr).Replace(config)
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return bridgetest.Start(t, bridgeBinary, path, addr, nil, wait)
}

// jwtHS256 returns an HS256 JWT of claims signed with secret.
func jwtHS256(secret string, claims map[string]any) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, _ := json.Marshal(claims)
	signing := head + "." + enc.EncodeToString(body)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

// receiver is an httptest-like server on a loopback port that records
// the deliveries it gets: /ok answers 204, /fail 500 (with a body the
// delivery log keeps).
type receiver struct {
	srv  *http.Server
	url  string
	mu   sync.Mutex
	got  map[string][]string // path -> webhook-ids
	body map[string]string   // webhook-id -> body
}

func startReceiver(t *testing.T) *receiver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{url: "http://" + l.Addr().String(), got: map[string][]string{}, body: map[string]string{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got[req.URL.Path] = append(r.got[req.URL.Path], req.Header.Get("webhook-id"))
		r.body[req.Header.Get("webhook-id")] = string(b)
		r.mu.Unlock()
		if req.URL.Path == "/fail" {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "receiver down for maintenance")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = r.srv.Serve(l) }()
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

// delivered returns the webhook-ids path received.
func (r *receiver) delivered(path string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got[path]...)
}

// bodyOf returns the body of the delivery with webhook-id id.
func (r *receiver) bodyOf(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body[id]
}

// eventually polls cond until it holds or wait passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", wait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
