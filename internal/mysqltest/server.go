// Package mysqltest starts throwaway MariaDB servers on loopback ports for
// the project's tests, initialised into a temporary directory.
package mysqltest

import (
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver NewDatabase opens
	"github.com/switchyard-go/switchyard/internal/logready"
)

// Server is a running mariadbd.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	dir  string
	cmd  *exec.Cmd
}

// Start initialises a data directory in a new temporary directory and
// runs mariadbd on a free loopback port, returning once it accepts
// connections. The server's root user has no password on loopback.
func Start() (*Server, error) {
	install, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		return nil, fmt.Errorf("mysqltest: mariadb-install-db not found (scripts/test installs mariadb-server): %w", err)
	}
	mariadbd, err := exec.LookPath("mariadbd")
	if err != nil {
		if mariadbd, err = exec.LookPath("/usr/sbin/mariadbd"); err != nil {
			return nil, fmt.Errorf("mysqltest: mariadbd not found (scripts/test installs mariadb-server): %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "switchyard-mariadb-")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	var userArgs []string
	if os.Geteuid() == 0 {
		// mariadbd refuses to run as root; it switches to the mysql user.
		u, err := user.Lookup("mysql")
		if err != nil {
			return nil, fmt.Errorf("mysqltest: running as root needs the mysql user (from the mariadb-server package): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		userArgs = []string{"--user=mysql"}
	}
	args := append([]string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve"}, userArgs...)
	// mariadb-install-db has been seen to crash once in a while; a second
	// run into an empty directory is a new start.
	for try := 1; ; try++ {
		out, err := exec.Command(install, args...).CombinedOutput()
		if err == nil {
			break
		}
		if try == 3 {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("mysqltest: mariadb-install-db: %v\n%s", err, out)
		}
		if err := os.RemoveAll(data); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for range 3 { // a free port can be taken between our probe and the server's bind
		s, err := start(mariadbd, dir, data, userArgs)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

func start(mariadbd, dir, data string, userArgs []string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	args := append([]string{"--no-defaults", "--datadir=" + data, "--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1", "--socket=" + filepath.Join(dir, "sock"), "--pid-file=" + filepath.Join(dir, "pid"),
		"--skip-name-resolve", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
		"--max-connections=300", "--innodb-lock-wait-timeout=30"}, userArgs...)
	cmd := exec.Command(mariadbd, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("mysqltest: starting mariadbd: %w", err)
	}
	if err := logready.Wait(stderr, "ready for connections", 60*time.Second); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, fmt.Errorf("mysqltest: mariadbd: %w", err)
	}
	return &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, cmd: cmd}, nil
}

// DSN is the go-sql-driver/mysql data source name of database db as root.
// Times are not parsed; several statements per Exec are refused.
func (s *Server) DSN(db string) string {
	return "root@tcp(" + s.Addr + ")/" + db
}

var dbSeq atomic.Int64

// NewDatabase creates a database of its own and returns its DSN.
func (s *Server) NewDatabase(prefix string) (string, error) {
	admin, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		return "", err
	}
	defer admin.Close()
	name := fmt.Sprintf("%s_%d_%d", prefix, time.Now().UnixNano(), dbSeq.Add(1))
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		return "", fmt.Errorf("mysqltest: creating database %s: %w", name, err)
	}
	return s.DSN(name), nil
}

// Stop ends the server and removes its files.
func (s *Server) Stop() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	_ = os.RemoveAll(s.dir)
}
