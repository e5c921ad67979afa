package server

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/signald/signald/internal/protocol"
)

// conn is one WebSocket connection. Its reader is the HTTP handler's
// goroutine (run). Its writer is a goroutine started when there is
// something to write and gone when the queue is empty, so that an idle
// connection costs one goroutine, not two; at most one runs at a time, and
// the last one closes the socket. Pings and the login deadline are runtime
// timers, not goroutines; a ping in flight runs in a short-lived goroutine.
// Every frame, reply or event, goes through the send queue so that the
// writer alone decides the order and a slow client costs nobody else
// anything.
type conn struct {
	srv     *Server
	ws      *websocket.Conn
	session uint64
	limiter *rate.Limiter // owned by the reader
	// Owned by the reader: frames read before login, requests refused in a
	// row by the limiter, and whether the login succeeded (the server no
	// longer counts the connection as unauthenticated).
	preLogin, limited int
	authed            bool

	user     string      // set by the reader at login, before loggedIn
	device   string      // the login's deviceID, "" for none; set by the reader at login, before the hub knows c
	loggedIn atomic.Bool // written by the reader, read by the writer
	watching bool        // owned by the reader: the bus delivers user's events here
	// foreground: the app is in front (doForeground, the default); a
	// device with a foreground connection is not pushed. Written by the
	// reader, read by the hub and the bus.
	foreground atomic.Bool

	// The send queue is a slice rather than a buffered channel so that an
	// idle connection holds no buffer at all. Its size is counted in bytes,
	// from enqueue until written: a client that reads is never closed for a
	// burst of small frames, and one that does not read holds at most
	// cfg.SendQueueBytes. writing says a writer goroutine runs (or will:
	// whoever sets it starts one). room (capacity 1) tells a paced sender
	// that the writer has written a batch.
	qmu     sync.Mutex
	queue   [][]byte // guarded by qmu
	pending int      // bytes queued or being written; guarded by qmu
	writing bool     // guarded by qmu
	room    chan struct{}

	// ctx is the writes' and pings' context, cancelled once the socket is
	// closed; bg counts the writer and ping goroutines, which run waits for.
	ctx       context.Context
	cancel    context.CancelFunc
	bg        sync.WaitGroup
	closed    chan struct{} // closed by the writer that closed the socket
	pinging   atomic.Bool   // a ping waits for its pong
	tmu       sync.Mutex    // guards the timers against run's end
	ended     bool          // guarded by tmu: run is done, no timer is re-armed
	pingTimer *time.Timer   // set by run before any timer can fire
	loginTime *time.Timer

	// reqMu is held by the reader while it serves a request, so that a
	// shutdown answers the request in flight before closing.
	reqMu   sync.Mutex
	stopped bool // guarded by reqMu: the reader serves no more requests

	// The connection's place in its user's sequence of kept events, and
	// the events that wait while it is being brought up to date (at login,
	// and in a catch-up after a gap): see sequence.go. Guarded by holdMu.
	holdMu    sync.Mutex
	holding   bool        // events go to held, not to the queue
	held      []heldEvent // in arrival order
	heldBytes int         // of the frames in held: at most cfg.SendQueueBytes
	lastID    string      // the newest kept eventID sent (or skipped as its own) here
	catching  bool        // a catch-up is requested or under way
	recheck   bool        // a gap was reported while holding: catch up once done
	catchTry  int         // failed catch-up attempts in a row

	stopOnce  sync.Once
	quit      chan struct{} // closed by stop
	stopWhy   closeReason
	stopDrain bool // written once before quit is closed
}

func newConn(s *Server, ws *websocket.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		ctx:     ctx,
		cancel:  cancel,
		srv:     s,
		ws:      ws,
		session: s.nextSes.Add(1),
		limiter: rate.NewLimiter(s.cfg.RateLimit, s.cfg.RateBurst),
		room:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		closed:  make(chan struct{}),
	}
}

// Session implements hub.Sink.
func (c *conn) Session() uint64 { return c.session }

// enqueue queues a frame even after stop, so that a draining shutdown still
// writes the reply to the request in flight. A full queue means the client
// is too slow: it is closed (1008) and the frame dropped.
func (c *conn) enqueue(frame []byte) bool {
	c.qmu.Lock()
	if c.pending+len(frame) > c.srv.cfg.SendQueueBytes {
		c.qmu.Unlock()
		select {
		case <-c.quit: // already closing; the frame goes with the connection
		default:
			c.srv.m.slowClosed.Inc()
			c.stop(closeTooSlow, false)
		}
		return false
	}
	c.queue = append(c.queue, frame)
	c.pending += len(frame)
	start := !c.writing
	c.writing = true
	c.qmu.Unlock()
	if start {
		c.startWriter()
	}
	return true
}

// startWriter starts the writer goroutine; the caller set writing.
func (c *conn) startWriter() {
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		c.writeLoop()
	}()
}

// written gives back the room of frames the writer wrote, and tells a
// paced sender.
func (c *conn) written(batch [][]byte) {
	n := 0
	for _, f := range batch {
		n += len(f)
	}
	c.qmu.Lock()
	c.pending -= n
	c.qmu.Unlock()
	select {
	case c.room <- struct{}{}:
	default:
	}
}

// waitRoom waits until n more bytes fit in half the send queue (the other
// half is left to live events and replies), and reports false when the
// client made no progress for a write timeout, or the connection is
// closing: a paced sender stops then.
func (c *conn) waitRoom(n int) bool {
	t := time.NewTimer(c.srv.cfg.WriteTimeout)
	defer t.Stop()
	for {
		c.qmu.Lock()
		fits := c.pending == 0 || c.pending+n <= c.srv.cfg.SendQueueBytes/2
		c.qmu.Unlock()
		if fits {
			return true
		}
		select {
		case <-c.room:
			t.Reset(c.srv.cfg.WriteTimeout) // progress
		case <-t.C:
			return false
		case <-c.quit:
			return false
		}
	}
}

// takeQueue hands the writer everything queued so far. spare is the
// previous batch's slice, reused so that a busy connection allocates none.
func (c *conn) takeQueue(spare [][]byte) [][]byte {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	batch := c.queue
	if len(batch) == 0 {
		return spare[:0]
	}
	clear(spare)
	c.queue = spare[:0]
	return batch
}

// stop asks the writer to close the connection with code. With drain, the
// request in flight is answered and every queued frame written first.
func (c *conn) stop(why closeReason, drain bool) {
	c.stopOnce.Do(func() {
		c.stopWhy, c.stopDrain = why, drain
		close(c.quit)
		// A writer, running or started now, sees quit and closes the socket.
		c.qmu.Lock()
		start := !c.writing
		c.writing = true
		c.qmu.Unlock()
		if start {
			c.startWriter()
		}
	})
}

// run serves the connection until it closes, and returns once the socket
// is closed and every goroutine and timer of the connection is done.
func (c *conn) run() {
	c.tmu.Lock() // ping reads pingTimer
	c.pingTimer = time.AfterFunc(c.srv.cfg.PingInterval, c.ping)
	c.loginTime = time.AfterFunc(c.srv.cfg.LoginDeadline, func() {
		if !c.loggedIn.Load() {
			c.stop(closeLoginDeadline, false)
		}
	})
	c.tmu.Unlock()
	if err := c.readLoop(c.ctx); err != nil {
		// The peer went away or closed (or broke the protocol, or sent a
		// frame over the read limit, which the library answered itself):
		// the socket is done for. Closing it now also frees a writer
		// blocked on a dead peer.
		why := closePeerGone
		if strings.Contains(err.Error(), "read limited at") {
			why = closeTooBig
		}
		c.stop(why, false)
		_ = c.ws.CloseNow()
	}
	// Else the reader stopped the connection itself, or the writer did:
	// the writer closes the socket, after what it was asked to drain.
	<-c.closed
	c.tmu.Lock()
	c.ended = true
	c.pingTimer.Stop()
	c.loginTime.Stop()
	c.tmu.Unlock()
	c.cancel()
	c.bg.Wait()
	if c.loggedIn.Load() {
		c.srv.d.Hub.Unregister(c.user, c)
		c.setForeground(false)
	}
	if c.watching {
		c.srv.d.Bus.Unwatch(c.user)
	}
}

// ping runs on the ping timer: one ping per interval, unless the last one
// still waits for its pong (it gives up at its own timeout, one interval
// after it was sent, and closes the connection).
func (c *conn) ping() {
	c.tmu.Lock()
	defer c.tmu.Unlock()
	if c.ended {
		return
	}
	c.pingTimer.Reset(c.srv.cfg.PingInterval)
	if !c.pinging.CompareAndSwap(false, true) {
		return
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		defer c.pinging.Store(false)
		pctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.PingInterval)
		defer cancel()
		if c.ws.Ping(pctx) != nil && c.ctx.Err() == nil {
			_ = c.ws.CloseNow() // no pong: the peer is gone
		}
	}()
}

// readLoop serves frames until the connection ends. It returns the read
// error when the peer ended it, nil when the connection was stopped (by
// the reader itself, the writer, or the server).
func (c *conn) readLoop(ctx context.Context) error {
	for {
		typ, frame, err := c.ws.Read(ctx)
		if err != nil {
			select {
			case <-c.quit:
				return nil // we closed it
			default:
				return err
			}
		}
		if typ == websocket.MessageText && !utf8.Valid(frame) {
			// RFC 6455 §8.1: a text frame must be UTF-8; the connection fails.
			c.stop(closeInvalidUTF8, false)
			return nil
		}
		if !c.loggedIn.Load() {
			// A stranger may try a few frames; then it must have logged in.
			if c.preLogin++; c.preLogin > c.srv.cfg.PreLoginFrames {
				c.stop(closeNoLogin, false)
				return nil
			}
		}
		c.reqMu.Lock()
		if c.stopped {
			c.reqMu.Unlock()
			return nil
		}
		if c.loggedIn.Load() {
			c.serve(ctx, typ, frame)
		} else {
			c.serveAside(ctx, typ, frame)
		}
		c.reqMu.Unlock()
	}
}

// serveAside is serve on a goroutine of its own, waited for: a login goes
// deep (the store, the bus), and the stack it grows would stay with the
// reader, which spends the connection's idle life blocked in a read with
// a shallow one. Its own goroutine's stack goes when it ends, which saves
// about 6 KiB per idle connection.
func (c *conn) serveAside(ctx context.Context, typ websocket.MessageType, frame []byte) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.serve(ctx, typ, frame)
	}()
	<-done
}

// writeLoop writes what is queued until the queue is empty, then ends:
// the next enqueue starts another. Once the connection is stopping, it
// closes the socket (closeSocket) and no writer runs again.
func (c *conn) writeLoop() {
	var batch [][]byte
	for {
		select {
		case <-c.quit:
			c.closeSocket(c.ctx)
			close(c.closed)
			return
		default:
		}
		c.qmu.Lock()
		if len(c.queue) == 0 {
			select {
			case <-c.quit:
				c.qmu.Unlock()
				continue // close it
			default:
			}
			c.writing = false
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
		batch = c.takeQueue(batch)
		if !c.writeAll(c.ctx, batch) {
			c.writeFailed()
			close(c.closed)
			return
		}
		c.written(batch)
	}
}

// closeSocket runs on the writer when stop was called.
func (c *conn) closeSocket(ctx context.Context) {
	switch c.stopWhy {
	case closePeerGone:
		_ = c.ws.CloseNow()
		return
	case closeTooBig: // the library sent the close
		c.srv.m.closed.WithLabelValues(closeTooBig.label).Inc()
		_ = c.ws.CloseNow()
		return
	}
	if c.stopDrain {
		c.reqMu.Lock() // wait for the request in flight, if any
		c.stopped = true
		c.reqMu.Unlock()
		if !c.writeAll(ctx, c.takeQueue(nil)) {
			c.writeFailed()
			return
		}
	}
	c.srv.m.closed.WithLabelValues(c.stopWhy.label).Inc()
	_ = c.ws.Close(c.stopWhy.code, c.stopWhy.text)
}

// writeAll writes a batch of frames, each within the write timeout (one
// timer serves the batch: the deadline moves on after every frame).
func (c *conn) writeAll(ctx context.Context, batch [][]byte) bool {
	if len(batch) == 0 {
		return true
	}
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := time.AfterFunc(c.srv.cfg.WriteTimeout, func() { cancel(errWriteTimeout) })
	defer t.Stop()
	for _, frame := range batch {
		if c.ws.Write(wctx, websocket.MessageText, frame) != nil {
			if context.Cause(wctx) == errWriteTimeout {
				// A client too slow to take one frame in a write timeout.
				c.stop(closeWriteTimeout, false)
			}
			return false
		}
		t.Reset(c.srv.cfg.WriteTimeout)
	}
	return true
}

var errWriteTimeout = errors.New("write timeout")

// writeFailed drops a socket the writer could not write to, and counts
// why: the reason the connection was being stopped for when the write
// failed (a close that could not be written is still a close), or none
// when its peer had gone.
func (c *conn) writeFailed() {
	c.stop(closePeerGone, false) // the write failed for a reason of its own
	switch why := c.stopWhy; why {
	case closePeerGone:
	case closeWriteTimeout:
		c.srv.m.closed.WithLabelValues(why.label).Inc()
		c.srv.m.slowClosed.Inc()
	default:
		c.srv.m.closed.WithLabelValues(why.label).Inc()
	}
	_ = c.ws.CloseNow()
}

// reply queues the answer to request id.
func (c *conn) reply(id int64, code int, desc string, data any) {
	c.enqueue(protocol.Reply{ID: id, Code: code, Desc: desc, Data: data}.Encode())
}
