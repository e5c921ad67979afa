package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/signald/signald/internal/protocol"
)

// wsConn is one WebSocket connection to signald, as a phone app holds it:
// requests matched to replies by id, events handed to a callback in the
// order they arrive. Unlike internal/client it can drop the connection the
// way a lost network does (drop), which the fault injector needs.
type wsConn struct {
	ws     *websocket.Conn
	raw    net.Conn // the TCP connection under ws, for drop
	nextID atomic.Int64

	mu      sync.Mutex
	waiting map[int64]chan *protocol.Frame // guarded by mu

	// onEvent gets every frame that is not the reply to a call, on the
	// reader goroutine, in order. It must not block.
	onEvent func(*protocol.Frame)
	done    chan struct{} // closed when the reader has stopped
	err     error         // why it stopped; set before done is closed
}

// errNoReply is returned by call when the connection ended (or the wait
// for the reply ran out) before the reply came.
var errNoReply = errors.New("no reply")

// dialConn opens a connection to ws://addr/v1/ws. Its reader goroutine
// runs until the connection ends; close or drop end it and wait.
func dialConn(ctx context.Context, addr string, onEvent func(*protocol.Frame)) (*wsConn, error) {
	var raw net.Conn
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, a)
		raw = c
		return c, err
	}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws", &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	tr.CloseIdleConnections()
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	c := &wsConn{ws: ws, raw: raw, waiting: make(map[int64]chan *protocol.Frame), onEvent: onEvent, done: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

func (c *wsConn) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		f := new(protocol.Frame)
		if err := json.Unmarshal(data, f); err != nil {
			c.err = fmt.Errorf("server sent a frame that is not JSON: %q", data)
			_ = c.ws.CloseNow()
			return
		}
		if !f.IsEvent() && f.ID > 0 {
			c.mu.Lock()
			ch := c.waiting[f.ID]
			delete(c.waiting, f.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- f // buffered
				continue
			}
		}
		c.onEvent(f)
	}
}

// call sends op with params and waits for its reply, at most
// requestTimeout. Without a reply it returns an error wrapping errNoReply.
func (c *wsConn) call(ctx context.Context, op string, params map[string]any) (*protocol.Frame, error) {
	id := c.nextID.Add(1)
	req := map[string]any{"id": id, "op": op}
	for k, v := range params {
		req[k] = v
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ch := make(chan *protocol.Frame, 1)
	c.mu.Lock()
	c.waiting[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	// A write whose context ends closes the connection (coder/websocket):
	// the app would reconnect then anyway.
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return nil, fmt.Errorf("%w: write %s: %v", errNoReply, op, err)
	}
	select {
	case f := <-ch:
		return f, nil
	case <-c.done:
		select { // the reply may have come just before the close
		case f := <-ch:
			return f, nil
		default:
		}
		return nil, fmt.Errorf("%w: connection closed before the reply to %s: %v", errNoReply, op, c.err)
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %s: %v", errNoReply, op, ctx.Err())
	}
}

// closed reports whether the connection has ended.
func (c *wsConn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// closeStatus is the close code the connection ended with, -1 if none.
func (c *wsConn) closeStatus() int {
	if !c.closed() {
		return -1
	}
	return int(websocket.CloseStatus(c.err))
}

// close closes the connection with a close frame and waits for the reader.
func (c *wsConn) close() {
	_ = c.ws.Close(websocket.StatusNormalClosure, "")
	_ = c.ws.CloseNow() // in case the handshake did not finish
	<-c.done
}

// drop ends the connection the way a lost network does: no close frame,
// and a TCP reset rather than a FIN.
func (c *wsConn) drop() {
	if tc, ok := c.raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
		_ = tc.Close()
	} else {
		_ = c.ws.CloseNow()
	}
	<-c.done
	_ = c.ws.CloseNow() // frees the library's state
}
