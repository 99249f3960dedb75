// Package bridgetest builds cmd/webhook-bridge and runs it for the tests
// of this module and of the modules beside it (interop, deploy), which
// import it by path: one way to build the binary, start it, wait until it
// listens, keep its log and stop it.
package bridgetest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles cmd/webhook-bridge of the switchyard module whose root
// directory is root (relative to the test's working directory, e.g. ".."
// from a module beside it) into out, with the root module's own go.mod
// and versions.
func Build(root, out string) error {
	build := exec.Command("go", "build", "-o", out, "./cmd/webhook-bridge")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building webhook-bridge: %v\n%s", err, b)
	}
	return nil
}

// Process is a running webhook-bridge.
type Process struct {
	// Cmd is the process; Cmd.ProcessState holds its exit status once
	// Exited is closed.
	Cmd *exec.Cmd
	// Addr is the address it listens on, Config the path of its config.
	Addr, Config string

	mu     sync.Mutex
	log    bytes.Buffer
	exited chan struct{}
}

// Start runs binary with --config config, env added to the test's
// environment, until it logs that it listens on addr (the config's
// listen address), as Run does.
func Start(t testing.TB, binary, config, addr string, env []string, wait time.Duration) *Process {
	t.Helper()
	cmd := exec.Command(binary, "--config", config)
	if env != nil {
		cmd.Env = append(cmd.Environ(), env...)
	}
	p := Run(t, cmd, addr, wait)
	p.Config = config
	return p
}

// Run starts cmd, a webhook-bridge set up as the caller wants it (its
// environment, directory, user), and waits until it logs that it listens
// on addr; the test fails if it exits first or does not listen within
// wait. The process is killed when the test ends, and its log is shown if
// the test failed.
func Run(t testing.TB, cmd *exec.Cmd, addr string, wait time.Duration) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, Addr: addr, exited: make(chan struct{})}
	stderr, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Start(); err != nil {
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
		_ = p.Cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Stop(syscall.SIGKILL, wait)
		if t.Failed() {
			t.Logf("webhook-bridge log:\n%s", p.Logs())
		}
	})
	select {
	case <-listening:
	case <-p.exited:
		t.Fatalf("webhook-bridge exited before listening:\n%s", p.Logs())
	case <-time.After(wait):
		t.Fatalf("webhook-bridge not listening within %s:\n%s", wait, p.Logs())
	}
	return p
}

// Logs returns what the process has written to its standard error.
func (p *Process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Exited is closed once the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Stop sends sig and waits for the process to end, killing it after
// within.
func (p *Process) Stop(sig syscall.Signal, within time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(within):
		_ = p.Cmd.Process.Kill()
		<-p.exited
	}
}

// FreeAddr returns a loopback address no one listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
