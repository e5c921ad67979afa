package server

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// refusal is what a connection over the cap gets: a whole HTTP answer, so
// that a client (a load balancer's health check, a browser) reads a reason
// rather than a reset, and retries elsewhere.
const refusal = "HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Connection: close\r\n" +
	"Retry-After: 1\r\n" +
	"Content-Length: 30\r\n\r\n" +
	"server at its connection limit"

// Listener returns ln with the server's connection cap applied: at most
// Config.MaxConnections TCP connections are open at once (WebSockets, and
// HTTP requests too); one more is answered 503 and closed at once, without
// reaching the HTTP server. The cap sits below the process's file limit,
// so a full server keeps a descriptor for the refusal, and for Redis: its
// connections keep working, and it never stalls in accept(2) on EMFILE.
func (s *Server) Listener(ln net.Listener) net.Listener {
	if s.cfg.MaxConnections <= 0 {
		return ln
	}
	return &capListener{Listener: ln, max: int64(s.cfg.MaxConnections), m: s.m}
}

type capListener struct {
	net.Listener
	max  int64
	open atomic.Int64
	m    *metrics
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.m.refused.WithLabelValues("connections").Inc()
			go refuse(c)
			continue
		}
		return &cappedConn{Conn: c, l: l}, nil
	}
}

// refuse reads the request's head, answers it with the refusal and closes
// c, bounded in time: a client that neither sends nor reads cannot hold
// the descriptor. Answering before the request has arrived would look to
// an HTTP client like a stray response on an idle connection.
func refuse(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4096)
	n := 0
	for n < len(buf) && !bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			break
		}
	}
	_, _ = c.Write([]byte(refusal))
	_ = c.Close()
}

// cappedConn gives its place back once, however often it is closed.
type cappedConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *cappedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
