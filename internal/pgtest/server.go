// Package pgtest starts throwaway PostgreSQL servers on loopback ports
// for the project's tests, as an unprivileged user.
package pgtest

import (
	"database/sql"
	"sync/atomic"

	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the driver NewDatabase opens
	"github.com/switchyard-go/switchyard/internal/logready"
)

// Server is a running postgres.
type Server struct {
	// DSN connects as the superuser to the "postgres" database.
	DSN string
	dir string
	cmd *exec.Cmd
}

// bin finds a PostgreSQL program: on PATH, or in Debian's versioned
// directory.
func bin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) == 0 {
		return "", fmt.Errorf("pgtest: %s not found (scripts/test installs postgresql)", name)
	}
	return matches[len(matches)-1], nil
}

// asUser runs a program as the postgres user when this process is root,
// since PostgreSQL refuses to run as root.
func asUser(root bool, prog string, args ...string) *exec.Cmd {
	if root {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", prog}, args...)...)
	}
	return exec.Command(prog, args...)
}

// Start initialises a cluster in a new temporary directory and runs it on
// a free loopback port, returning once it accepts connections.
func Start() (*Server, error) {
	initdb, err := bin("initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := bin("postgres")
	if err != nil {
		return nil, err
	}
	root := os.Geteuid() == 0
	dir, err := os.MkdirTemp("", "switchyard-pg-")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, err
	}
	if root {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root needs the postgres user (from the postgresql package): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chown(data, uid, gid); err != nil {
			return nil, err
		}
	}
	if out, err := asUser(root, initdb, "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := asUser(root, postgres, "-D", data, "-p", strconv.Itoa(port), "-k", data, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "max_connections=100")
	// Its own process group, so that Stop reaches postgres through runuser.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	if err := logready.Wait(stderr, "ready to accept connections", 30*time.Second); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, fmt.Errorf("pgtest: postgres: %w", err)
	}
	return &Server{DSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), dir: dir, cmd: cmd}, nil
}

// DatabaseDSN is the DSN of database name on the server, as the superuser.
func (s *Server) DatabaseDSN(name string) string {
	return strings.Replace(s.DSN, "/postgres?", "/"+name+"?", 1)
}

var dbSeq atomic.Int64

// NewDatabase creates a database of its own, named after prefix, and
// returns its DSN.
func (s *Server) NewDatabase(prefix string) (string, error) {
	admin, err := sql.Open("pgx", s.DSN)
	if err != nil {
		return "", err
	}
	defer admin.Close()
	name := fmt.Sprintf("%s_%d_%d", prefix, time.Now().UnixNano(), dbSeq.Add(1))
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		return "", fmt.Errorf("pgtest: creating database %s: %w", name, err)
	}
	return s.DatabaseDSN(name), nil
}

// Stop ends the server and removes its files.
func (s *Server) Stop() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGINT) // fast shutdown of the whole group
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	_ = os.RemoveAll(s.dir)
}
