package redis_test

import (
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/switchyard-go/switchyard/pubsubtest"
)

// TestConformanceMiniredis runs the suite against miniredis, an in-process
// fake that starts in microseconds. Every command the backend uses (XADD,
// XREADGROUP with BLOCK, XACK, XCLAIM, XAUTOCLAIM, XPENDING, MULTI, EVALSHA
// with the move script) is one miniredis has, so only the goroutine check
// is left out: miniredis serves each connection with goroutines in the
// test process itself, which the check cannot tell from the backend's
// (TestConformance runs it against redis-server). Nor can miniredis show
// how a real server behaves on a restart, with AOF, or in a cluster; those
// tests run against redis-server only.
func TestConformanceMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	pubsubtest.Run(t, harness(newClient(t, mr.Addr()), map[pubsubtest.Capability]string{
		pubsubtest.GoroutineLeakCheck: "miniredis serves connections with goroutines in this process",
	}))
}
