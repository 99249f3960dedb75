package redistest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redistest"
)

// TestSentinel starts a primary, a replica and a sentinel with ACL users,
// writes through the sentinel, fails over, and finds the write on the new
// primary.
func TestSentinel(t *testing.T) {
	s, err := redistest.StartSentinel(t.TempDir(), redistest.SentinelConfig{User: "bridge", Password: "data-pw", SentinelPassword: "sentinel-pw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := goredis.NewFailoverClient(&goredis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: []string{s.Sentinel.Addr},
		SentinelPassword: "sentinel-pw", Username: "bridge", Password: "data-pw"})
	defer client.Close()
	if err := client.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.Wait(ctx, 1, 5*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	// The default user is off: without the ACL user a client is refused.
	anon := goredis.NewClient(&goredis.Options{Addr: s.Primary.Addr})
	defer anon.Close()
	if err := anon.Ping(ctx).Err(); err == nil {
		t.Error("the primary answered a client without a user")
	}
	if err := s.Failover(); err != nil {
		t.Fatal(err)
	}
	newPrimary := goredis.NewClient(&goredis.Options{Addr: s.Replica.Addr, Username: "bridge", Password: "data-pw"})
	defer newPrimary.Close()
	role, err := newPrimary.Do(ctx, "ROLE").Slice()
	if err != nil || role[0] != "master" {
		t.Fatalf("ROLE of the promoted replica = %v, %v", role, err)
	}
	if v, err := newPrimary.Get(ctx, "k").Result(); v != "v" {
		t.Errorf("GET k on the new primary = %q, %v", v, err)
	}
}

// TestTLS starts a TLS-only server that asks for client certificates and
// connects with the CA and the client certificate NewTLSFiles made.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	f, err := redistest.NewTLSFiles(dir, "t")
	if err != nil {
		t.Fatal(err)
	}
	s, err := redistest.StartTLS(dir, f, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok := goredis.NewClient(&goredis.Options{Addr: s.Addr, MaxRetries: -1,
		TLSConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	defer ok.Close()
	if err := ok.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING over TLS with the client certificate: %v", err)
	}
	noCert := goredis.NewClient(&goredis.Options{Addr: s.Addr, MaxRetries: -1, DialerRetries: 1,
		TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
	defer noCert.Close()
	if err := noCert.Ping(ctx).Err(); err == nil {
		t.Error("a client without a certificate was served")
	}
	plain := goredis.NewClient(&goredis.Options{Addr: s.Addr, MaxRetries: -1, DialerRetries: 1, ReadTimeout: time.Second})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil || strings.Contains(err.Error(), "PONG") {
		t.Errorf("a plain client was served: %v", err)
	}
}
