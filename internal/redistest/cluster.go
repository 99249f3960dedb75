package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of masters without replicas, started by
// [StartCluster].
type Cluster struct {
	// Nodes are the masters, each in a directory of its own.
	Nodes []*Server
}

// Addrs returns the masters' addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// Kill ends every node.
func (c *Cluster) Kill() {
	for _, n := range c.Nodes {
		n.Kill()
	}
}

// StartCluster starts masters redis-server processes in cluster mode on
// loopback ports, joins them with `redis-cli --cluster create`, and
// returns once every node reports the cluster ok.
func StartCluster(dir string, masters int) (*Cluster, error) {
	c := &Cluster{}
	for i := range masters {
		nodeDir := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			c.Kill()
			return nil, err
		}
		n, err := Start(nodeDir, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(nodeDir, "nodes.conf"),
			"--cluster-node-timeout", "5000")
		if err != nil {
			c.Kill()
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		c.Kill()
		return nil, fmt.Errorf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	// The nodes agree on the slots a moment after create returns; a
	// readiness poll, as redis-cli --cluster check would do.
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range c.Nodes {
		host, port, _ := strings.Cut(n.Addr, ":")
		for {
			out, _ := exec.Command("redis-cli", "-h", host, "-p", port, "CLUSTER", "INFO").Output()
			if strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.Kill()
				return nil, fmt.Errorf("redistest: cluster not ok within 30s; node %s says:\n%s", n.Addr, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c, nil
}

// Spread returns the first of prefix-0, prefix-1, … whose keys (as keys
// makes them from the name, partitions say) fall evenly on the masters
// client knows of: as many on each of masters. Where a key falls is fixed
// by its name, so a test that pauses one master knows which keys it takes.
func Spread(ctx context.Context, client *goredis.ClusterClient, masters int, prefix string, keys func(name string) []string) (string, error) {
	for k := range 100_000 {
		name := prefix + "-" + strconv.Itoa(k)
		ks := keys(name)
		per := map[string]int{}
		for _, key := range ks {
			m, err := client.MasterForKey(ctx, key)
			if err != nil {
				return "", err
			}
			per[m.Options().Addr]++
		}
		even := len(per) == masters
		for _, n := range per {
			even = even && n*masters == len(ks)
		}
		if even {
			return name, nil
		}
	}
	return "", fmt.Errorf("redistest: no name %s-<k> spreads its keys evenly over %d masters", prefix, masters)
}

// Node returns the master at addr, or nil.
func (c *Cluster) Node(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}
