package testdb

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy forwards TCP connections from an address of its own on 127.0.0.1
// to a server, and can cut them: a stand-in for a database server that
// becomes unreachable (a restart, a failover, a network partition) and
// comes back. Create it with NewProxy; it stops when the test ends.
type Proxy struct {
	target string
	ln     net.Listener

	mu    sync.Mutex
	down  bool
	stall bool              // while down: hold new connections open, unanswered
	conns map[net.Conn]bool // both ends of every forwarded connection
	wg    sync.WaitGroup
}

// NewProxy listens on 127.0.0.1 and forwards every connection to target
// (host:port).
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: listen: %v", err)
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		p.Down()
		p.wg.Wait()
	})
	return p
}

// ProxyTo returns a Proxy to the server of dsn (a URL) and dsn with its
// host and port replaced by the proxy's.
func ProxyTo(t testing.TB, dsn string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := NewProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	return p, u.String()
}

// Down closes every forwarded connection, both ends, and from now on
// closes each new connection as soon as it is accepted, until Up: a server
// that refuses connections.
func (p *Proxy) Down() { p.cut(false) }

// Stall closes every forwarded connection, both ends, and from now on
// holds each new connection open without answering, until Up or Down: a
// server that hangs.
func (p *Proxy) Stall() { p.cut(true) }

func (p *Proxy) cut(stall bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down, p.stall = true, stall
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// Up forwards new connections again.
func (p *Proxy) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down, p.stall = false, false
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed: the test ended
		}
		p.wg.Go(func() { p.forward(c) })
	}
}

// forward connects c to the target and copies both ways until either end
// closes or Down cuts them.
func (p *Proxy) forward(c net.Conn) {
	p.mu.Lock()
	if p.down && p.stall {
		p.conns[c] = true // closed by the next Down, Stall or the cleanup
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	if !p.track(c) {
		_ = c.Close()
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(s) {
		_ = c.Close()
		if s != nil {
			_ = s.Close()
		}
		return
	}
	var copies sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Either end closing ends both directions.
		_ = src.Close()
		_ = dst.Close()
	}
	copies.Go(func() { pipe(s, c) })
	copies.Go(func() { pipe(c, s) })
	copies.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// track records c for Down; it reports false, and records nothing, while
// the proxy is down.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c] = true
	return true
}
