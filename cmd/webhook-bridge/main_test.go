package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/bridgetest"
	"github.com/switchyard-go/switchyard/internal/redistest"
)

// binary is the webhook-bridge built once for the package's tests;
// redisServer is a redis-server they share, each test with its own stream.
var (
	binary      string
	redisServer *redistest.Server
)

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "webhook-bridge-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "webhook-bridge")
		if err := bridgetest.Build("../..", binary); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		redisServer, err = redistest.Start(dir, "--appendonly", "yes", "--appendfsync", "always")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer redisServer.Kill()
		return m.Run()
	}()
	os.Exit(code)
}

const wait = 15 * time.Second

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string { return bridgetest.FreeAddr(t) }

// proc is a running webhook-bridge process, with this package's helpers.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	config string
	exited <-chan struct{}
	bp     *bridgetest.Process
}

// startBridge writes config (with LISTEN replaced by a free address) and
// runs the binary on it until it says it is listening.
func startBridge(t *testing.T, config string) *proc {
	t.Helper()
	addr := freeAddr(t)
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(config, "LISTEN", addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	return runBridge(t, path, addr)
}

func runBridge(t *testing.T, path, addr string) *proc {
	t.Helper()
	bp := bridgetest.Start(t, binary, path, addr, nil, wait)
	return &proc{t: t, cmd: bp.Cmd, addr: addr, config: path, exited: bp.Exited(), bp: bp}
}

func (p *proc) logs() string { return p.bp.Logs() }

// stop sends sig and waits for the process to end.
func (p *proc) stop(sig syscall.Signal) { p.bp.Stop(sig, wait) }

// post sends body to path with an optional bearer token and returns the
// status and response body.
func (p *proc) post(t *testing.T, path, token, body string) (int, string) {
	t.Helper()
	return p.do(t, http.MethodPost, path, token, body)
}

func (p *proc) do(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// emit posts events and fails the test unless they are accepted.
func (p *proc) emit(t *testing.T, token, body string) []string {
	t.Helper()
	status, resp := p.post(t, "/v1/events", token, body)
	if status != http.StatusAccepted {
		t.Fatalf("POST /v1/events = %d %s", status, resp)
	}
	var out struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal([]byte(resp), &out); err != nil {
		t.Fatal(err)
	}
	return out.IDs
}

// cli runs the binary with args and returns its standard output.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("webhook-bridge %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

// verifySignature is the Standard Webhooks algorithm, written here apart
// from the bridge's signer.
func verifySignature(secret, id, ts string, body []byte, header string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(header) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}
