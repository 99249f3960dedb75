package faultproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/internal/faultproxy"
)

// TestMain checks that no test leaves a goroutine behind: the proxy's
// and the echo servers' all end by their Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// reply is what the test server answers to each line it reads: 100 bytes
// and a newline, long enough to be cut in the middle.
var reply = strings.Repeat("r", 100) + "\n"

// server answers every line with reply until closed.
type server struct {
	ln net.Listener
	wg sync.WaitGroup
	mu sync.Mutex
	cs []net.Conn
}

func newServer(t *testing.T) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.cs = append(s.cs, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					if _, err := io.WriteString(c, reply); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.cs {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func newProxy(t *testing.T) (*faultproxy.Proxy, *server) {
	t.Helper()
	s := newServer(t)
	p, err := faultproxy.New(s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, s
}

func dial(t *testing.T, p *faultproxy.Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ask sends a line and reads what comes back within a second: the bytes
// and the error that ended the read (nil after a whole reply).
func ask(c net.Conn) (string, error) {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "q\n"); err != nil {
		return "", err
	}
	buf := make([]byte, 0, len(reply))
	tmp := make([]byte, len(reply))
	for len(buf) < len(reply) {
		n, err := c.Read(tmp[:len(reply)-len(buf)])
		buf = append(buf, tmp[:n]...)
		if err != nil {
			return string(buf), err
		}
	}
	return string(buf), nil
}

// waitConns waits, bounded, until the proxy holds n connections; the
// proxy registers a connection just after accepting it.
func waitConns(t *testing.T, p *faultproxy.Proxy, n int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); len(p.Conns()) != n; {
		if time.Now().After(deadline) {
			t.Fatalf("proxy holds %d connections, want %d", len(p.Conns()), n)
		}
		time.Sleep(time.Millisecond) // polling the proxy's state, bounded above
	}
}

func TestPassThrough(t *testing.T) {
	p, _ := newProxy(t)
	c := dial(t, p)
	for range 3 {
		got, err := ask(c)
		if err != nil || got != reply {
			t.Fatalf("got %q, %v; want the whole reply", got, err)
		}
	}
}

func TestRefusesTargetsOffLoopback(t *testing.T) {
	for _, target := range []string{"10.0.0.1:6379", "example.com:6379", "nonsense"} {
		if p, err := faultproxy.New(target); err == nil {
			_ = p.Close()
			t.Errorf("New(%q) succeeded", target)
		}
	}
}

func TestResetAll(t *testing.T) {
	p, _ := newProxy(t)
	a, b := dial(t, p), dial(t, p)
	for _, c := range []net.Conn{a, b} {
		if _, err := ask(c); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.ResetAll(); n != 2 {
		t.Fatalf("ResetAll reset %d connections, want 2", n)
	}
	for _, c := range []net.Conn{a, b} {
		if _, err := ask(c); !isReset(err) {
			t.Errorf("after ResetAll: %v, want a connection reset", err)
		}
	}
	if got, err := ask(dial(t, p)); err != nil || got != reply {
		t.Errorf("a new connection after ResetAll: %q, %v", got, err)
	}
}

func isReset(err error) bool {
	return err != nil && (errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe"))
}

func TestCutNextReplyOnOneConnection(t *testing.T) {
	p, _ := newProxy(t)
	a, b := dial(t, p), dial(t, p)
	waitConns(t, p, 2)
	p.Conns()[0].CutNextReply(37)
	got, err := ask(a)
	if len(got) != 37 || err == nil {
		t.Fatalf("cut connection: got %d bytes, %v; want 37 bytes then an error", len(got), err)
	}
	if got, err := ask(b); err != nil || got != reply {
		t.Errorf("the other connection: %q, %v", got, err)
	}
}

func TestCutNextReplyOnAll(t *testing.T) {
	p, _ := newProxy(t)
	a, b := dial(t, p), dial(t, p)
	waitConns(t, p, 2)
	p.CutNextReply(0)
	for _, c := range []net.Conn{a, b} {
		if got, err := ask(c); got != "" || err == nil {
			t.Errorf("got %q, %v; want nothing then an error", got, err)
		}
	}
}

func TestCutCountsAcrossReplies(t *testing.T) {
	p, _ := newProxy(t)
	c := dial(t, p)
	waitConns(t, p, 1)
	p.Conns()[0].CutNextReply(len(reply) + 10)
	if got, err := ask(c); err != nil || got != reply {
		t.Fatalf("first reply: %q, %v; want it whole", got, err)
	}
	if got, err := ask(c); len(got) != 10 || err == nil {
		t.Errorf("second reply: %d bytes, %v; want 10 then an error", len(got), err)
	}
}

func TestLatency(t *testing.T) {
	p, _ := newProxy(t)
	c := dial(t, p)
	p.SetLatency(50 * time.Millisecond)
	start := time.Now()
	if _, err := ask(c); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("round trip took %v with 50ms latency each way", d)
	}
	p.SetLatency(0)
	if _, err := ask(c); err != nil {
		t.Fatal(err)
	}
}

func TestBlackhole(t *testing.T) {
	p, _ := newProxy(t)
	c := dial(t, p)
	if _, err := ask(c); err != nil {
		t.Fatal(err)
	}
	p.Blackhole(300 * time.Millisecond)
	_ = c.SetDeadline(time.Now().Add(150 * time.Millisecond))
	_, _ = io.WriteString(c, "q\n")
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("during the blackhole: %v, want a timeout", err)
	}
	// When the blackhole ends, the connection that lost data is reset.
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !isReset(err) {
		t.Errorf("after the blackhole: %v, want a reset", err)
	}
	if got, err := ask(dial(t, p)); err != nil || got != reply {
		t.Errorf("a new connection after the blackhole: %q, %v", got, err)
	}
}

func TestStopAndStartListening(t *testing.T) {
	p, _ := newProxy(t)
	open := dial(t, p)
	p.StopListening()
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		_ = c.Close()
		t.Fatal("dial succeeded while not listening")
	}
	if _, err := ask(open); err != nil {
		t.Errorf("an open connection while not listening: %v", err)
	}
	if err := p.StartListening(); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(dial(t, p)); err != nil || got != reply {
		t.Errorf("after StartListening: %q, %v", got, err)
	}
}

func TestResetRandomly(t *testing.T) {
	p, _ := newProxy(t)
	conns := []net.Conn{dial(t, p), dial(t, p), dial(t, p)}
	waitConns(t, p, 3)
	p.ResetRandomly(1, 5*time.Millisecond, 20*time.Millisecond)
	for deadline := time.Now().Add(5 * time.Second); len(p.Conns()) > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after 5s of random resets", len(p.Conns()))
		}
		time.Sleep(5 * time.Millisecond) // polling the proxy's state, bounded above
	}
	p.StopRandomResets()
	for _, c := range conns {
		if _, err := ask(c); !isReset(err) {
			t.Errorf("%v, want a reset", err)
		}
	}
}

// Close ends every goroutine of the proxy, with connections open, random
// resets running, latency set and a blackhole in force.
func TestCloseEndsEverything(t *testing.T) {
	s := newServer(t)
	before := goleak.IgnoreCurrent()
	p, err := faultproxy.New(s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	if _, err := ask(c); err != nil {
		t.Fatal(err)
	}
	p.SetLatency(time.Hour)
	_, _ = io.WriteString(c, "q\n") // a chunk now waits an hour in the proxy
	p.ResetRandomly(2, time.Hour, time.Hour)
	p.Blackhole(time.Hour)
	_ = p.Close()
	_ = p.Close()
	if _, err := ask(c); !isReset(err) {
		t.Errorf("after Close: %v, want a reset", err)
	}
	// What is left is the proxy's (the test server's handler of the
	// proxied connection ends on the proxy's reset).
	if err := goleak.Find(before); err != nil {
		t.Error(err)
	}
}
