package wmconform

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// redisServer is a redis-server a test started on a free loopback port.
type redisServer struct {
	addr string
	port int
}

// startRedis runs redis-server on a free loopback port until the test
// ends. It keeps an append-only file (flushed by the kernel, fsynced on a
// graceful restart) so that a restart loses nothing, and allows DEBUG from
// loopback for restartCommand.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	// DEBUG RESTART re-executes the server by its own path: give it an
	// absolute one.
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (install it with apt-get install redis-server): %v", err)
	}
	if bin, err = filepath.Abs(bin); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "no", "--enable-debug-command", "local",
		"--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	s := &redisServer{addr: "127.0.0.1:" + strconv.Itoa(port), port: port}
	client := goredis.NewClient(&goredis.Options{Addr: s.addr, MaxRetries: -1})
	defer client.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := client.Ping(ctx).Err()
		cancel()
		if err == nil {
			return s
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redis-server exited before it was ready:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server not answering PING within 20s: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling PING until ready, bounded above
	}
}

// restartCommand is a command that restarts the server gracefully in
// place (same process, port and data) with DEBUG RESTART, and returns
// once a server with a new run_id answers PING. A server that is
// restarting already is waited for first. redis-cli itself fails on DEBUG
// RESTART (the server closes the connection without a reply), so success
// is judged by the run_id.
func (s *redisServer) restartCommand() []string {
	cli := "redis-cli -h 127.0.0.1 -p " + strconv.Itoa(s.port)
	script := `up() { [ "$(` + cli + ` PING 2>/dev/null)" = PONG ]; }
runid() { ` + cli + ` INFO server 2>/dev/null | tr -d '\r' | sed -n 's/^run_id://p'; }
i=0; until up; do i=$((i+1)); [ $i -lt 400 ] || { echo "restart: server not answering" >&2; exit 1; }; sleep 0.05; done
before=$(runid)
` + cli + ` DEBUG RESTART >/dev/null 2>&1
i=0; until up && [ "$(runid)" != "$before" ]; do i=$((i+1)); [ $i -lt 400 ] || { echo "restart: no restarted server within 20s" >&2; exit 1; }; sleep 0.05; done`
	return []string{"sh", "-c", script}
}
