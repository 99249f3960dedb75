package webhookhttp_test

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"

	"github.com/switchyard-go/switchyard/internal/redistest"
)

// redisServer is the redis-server the tests share.
var redisServer *redistest.Server

// seq makes keys unique between tests.
var seq atomic.Int64

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "webhookhttp-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		redisServer, err = redistest.Start(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer redisServer.Kill()
		return m.Run()
	}()
	os.Exit(code)
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
