package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
		if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building webhook-bridge: %v\n%s", err, out)
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
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a running webhook-bridge process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	config string
	mu     sync.Mutex
	log    bytes.Buffer
	exited chan struct{}
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
	p := &proc{t: t, addr: addr, config: path, exited: make(chan struct{})}
	p.cmd = exec.Command(binary, "--config", path)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		said := false
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if !said && strings.Contains(sc.Text(), "webhook-bridge: listening") {
				said = true
				close(listening)
			}
		}
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("bridge log:\n%s", p.logs())
		}
	})
	select {
	case <-listening:
	case <-p.exited:
		t.Fatalf("webhook-bridge exited before listening:\n%s", p.logs())
	case <-time.After(wait):
		t.Fatalf("webhook-bridge not listening within %s:\n%s", wait, p.logs())
	}
	return p
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop sends sig and waits for the process to end.
func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(wait):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

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
