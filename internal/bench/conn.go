package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/signald/signald/internal/auth"
)

// Handler receives what a connection reads. Both methods run on the
// connection's reader goroutine, so for one connection they are never
// called concurrently; a handler shared by many connections guards its own
// state. Handlers must not block: a slow handler stalls that connection's
// reads, and the server closes a connection that does not keep up.
type Handler interface {
	// HandleFrame gets every frame after the login reply. f and its slices
	// are valid only during the call.
	HandleFrame(c *Conn, f *Frame)
	// HandleClose is called once when the connection ends without Close
	// having been called (the server closed it, or the network failed).
	HandleClose(c *Conn, err error)
}

// Conn is one logged-in connection with a single reader goroutine, which
// runs from Connect until the connection ends; Close ends it and waits.
// Writes may come from any goroutine (the WebSocket library serialises
// them).
type Conn struct {
	User  string
	Index int // the scenario's number for this connection

	ws      *websocket.Conn
	h       Handler
	nextID  atomic.Int64
	closing atomic.Bool
	done    chan struct{}
}

// NextID returns a fresh request id. Callers record it in their state
// before sending, because the reply can arrive before Send returns.
func (c *Conn) NextID() int64 { return c.nextID.Add(1) }

// Done is closed once the reader goroutine has stopped.
func (c *Conn) Done() <-chan struct{} { return c.done }

// bufPool holds request buffers: requests are built and written without
// allocating.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// write sends one text frame. It uses a context that is never done on
// purpose: the WebSocket library closes the connection when a write's
// context ends, and the bench stops a stuck write by closing the
// connection itself (CloseNow) at the end of a run.
func (c *Conn) write(b []byte) error {
	return c.ws.Write(context.Background(), websocket.MessageText, b)
}

// SendInvite sends a one-to-one invite with request id id.
func (c *Conn) SendInvite(id int64, invitee, data string, timeout int) error {
	bp := bufPool.Get().(*[]byte)
	*bp = AppendInvite((*bp)[:0], id, invitee, data, timeout)
	err := c.write(*bp)
	bufPool.Put(bp)
	return err
}

// SendInviteInGroup sends a group invite; inviteeList is a JSON array.
func (c *Conn) SendInviteInGroup(id int64, groupID string, inviteeList []byte, data string, timeout int) error {
	bp := bufPool.Get().(*[]byte)
	*bp = AppendInviteInGroup((*bp)[:0], id, groupID, inviteeList, data, timeout)
	err := c.write(*bp)
	bufPool.Put(bp)
	return err
}

// SendAnswer sends accept, reject or cancel for inviteID.
func (c *Conn) SendAnswer(id int64, op, inviteID string) error {
	bp := bufPool.Get().(*[]byte)
	*bp = AppendAnswer((*bp)[:0], id, op, inviteID)
	err := c.write(*bp)
	bufPool.Put(bp)
	return err
}

// Close closes the connection with a normal closure and waits for the
// reader. HandleClose is not called.
func (c *Conn) Close() {
	c.closing.Store(true)
	_ = c.ws.Close(websocket.StatusNormalClosure, "")
	<-c.done
}

// CloseNow drops the connection without a closing handshake and waits for
// the reader.
func (c *Conn) CloseNow() {
	c.closing.Store(true)
	_ = c.ws.CloseNow()
	<-c.done
}

// readLoop reads frames into one reused buffer and hands them to the
// handler until the connection ends.
func (c *Conn) readLoop() {
	defer close(c.done)
	var buf []byte
	var f Frame
	for {
		typ, r, err := c.ws.Reader(context.Background())
		if err == nil {
			buf, err = readAll(r, buf[:0])
		}
		if err == nil && typ != websocket.MessageText {
			err = errors.New("server sent a binary frame")
		}
		if err == nil && ParseFrame(buf, &f) != nil {
			err = fmt.Errorf("server sent a malformed frame: %.200q", buf)
		}
		if err != nil {
			if !c.closing.Load() {
				c.h.HandleClose(c, err)
			}
			_ = c.ws.CloseNow()
			return
		}
		c.h.HandleFrame(c, &f)
		if cap(buf) > 64<<10 { // keep no rare huge frame's buffer for good
			buf = nil
		}
	}
}

// readAll appends everything r yields to buf.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	if cap(buf) == 0 {
		buf = make([]byte, 0, 512)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// LoginError is a login answered with a non-zero code.
type LoginError struct {
	Code int
	Desc string
}

func (e *LoginError) Error() string { return fmt.Sprintf("login: code %d: %s", e.Code, e.Desc) }

// Dialer opens authenticated connections. With several source addresses it
// binds connection i to 127.0.0.(i mod K + 1): one source address has only
// about 28,000 ephemeral ports towards one server port, and TIME_WAIT from
// earlier runs eats into them, so spreading lifts the cap on connections.
type Dialer struct {
	URL string
	// OtherURL, when set, takes the odd-numbered connections (the callees:
	// users are numbered caller, callee, caller, ...).
	OtherURL     string
	Secret       []byte
	LoginTimeout time.Duration
	clients      []*http.Client
	// SourceAddrs are the bound local addresses ("" entries: unbound).
	SourceAddrs []string
}

// NewDialer prepares clients for srcAddrs source addresses. Binding is done
// only when the server is on an IPv4 loopback address (127.0.0.0/8 is all
// local on Linux); otherwise one unbound client is used.
func NewDialer(wsURL string, secret []byte, srcAddrs int) (*Dialer, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, fmt.Errorf("url %q: %w", wsURL, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("url %q: want ws:// or wss://", wsURL)
	}
	d := &Dialer{URL: wsURL, Secret: secret, LoginTimeout: 10 * time.Second}
	ip := net.ParseIP(u.Hostname())
	if srcAddrs <= 1 || ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		d.clients = []*http.Client{{Transport: newTransport(nil)}}
		d.SourceAddrs = []string{""}
		return d, nil
	}
	for k := range min(srcAddrs, 254) {
		local := net.IPv4(127, 0, 0, byte(k+1))
		d.clients = append(d.clients, &http.Client{Transport: newTransport(&net.TCPAddr{IP: local})})
		d.SourceAddrs = append(d.SourceAddrs, local.String())
	}
	return d, nil
}

// newTransport returns a transport that never uses a proxy (the
// environment's proxy settings must not divert load traffic) and binds to
// local when it is set.
func newTransport(local *net.TCPAddr) *http.Transport {
	nd := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if local != nil {
		nd.LocalAddr = local
	}
	return &http.Transport{
		Proxy:               nil,
		DialContext:         nd.DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
	}
}

// Connect dials, logs user in and starts the reader, which hands every
// later frame to h. A login answered with an error code returns a
// *LoginError.
func (d *Dialer) Connect(ctx context.Context, index int, user string, h Handler) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.LoginTimeout)
	defer cancel()
	url := d.URL
	if d.OtherURL != "" && index%2 == 1 {
		url = d.OtherURL
	}
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: d.clients[index%len(d.clients)]})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	sig, err := auth.Mint(d.Secret, user, 24*time.Hour, time.Now())
	if err != nil {
		_ = ws.CloseNow()
		return nil, err
	}
	if err := ws.Write(ctx, websocket.MessageText, AppendLogin(nil, 1, user, sig)); err != nil {
		_ = ws.CloseNow()
		return nil, err
	}
	_, reply, err := ws.Read(ctx)
	if err != nil {
		_ = ws.CloseNow()
		return nil, fmt.Errorf("login reply: %w", err)
	}
	var f Frame
	if err := ParseFrame(reply, &f); err != nil || f.ID != 1 {
		_ = ws.CloseNow()
		return nil, fmt.Errorf("login: unexpected first frame %.200q", reply)
	}
	if f.Code != 0 {
		_ = ws.CloseNow()
		return nil, &LoginError{Code: f.Code, Desc: string(f.Desc)}
	}
	c := &Conn{User: user, Index: index, ws: ws, h: h, done: make(chan struct{})}
	c.nextID.Store(1)
	go c.readLoop()
	return c, nil
}

// ConnectMany connects users[i] as connection i, at most conc at a time,
// recording each connect-and-login time in lat. Failures are counted in
// errs and leave a nil entry. It stops early when ctx ends. progress, if
// not nil, counts established connections as they come.
func (d *Dialer) ConnectMany(ctx context.Context, users []string, h Handler, conc int, errs *ErrorCounter, lat *Histogram, progress *atomic.Int64) []*Conn {
	conns := make([]*Conn, len(users))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(conc, len(users))) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(users) {
					return
				}
				start := time.Now()
				c, err := d.Connect(ctx, i, users[i], h)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(classifyConnectErr(err))
					}
					continue
				}
				lat.Record(time.Since(start))
				conns[i] = c
				if progress != nil {
					progress.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return conns
}

// CloseAll closes every non-nil connection, conc at a time, gracefully
// while ctx lasts and abruptly after, so that teardown is bounded.
func CloseAll(ctx context.Context, conns []*Conn, conc int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(conc, len(conns))) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				c := conns[i]
				if c == nil {
					continue
				}
				if ctx.Err() != nil {
					c.CloseNow()
					continue
				}
				c.closing.Store(true)
				closed := make(chan struct{})
				stop := context.AfterFunc(ctx, func() { _ = c.ws.CloseNow(); close(closed) })
				_ = c.ws.Close(websocket.StatusNormalClosure, "")
				if !stop() {
					<-closed
				}
				<-c.done
			}
		})
	}
	wg.Wait()
}
