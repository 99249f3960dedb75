// Package redistest starts throwaway redis-server processes on loopback
// ports for the project's integration tests.
package redistest

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/switchyard-go/switchyard/internal/logready"
)

// Server is a redis-server process started by [Start].
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// Dir is the server's working directory (its AOF and RDB files).
	Dir  string
	args []string
	// ready is the log line that says the process serves.
	ready string
	cmd   *exec.Cmd
}

// readyLine is what redis-server logs once it accepts connections.
const readyLine = "Ready to accept connections"

// Start runs redis-server on a free loopback port with its files in dir,
// passing extra as further "--option value" arguments, and returns once
// the server says it accepts connections.
func Start(dir string, extra ...string) (*Server, error) {
	return startOn(dir, func(port int) []string { return []string{"--port", strconv.Itoa(port)} }, readyLine, extra)
}

// startOn runs redis-server on a free loopback port, with the arguments
// portArgs makes of the port before the common ones and extra, and waits
// for ready in its log.
func startOn(dir string, portArgs func(port int) []string, ready string, extra []string) (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redistest: redis-server not found (scripts/test installs it): %w", err)
	}
	var lastErr error
	for range 3 { // a free port can be taken between our probe and the server's bind
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, ready: ready}
		s.args = append(append(portArgs(port),
			"--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--logfile", "", "--daemonize", "no",
		), extra...)
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// start runs the server with its arguments and waits for its readiness
// line in the log.
func (s *Server) start() error {
	cmd := exec.Command("redis-server", s.args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: starting redis-server: %w", err)
	}
	if err := logready.Wait(out, s.ready, 20*time.Second); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("redistest: redis-server on %s: %w", s.Addr, err)
	}
	s.cmd = cmd
	return nil
}

// Kill ends the server at once, as a crash would.
func (s *Server) Kill() {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Pause stops the server's process (SIGSTOP), as a hung machine would:
// its connections stay open and nothing answers until [Server.Resume].
func (s *Server) Pause() error {
	if s.cmd == nil {
		return fmt.Errorf("redistest: %s is not running", s.Addr)
	}
	return s.cmd.Process.Signal(syscall.SIGSTOP)
}

// Resume continues a server [Server.Pause] stopped.
func (s *Server) Resume() error {
	if s.cmd == nil {
		return fmt.Errorf("redistest: %s is not running", s.Addr)
	}
	return s.cmd.Process.Signal(syscall.SIGCONT)
}

// Restart starts the server again on the same port and directory, after
// [Server.Kill].
func (s *Server) Restart() error {
	s.Kill()
	return s.start()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redistest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
