package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/signald/signald/client"
	"github.com/signald/signald/internal/protocol"
)

// wsConn is one WebSocket connection to signald, as a phone app holds it:
// a client.Conn (requests matched to replies by id, events handed to a
// callback in the order they arrive) that can also be dropped the way a
// lost network drops it (drop), which the fault injector needs. The
// harness does its own logins, resumes and de-duplication rather than
// client.Client's, because what it checks is what the server sent.
type wsConn struct {
	*client.Conn
	raw net.Conn // the TCP connection under it, for drop
}

// errNoReply is returned by call when the connection ended (or the wait
// for the reply ran out) before the reply came.
var errNoReply = errors.New("no reply")

// dialConn opens a connection to ws://addr/v1/ws whose frames other than
// replies go to onEvent, on the connection's reader goroutine, in order
// (it must not block). The reader runs until the connection ends; close or
// drop end it and wait.
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
	d := client.Dialer{HTTPClient: &http.Client{Transport: tr}, OnFrame: onEvent}
	c, err := d.Dial(ctx, "ws://"+addr+"/v1/ws")
	tr.CloseIdleConnections()
	if err != nil {
		return nil, err
	}
	return &wsConn{Conn: c, raw: raw}, nil
}

// call sends op with params and waits for its reply, at most
// requestTimeout. Without a reply it returns an error wrapping errNoReply.
func (c *wsConn) call(ctx context.Context, op string, params map[string]any) (*protocol.Frame, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	// A write whose context ends closes the connection (coder/websocket):
	// the app would reconnect then anyway.
	f, err := c.Call(ctx, op, params)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errNoReply, op, err)
	}
	return f, nil
}

// closed reports whether the connection has ended.
func (c *wsConn) closed() bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// closeStatus is the close code the connection ended with, -1 if none.
func (c *wsConn) closeStatus() int { return int(c.CloseStatus()) }

// close closes the connection with a close frame and waits for the reader.
func (c *wsConn) close() { _ = c.Close() }

// drop ends the connection the way a lost network does: no close frame,
// and a TCP reset rather than a FIN.
func (c *wsConn) drop() {
	if tc, ok := c.raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
		_ = tc.Close()
		<-c.Done()
	}
	c.CloseNow() // frees the library's state, and waits for the reader
}
