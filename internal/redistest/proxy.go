package redistest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections to a server, so that a test can break a
// client's connections to Redis without touching Redis or other clients.
// Silence makes the connections open at the time swallow whatever they
// get, both ways, without closing; MoveTo closes them and sends new ones
// to another server, as a restart of the server would look to a client;
// Cut closes them and refuses new ones until Restore, as a network
// partition between that client and Redis would.
type Proxy struct {
	Addr string // where clients connect

	ln net.Listener
	wg sync.WaitGroup

	mu     sync.Mutex
	target string         // guarded by mu
	cut    bool           // guarded by mu
	conns  []net.Conn     // guarded by mu
	silent []*atomic.Bool // one per connection pair; guarded by mu
}

// StartProxy starts a proxy to target on a free loopback port; the test's
// end stops it.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), ln: ln, target: target}
	p.wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			target, cut := p.target, p.cut
			p.mu.Unlock()
			if cut {
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			silent := new(atomic.Bool)
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.silent = append(p.silent, silent)
			p.mu.Unlock()
			p.wg.Go(func() { pipe(out, in, silent) })
			p.wg.Go(func() { pipe(in, out, silent) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.CloseAll()
		p.wg.Wait()
	})
	return p
}

func pipe(dst, src net.Conn, silent *atomic.Bool) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !silent.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Silence makes the open connections drop everything, without closing.
func (p *Proxy) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.silent {
		s.Store(true)
	}
}

// MoveTo closes the open connections and sends new ones to target.
func (p *Proxy) MoveTo(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
	p.CloseAll()
}

// Cut closes the open connections and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
	p.CloseAll()
}

// Restore lets new connections through again after Cut.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// CloseAll closes the open connections.
func (p *Proxy) CloseAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns, p.silent = nil, nil
}
