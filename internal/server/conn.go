package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/signald/signald/internal/protocol"
)

// conn is one WebSocket connection. Its reader is the HTTP handler's
// goroutine (run); its writer is the one goroutine that writes frames; a
// ping, when one is due, runs in a short-lived goroutine the writer owns.
// Every frame, reply or event, goes through sendq so that the writer alone
// decides the order and a slow client costs nobody else anything.
type conn struct {
	srv     *Server
	ws      *websocket.Conn
	session uint64
	limiter *rate.Limiter // owned by the reader

	user     string      // set by the reader at login, before loggedIn
	loggedIn atomic.Bool // written by the reader, read by the writer

	sendq chan []byte

	// reqMu is held by the reader while it serves a request, so that a
	// shutdown answers the request in flight before closing.
	reqMu   sync.Mutex
	stopped bool // guarded by reqMu: the reader serves no more requests

	// During login, live events wait in held so that the login reply and the
	// pending invitations go out first.
	holdMu  sync.Mutex
	holding bool     // guarded by holdMu
	held    [][]byte // guarded by holdMu

	stopOnce  sync.Once
	quit      chan struct{} // closed by stop
	stopCode  websocket.StatusCode
	stopWhy   string
	stopDrain bool // written once before quit is closed
}

func newConn(s *Server, ws *websocket.Conn) *conn {
	return &conn{
		srv:     s,
		ws:      ws,
		session: s.nextSes.Add(1),
		limiter: rate.NewLimiter(s.cfg.RateLimit, s.cfg.RateBurst),
		sendq:   make(chan []byte, s.cfg.SendQueue),
		quit:    make(chan struct{}),
	}
}

// Session implements push.Sink.
func (c *conn) Session() uint64 { return c.session }

// Send implements push.Sink: it queues a frame without ever blocking. A
// connection whose queue is full is too slow to keep up and is closed (1008).
func (c *conn) Send(frame []byte) bool {
	c.holdMu.Lock()
	if c.holding {
		defer c.holdMu.Unlock()
		if len(c.held) >= cap(c.sendq) {
			c.stop(websocket.StatusPolicyViolation, "too slow", false)
			return false
		}
		c.held = append(c.held, frame)
		return true
	}
	c.holdMu.Unlock()
	return c.enqueue(frame)
}

// enqueue queues a frame even after stop, so that a draining shutdown still
// writes the reply to the request in flight.
func (c *conn) enqueue(frame []byte) bool {
	select {
	case c.sendq <- frame:
		return true
	default:
	}
	select {
	case <-c.quit: // already closing; the frame is dropped with the connection
	default:
		c.srv.m.slowClosed.Inc()
		c.stop(websocket.StatusPolicyViolation, "too slow", false)
	}
	return false
}

// stop asks the writer to close the connection with code. With drain, the
// request in flight is answered and every queued frame written first.
func (c *conn) stop(code websocket.StatusCode, why string, drain bool) {
	c.stopOnce.Do(func() {
		c.stopCode, c.stopWhy, c.stopDrain = code, why, drain
		close(c.quit)
	})
}

// run serves the connection until it closes, and returns once the writer
// and every goroutine it started have ended.
func (c *conn) run() {
	ctx, cancel := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop(ctx)
	}()
	c.readLoop(ctx)
	// The peer went away or the writer closed the socket: make sure the
	// writer stops too, then leave the hub.
	c.stop(websocket.StatusNormalClosure, "", false)
	cancel()
	<-writerDone
	if c.loggedIn.Load() {
		c.srv.d.Hub.Unregister(c.user, c)
	}
}

func (c *conn) readLoop(ctx context.Context) {
	for {
		typ, frame, err := c.ws.Read(ctx)
		if err != nil {
			return
		}
		c.reqMu.Lock()
		if c.stopped {
			c.reqMu.Unlock()
			return
		}
		if typ != websocket.MessageText {
			c.reply(0, protocol.CodeInvalidParams, "frames must be UTF-8 text holding one JSON object", nil)
		} else {
			c.serve(ctx, frame)
		}
		c.reqMu.Unlock()
	}
}

func (c *conn) writeLoop(ctx context.Context) {
	login := time.NewTimer(c.srv.cfg.LoginDeadline)
	defer login.Stop()
	ping := time.NewTicker(c.srv.cfg.PingInterval)
	defer ping.Stop()
	var pingDone chan struct{} // non-nil while a ping is in flight
	pingCtx, cancelPing := context.WithCancel(ctx)
	defer func() {
		cancelPing()
		if pingDone != nil {
			<-pingDone
		}
	}()
	for {
		select {
		case frame := <-c.sendq:
			if !c.write(ctx, frame) {
				_ = c.ws.CloseNow()
				return
			}
		case <-login.C:
			if !c.loggedIn.Load() {
				c.stop(websocket.StatusPolicyViolation, "login deadline passed", false)
			}
		case <-ping.C:
			if pingDone == nil {
				pingDone = make(chan struct{})
				go func(done chan struct{}) {
					defer close(done)
					pctx, cancel := context.WithTimeout(pingCtx, c.srv.cfg.PingInterval)
					defer cancel()
					if c.ws.Ping(pctx) != nil && pingCtx.Err() == nil {
						_ = c.ws.CloseNow() // no pong: the peer is gone
					}
				}(pingDone)
			} else {
				select {
				case <-pingDone:
					pingDone = nil
				default:
				}
			}
		case <-c.quit:
			c.closeSocket(ctx)
			return
		}
	}
}

// closeSocket runs on the writer when stop was called.
func (c *conn) closeSocket(ctx context.Context) {
	if c.stopDrain {
		c.reqMu.Lock() // wait for the request in flight, if any
		c.stopped = true
		c.reqMu.Unlock()
		for {
			select {
			case frame := <-c.sendq:
				if !c.write(ctx, frame) {
					_ = c.ws.CloseNow()
					return
				}
				continue
			default:
			}
			break
		}
	}
	c.srv.m.closed.WithLabelValues(closeLabel(c.stopCode)).Inc()
	_ = c.ws.Close(c.stopCode, c.stopWhy)
}

func closeLabel(code websocket.StatusCode) string {
	switch code {
	case websocket.StatusPolicyViolation:
		return "policy"
	case websocket.StatusServiceRestart:
		return "restart"
	default:
		return "normal"
	}
}

func (c *conn) write(ctx context.Context, frame []byte) bool {
	wctx, cancel := context.WithTimeout(ctx, c.srv.cfg.WriteTimeout)
	defer cancel()
	return c.ws.Write(wctx, websocket.MessageText, frame) == nil
}

// reply queues the answer to request id.
func (c *conn) reply(id int64, code int, desc string, data any) {
	c.enqueue(protocol.Reply{ID: id, Code: code, Desc: desc, Data: data}.Encode())
}
