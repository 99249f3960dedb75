package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SentinelConfig configures [StartSentinel]. The zero value is a primary
// "mymaster" without authentication.
type SentinelConfig struct {
	// MasterName is the name the sentinel knows the primary by.
	// default: mymaster
	MasterName string
	// User and Password, when set, make an ACL user on the primary and
	// the replica with every permission, turn the default user off, and
	// make the replica and the sentinel authenticate as that user.
	// default: none, the default user without a password
	User, Password string
	// SentinelPassword, when set, is the sentinel's own requirepass.
	// default: none
	SentinelPassword string
}

// Sentinel is a primary, its replica and one sentinel that monitors them,
// started by [StartSentinel].
type Sentinel struct {
	// Primary and Replica are the data nodes as started; after a failover
	// the replica is the primary.
	Primary, Replica *Server
	// Sentinel is the sentinel process; its Addr is what clients ask.
	Sentinel *Server
	// MasterName is the name the sentinel knows the primary by.
	MasterName string
	cfg        SentinelConfig
}

// Kill ends the three processes.
func (s *Sentinel) Kill() {
	for _, n := range []*Server{s.Sentinel, s.Replica, s.Primary} {
		if n != nil {
			n.Kill()
		}
	}
}

// StartSentinel starts, in dir, a primary, a replica of it and one
// sentinel with quorum 1 (redis-server --sentinel), each on a free
// loopback port, and returns once the replica is in sync and the sentinel
// knows it, so that SENTINEL FAILOVER can promote it.
func StartSentinel(dir string, cfg SentinelConfig) (*Sentinel, error) {
	if cfg.MasterName == "" {
		cfg.MasterName = "mymaster"
	}
	s := &Sentinel{MasterName: cfg.MasterName, cfg: cfg}
	// A replica (the old primary, after a failover) syncs at once, not
	// after the default 5s wait for more replicas.
	auth := []string{"--repl-diskless-sync-delay", "0"}
	if cfg.User != "" {
		auth = append(auth, "--user", "default", "off", "--user", cfg.User, "on", ">"+cfg.Password, "~*", "&*", "+@all",
			"--masteruser", cfg.User, "--masterauth", cfg.Password)
	}
	dataDir := func(name string) (string, error) {
		d := filepath.Join(dir, name)
		return d, os.MkdirAll(d, 0o755)
	}
	d, err := dataDir("primary")
	if err != nil {
		return nil, err
	}
	if s.Primary, err = Start(d, auth...); err != nil {
		return nil, err
	}
	host, port, _ := strings.Cut(s.Primary.Addr, ":")
	if d, err = dataDir("replica"); err == nil {
		s.Replica, err = Start(d, append([]string{"--replicaof", host, port}, auth...)...)
	}
	if err != nil {
		s.Kill()
		return nil, err
	}
	if d, err = dataDir("sentinel"); err != nil {
		s.Kill()
		return nil, err
	}
	conf := filepath.Join(d, "sentinel.conf")
	lines := []string{
		fmt.Sprintf("sentinel monitor %s %s %s 1", cfg.MasterName, host, port),
		fmt.Sprintf("sentinel down-after-milliseconds %s 2000", cfg.MasterName),
		fmt.Sprintf("sentinel failover-timeout %s 10000", cfg.MasterName),
	}
	if cfg.User != "" {
		lines = append(lines, fmt.Sprintf("sentinel auth-user %s %s", cfg.MasterName, cfg.User),
			fmt.Sprintf("sentinel auth-pass %s %s", cfg.MasterName, cfg.Password))
	}
	if cfg.SentinelPassword != "" {
		lines = append(lines, "requirepass "+cfg.SentinelPassword)
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		s.Kill()
		return nil, err
	}
	s.Sentinel, err = startOn(d, func(port int) []string {
		return []string{conf, "--sentinel", "--port", strconv.Itoa(port)}
	}, "+monitor master", nil)
	if err != nil {
		s.Kill()
		return nil, err
	}
	// Readiness polls, as an operator would run them: the replica in
	// sync, and the sentinel aware of it.
	if err := s.waitFor(30*time.Second, "the replica in sync", func() (bool, string) {
		out := s.cli(s.Replica, "INFO", "replication")
		return strings.Contains(out, "master_link_status:up"), out
	}); err != nil {
		s.Kill()
		return nil, err
	}
	if err := s.waitFor(30*time.Second, "the sentinel to know the replica", func() (bool, string) {
		out := s.cli(s.Sentinel, "SENTINEL", "REPLICAS", cfg.MasterName)
		return strings.Contains(out, s.Replica.Addr[strings.LastIndex(s.Replica.Addr, ":")+1:]) &&
			strings.Contains(out, "master-link-status\nok") && !strings.Contains(out, "s_down"), out
	}); err != nil {
		s.Kill()
		return nil, err
	}
	return s, nil
}

// Failover asks the sentinel to promote the replica (SENTINEL FAILOVER)
// and returns once the sentinel names the replica as the primary.
func (s *Sentinel) Failover() error {
	if out := s.cli(s.Sentinel, "SENTINEL", "FAILOVER", s.MasterName); strings.TrimSpace(out) != "OK" {
		return fmt.Errorf("redistest: SENTINEL FAILOVER %s: %s", s.MasterName, out)
	}
	return s.waitFor(30*time.Second, "the replica to become the primary", func() (bool, string) {
		out := s.cli(s.Sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
		return strings.Join(strings.Fields(out), ":") == s.Replica.Addr, out
	})
}

// cli runs redis-cli against n, authenticated as the config says, and
// returns what it printed.
func (s *Sentinel) cli(n *Server, args ...string) string {
	host, port, _ := strings.Cut(n.Addr, ":")
	base := []string{"-h", host, "-p", port}
	switch {
	case n == s.Sentinel && s.cfg.SentinelPassword != "":
		base = append(base, "--no-auth-warning", "-a", s.cfg.SentinelPassword)
	case n != s.Sentinel && s.cfg.User != "":
		base = append(base, "--no-auth-warning", "--user", s.cfg.User, "--pass", s.cfg.Password)
	}
	out, err := exec.Command("redis-cli", append(base, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s (%v)", out, err)
	}
	return string(out)
}

// waitFor polls ok every 50ms until it holds or limit passes.
func (s *Sentinel) waitFor(limit time.Duration, what string, ok func() (bool, string)) error {
	deadline := time.Now().Add(limit)
	for {
		done, last := ok()
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: waited %s for %s; last answer:\n%s", limit, what, last)
		}
		time.Sleep(50 * time.Millisecond) // a readiness poll of other processes
	}
}
