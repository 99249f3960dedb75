package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
)

// --- webhook bridge on a partitioned stream --------------------------------

const partitionsSection = "Webhook bridge on a local 3-master Redis Cluster, one topic over N partitions"

// benchLine reads the deliveries/s a go benchmark printed.
var benchLine = regexp.MustCompile(`([0-9.]+) deliveries/s`)

// bridgePartitions runs webhook-bridge's own benchmark, which starts a
// 3-master Cluster on loopback ports and posts events through the sidecar
// (in process) with the stream spread over n partitions, and reports the
// deliveries a second it printed. It lives in the sidecar's package; the
// figure is taken from its output as printed.
func bridgePartitions(n int) func(context.Context, *env, int) ([]float64, error) {
	return func(ctx context.Context, e *env, _ int) ([]float64, error) {
		benchtime := "3s"
		if e.n < 10000 { // -smoke
			benchtime = "2000x"
		}
		cmd := exec.CommandContext(ctx, "go", "test", "-C", "..", "-run", "^$",
			"-bench", fmt.Sprintf("^BenchmarkBridgePartitions$/^partitions=%d$", n), "-benchtime", benchtime, "./cmd/webhook-bridge")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("%v: %s", err, out)
		}
		m := benchLine.FindSubmatch(out)
		if m == nil {
			return nil, fmt.Errorf("no deliveries/s in: %s", out)
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		return []float64{v}, err
	}
}
