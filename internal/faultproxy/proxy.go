// Package faultproxy is a TCP proxy for tests that sits between clients
// (go-redis, say) and a server on loopback and breaks the traffic on
// demand: it resets connections (now, or at random intervals), adds
// latency, cuts the next server reply after k bytes, blackholes traffic
// for a while, and stops and starts listening.
//
// It is written for this project's fault-injection tests rather than
// taken from toxiproxy because those tests need deterministic cuts of one
// chosen connection at the moment the test decides, in the test's own
// process, with no server to run and no dependency to add.
//
// Only loopback is served: the proxy listens on 127.0.0.1 and refuses a
// target that is not a loopback address. Every goroutine it starts ends
// by [Proxy.Close].
package faultproxy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"time"
)

// Proxy forwards connections accepted on [Proxy.Addr] to its target. Its
// methods are safe for concurrent use.
type Proxy struct {
	target string
	addr   string
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	mu        sync.Mutex
	ln        net.Listener // nil while not listening
	conns     map[*Conn]struct{}
	seq       int
	latency   time.Duration
	holeUntil time.Time     // blackhole in force before this time
	random    chan struct{} // closed to stop random resets; nil when none run
	closed    bool
}

// New starts a proxy on a free loopback port forwarding to target, a
// "host:port" on loopback.
func New(target string) (*Proxy, error) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("faultproxy: target %q is not on loopback", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listening: %w", err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), done: make(chan struct{}), conns: map[*Conn]struct{}{}}
	p.serve(ln)
	return p, nil
}

// Addr is the "127.0.0.1:port" clients dial; it stays the same across
// [Proxy.StopListening] and [Proxy.StartListening].
func (p *Proxy) Addr() string { return p.addr }

// serve records ln and accepts on it until it is closed. Called with p.mu
// not held.
func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return // listener closed: stopped or Close
			}
			p.open(client)
		}
	}()
}

// open dials the target for an accepted client and starts the two
// directions of the link; a failed dial resets the client.
func (p *Proxy) open(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		rst(client)
		return
	}
	c := &Conn{p: p, client: client, server: server, cut: -1, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		rst(client)
		rst(server)
		return
	}
	p.seq++
	c.seq = p.seq
	p.conns[c] = struct{}{}
	p.wg.Add(2)
	p.mu.Unlock()
	go c.pipe(server, client, false)
	go c.pipe(client, server, true)
}

// Conns returns the open connections, oldest first.
func (p *Proxy) Conns() []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Conn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// ResetAll resets every open connection now (TCP RST to both ends) and
// returns how many there were. Clients may connect again at once.
func (p *Proxy) ResetAll() int {
	conns := p.Conns()
	for _, c := range conns {
		c.Reset()
	}
	return len(conns)
}

// ResetRandomly resets one open connection, chosen at random, after each
// interval drawn uniformly from [lo, hi], until [Proxy.StopRandomResets]
// or Close. The seed makes the choices repeatable. It replaces random
// resets already running.
func (p *Proxy) ResetRandomly(seed uint64, lo, hi time.Duration) {
	p.StopRandomResets()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	stop := make(chan struct{})
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.random = stop
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		for {
			d := lo
			if hi > lo {
				d += time.Duration(rng.Int64N(int64(hi - lo + 1)))
			}
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-stop:
				t.Stop()
				return
			}
			if conns := p.Conns(); len(conns) > 0 {
				conns[rng.IntN(len(conns))].Reset()
			}
		}
	}()
}

// StopRandomResets ends the random resets started by
// [Proxy.ResetRandomly], if any.
func (p *Proxy) StopRandomResets() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.random != nil {
		close(p.random)
		p.random = nil
	}
}

// SetLatency delays every chunk of data by d before it is forwarded, in
// each direction, so a request and its reply take at least 2d more; 0
// turns it off.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// CutNextReply arms every open connection as [Conn.CutNextReply] does.
func (p *Proxy) CutNextReply(k int) {
	for _, c := range p.Conns() {
		c.CutNextReply(k)
	}
}

// Blackhole makes the proxy swallow all traffic, both ways, on every
// connection (new ones included) for d: clients' requests are read and
// dropped and nothing is answered. A connection that dropped data is no
// longer in step with its server, so it is reset when the blackhole ends.
func (p *Proxy) Blackhole(d time.Duration) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.holeUntil = time.Now().Add(d)
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-p.done:
			return
		}
		for _, c := range p.Conns() {
			c.mu.Lock()
			dirty := c.dirty
			c.mu.Unlock()
			if dirty && !p.blackholed() {
				c.Reset()
			}
		}
	}()
}

func (p *Proxy) blackholed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Now().Before(p.holeUntil)
}

func (p *Proxy) currentLatency() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latency
}

// StopListening closes the listening socket, so that new dials are
// refused, as by a server that is down. Open connections are left as they
// are (see [Proxy.ResetAll]).
func (p *Proxy) StopListening() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
}

// StartListening listens on [Proxy.Addr] again after
// [Proxy.StopListening]; it does nothing while listening.
func (p *Proxy) StartListening() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("faultproxy: closed")
	}
	listening := p.ln != nil
	p.mu.Unlock()
	if listening {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("faultproxy: listening again on %s: %w", p.addr, err)
	}
	p.serve(ln)
	return nil
}

// Close stops listening, resets every connection and waits for every
// goroutine of the proxy to end. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	p.StopRandomResets()
	p.StopListening()
	p.ResetAll()
	p.wg.Wait()
	return nil
}

// Conn is one proxied connection: a client and the server connection
// dialled for it.
type Conn struct {
	p              *Proxy
	seq            int
	client, server net.Conn
	once           sync.Once
	done           chan struct{} // closed by Reset

	mu    sync.Mutex
	cut   int  // bytes of server data still forwarded before a cut; -1: none armed
	dirty bool // dropped data in a blackhole
}

// Reset closes both sides of the connection with a TCP RST (SetLinger(0)),
// as a crashed peer or a middlebox would. It is safe to call more than
// once.
func (c *Conn) Reset() { c.end(true) }

// end closes both sides; the server side with a reset, the client side
// with a reset when rstClient, or else with an orderly close, which
// makes sure the client gets the bytes already written (a cut reply).
func (c *Conn) end(rstClient bool) {
	c.once.Do(func() {
		if rstClient {
			rst(c.client)
		} else {
			_ = c.client.Close()
		}
		rst(c.server)
		close(c.done)
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	})
}

// CutNextReply arms a cut: the next k bytes the server sends on this
// connection are forwarded, then the connection is closed (the client
// sees the end of the stream after those bytes, the server a reset). Bytes are
// counted across reads from the time of the call, so with no reply in
// flight and k shorter than the next reply the client gets that reply cut
// after k bytes; with k = 0 it gets none of it.
func (c *Conn) CutNextReply(k int) {
	c.mu.Lock()
	c.cut = max(k, 0)
	c.mu.Unlock()
}

// take reports how much of n bytes of server data to forward and whether
// to reset the connection after them.
func (c *Conn) take(n int) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut < 0 {
		return n, false
	}
	if c.cut > n {
		c.cut -= n
		return n, false
	}
	k := c.cut
	c.cut = -1
	return k, true
}

// pipe copies src to dst until either side fails or the connection is
// reset, applying the proxy's faults; fromServer marks the server→client
// direction, where cuts apply.
func (c *Conn) pipe(dst, src net.Conn, fromServer bool) {
	defer c.p.wg.Done()
	defer c.Reset() // one side ended: end the whole link
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if c.p.blackholed() {
				c.mu.Lock()
				c.dirty = true
				c.mu.Unlock()
				continue
			}
			if d := c.p.currentLatency(); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-c.done:
					t.Stop()
					return
				}
			}
			data, cut := buf[:n], false
			if fromServer {
				var k int
				k, cut = c.take(n)
				data = data[:k]
			}
			if _, werr := dst.Write(data); werr != nil {
				return
			}
			if cut {
				c.end(false) // the k bytes reach the client, then end of stream
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// rst closes conn so that the peer sees a reset rather than an orderly
// end of stream.
func rst(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
