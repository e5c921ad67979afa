// Package client is a Go client of signald's wire protocol, for tests and
// the load tool: it sends requests, matches replies to them by id and hands
// everything else (events, and replies with id 0) out in order.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/signald/signald/internal/protocol"
)

// Client is one connection. Its reader goroutine runs until the connection
// closes; Close stops it and waits.
type Client struct {
	ws     *websocket.Conn
	nextID atomic.Int64

	mu      sync.Mutex
	waiting map[int64]chan *protocol.Frame // guarded by mu

	frames chan *protocol.Frame // events and unmatched replies, in arrival order
	done   chan struct{}
	err    error // why the reader stopped; set before done is closed
}

// Dial connects to a signald WebSocket URL such as ws://127.0.0.1:8080/v1/ws.
func Dial(ctx context.Context, url string) (*Client, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	c := &Client{
		ws:      ws,
		waiting: make(map[int64]chan *protocol.Frame),
		frames:  make(chan *protocol.Frame, 4096),
		done:    make(chan struct{}),
	}
	go c.readLoop()
	return c, nil
}

func (c *Client) readLoop() {
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
				ch <- f
				continue
			}
		}
		c.frames <- f
	}
}

// Call sends op with params and waits for its reply.
func (c *Client) Call(ctx context.Context, op string, params map[string]any) (*protocol.Frame, error) {
	id := c.nextID.Add(1)
	req := map[string]any{"id": id, "op": op}
	for k, v := range params {
		req[k] = v
	}
	ch := make(chan *protocol.Frame, 1)
	c.mu.Lock()
	c.waiting[id] = ch
	c.mu.Unlock()
	b, err := json.Marshal(req)
	if err == nil {
		err = c.ws.Write(ctx, websocket.MessageText, b)
	}
	if err != nil {
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
		return nil, err
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

// Login logs in and returns the reply.
func (c *Client) Login(ctx context.Context, user, sig string) (*protocol.Frame, error) {
	return c.Call(ctx, protocol.OpLogin, map[string]any{"userID": user, "userSig": sig})
}

// WriteRaw sends a frame as it is, for tests of malformed input.
func (c *Client) WriteRaw(ctx context.Context, typ websocket.MessageType, data []byte) error {
	return c.ws.Write(ctx, typ, data)
}

// Next returns the next frame that is not the reply to a Call: an event, or
// a reply to a raw frame.
func (c *Client) Next(ctx context.Context) (*protocol.Frame, error) {
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
func (c *Client) Pending() int { return len(c.frames) }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// CloseStatus is the WebSocket close code the server ended the connection
// with, or -1 when it ended otherwise (or has not ended).
func (c *Client) CloseStatus() websocket.StatusCode {
	select {
	case <-c.done:
		return websocket.CloseStatus(c.err)
	default:
		return -1
	}
}

// Err is why the connection ended (nil while it is open).
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close closes the connection and waits for the reader.
func (c *Client) Close() error {
	err := c.ws.Close(websocket.StatusNormalClosure, "")
	<-c.done
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
