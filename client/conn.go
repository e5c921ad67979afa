package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/signald/signald/internal/protocol"
)

// Frame is one frame the server sent: a reply (ID > 0, or ID 0 for the
// reply to a frame without a usable id) or an event (Event != "").
type Frame = protocol.Frame

// Conn is one WebSocket connection, the low level of this package: it
// sends requests as they are given, matches replies to them by id and hands
// everything else (events, and replies with id 0) out in arrival order,
// through Next or a Dialer's OnFrame. It does not log in, reconnect or drop
// duplicates; Client does.
//
// Its reader goroutine runs until the connection ends; Close and CloseNow
// stop it and wait.
type Conn struct {
	ws      *websocket.Conn
	nextID  atomic.Int64
	onFrame func(*Frame) // nil: frames go to the frames channel

	mu      sync.Mutex
	waiting map[int64]chan *Frame // guarded by mu

	frames chan *Frame // events and unmatched replies, in arrival order (onFrame nil)
	done   chan struct{}
	err    error // why the reader stopped; set before done is closed
}

// A Dialer opens connections. The zero value is ready to use.
type Dialer struct {
	// HTTPClient opens the connection (its Transport's DialContext, TLS
	// settings, proxy). Nil: http.DefaultClient.
	HTTPClient *http.Client
	// Header is sent with the upgrade request.
	Header http.Header
	// ReadLimit is the largest frame accepted from the server, in bytes;
	// 0 means 1 MiB. A larger frame ends the connection.
	ReadLimit int64
	// OnFrame, if set, gets every frame that is not the reply to a Call,
	// on the connection's reader goroutine and in arrival order, instead
	// of Next. It must not block and must not call the Conn's methods that
	// wait for a reply: the reader waits for it, and reads no reply
	// meanwhile.
	OnFrame func(*Frame)
}

// frameBuffer is how many frames Next may be behind the reader before the
// reader waits (and the server, in time, closes the connection as too
// slow).
const frameBuffer = 4096

// Dial connects to a signald WebSocket URL such as ws://127.0.0.1:8080/v1/ws
// with a zero Dialer.
func Dial(ctx context.Context, url string) (*Conn, error) {
	var d Dialer
	return d.Dial(ctx, url)
}

// Dial connects to a signald WebSocket URL. ctx bounds the connection's
// opening only.
func (d *Dialer) Dial(ctx context.Context, url string) (*Conn, error) {
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: d.HTTPClient, HTTPHeader: d.Header})
	if err != nil {
		return nil, err
	}
	limit := d.ReadLimit
	if limit <= 0 {
		limit = 1 << 20
	}
	ws.SetReadLimit(limit)
	c := &Conn{
		ws:      ws,
		onFrame: d.OnFrame,
		waiting: make(map[int64]chan *Frame),
		done:    make(chan struct{}),
	}
	if c.onFrame == nil {
		c.frames = make(chan *Frame, frameBuffer)
	}
	go c.readLoop()
	return c, nil
}

func (c *Conn) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		f := new(Frame)
		if err := json.Unmarshal(data, f); err != nil {
			c.err = fmt.Errorf("server sent a frame that is not JSON: %.200q", data)
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
		if c.onFrame != nil {
			c.onFrame(f)
		} else {
			c.frames <- f
		}
	}
}

// errNotSent is wrapped by call's error when the request was not written
// whole: it cannot have taken effect.
var errNotSent = errors.New("request not sent")

// Call sends op with params and waits for its reply; the reply's Code says
// whether the op succeeded. It fails when the request cannot be written,
// ctx ends, or the connection ends before the reply (the request may then
// have taken effect or not).
func (c *Conn) Call(ctx context.Context, op string, params map[string]any) (*Frame, error) {
	return c.call(ctx, ctx, op, params)
}

// call is Call with the write under wctx, so that Client can write under a
// context of its own: coder/websocket closes a connection whose write's
// context ends.
func (c *Conn) call(ctx, wctx context.Context, op string, params map[string]any) (*Frame, error) {
	id := c.nextID.Add(1)
	req := make(map[string]any, len(params)+2)
	for k, v := range params {
		req[k] = v
	}
	req["id"], req["op"] = id, op
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ch := make(chan *Frame, 1)
	c.mu.Lock()
	c.waiting[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
	}()
	if err := c.ws.Write(wctx, websocket.MessageText, b); err != nil {
		// The frame did not get out whole (the connection had ended, or
		// the write's context did, which closes it), so the server cannot
		// have served it.
		return nil, fmt.Errorf("%s: %w: %w", op, errNotSent, err)
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
		return nil, fmt.Errorf("connection closed before the reply to %s: %w", op, c.err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Login logs in as user with userSig sig, without lastEventID or deviceID,
// and returns the reply.
func (c *Conn) Login(ctx context.Context, user, sig string) (*Frame, error) {
	return c.Call(ctx, protocol.OpLogin, map[string]any{"userID": user, "userSig": sig})
}

// WriteRaw sends a frame as it is, for tests of malformed input.
func (c *Conn) WriteRaw(ctx context.Context, typ websocket.MessageType, data []byte) error {
	return c.ws.Write(ctx, typ, data)
}

// Next returns the next frame that is not the reply to a Call: an event, or
// a reply to a raw frame. It fails once the connection has ended and every
// frame read before has been taken, or when ctx ends. With a Dialer's
// OnFrame set, frames go there and Next only waits for the end.
func (c *Conn) Next(ctx context.Context) (*Frame, error) {
	select {
	case f := <-c.frames:
		return f, nil
	default:
	}
	select {
	case f := <-c.frames:
		return f, nil
	case <-c.done:
		select {
		case f := <-c.frames:
			return f, nil
		default:
		}
		return nil, fmt.Errorf("connection closed: %w", c.err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Pending returns how many frames are waiting to be taken with Next.
func (c *Conn) Pending() int { return len(c.frames) }

// Ping sends a WebSocket ping and waits for the pong (which the reader
// receives), or for ctx to end.
func (c *Conn) Ping(ctx context.Context) error { return c.ws.Ping(ctx) }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

func (c *Conn) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// CloseStatus is the WebSocket close code the server ended the connection
// with, or -1 when it ended otherwise (or has not ended).
func (c *Conn) CloseStatus() websocket.StatusCode {
	if !c.ended() {
		return -1
	}
	return websocket.CloseStatus(c.err)
}

// closeReason is the reason of the server's close frame, "" without one.
func (c *Conn) closeReason() string {
	var ce websocket.CloseError
	if c.ended() && errors.As(c.err, &ce) {
		return ce.Reason
	}
	return ""
}

// Err is why the connection ended (nil while it is open).
func (c *Conn) Err() error {
	if !c.ended() {
		return nil
	}
	return c.err
}

// Close closes the connection with a normal closure and waits for the
// reader.
func (c *Conn) Close() error {
	err := c.ws.Close(websocket.StatusNormalClosure, "")
	_ = c.ws.CloseNow() // in case the handshake did not finish
	<-c.done
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// CloseNow ends the connection without a closing handshake, as a lost
// network does to the server, and waits for the reader.
func (c *Conn) CloseNow() {
	_ = c.ws.CloseNow()
	<-c.done
}
