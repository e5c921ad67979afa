// Package server is signald's edge: the HTTP surface (the WebSocket endpoint,
// the admin API, health, readiness and metrics) and the per-connection
// protocol loop that turns frames into Engine calls and events into frames.
package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/signald/signald/internal/bus"
	"github.com/signald/signald/internal/device"
	"github.com/signald/signald/internal/group"
	"github.com/signald/signald/internal/hub"
	"github.com/signald/signald/internal/invite"
)

// Engine is what the connection loop needs of invite.Engine.
type Engine interface {
	Invite(ctx context.Context, c invite.Caller, req invite.InviteRequest) (string, error)
	Accept(ctx context.Context, c invite.Caller, id, data string) error
	Reject(ctx context.Context, c invite.Caller, id, data string) error
	Cancel(ctx context.Context, c invite.Caller, id, data string) error
	Modify(ctx context.Context, c invite.Caller, id, data string) error
	Get(ctx context.Context, c invite.Caller, id string) (*invite.Invitation, error)
	Pending(ctx context.Context, user string) ([]*invite.Invitation, error)
}

// Verifier checks a login's userSig (auth.Verifier).
type Verifier interface {
	Verify(userID, userSig string) error
}

// Health reports whether the store can serve, for /readyz: nil while it
// can (health.Monitor, which pings it in the background).
type Health interface {
	Err() error
}

// Config holds the connection limits. Zero values are not defaults: use
// DefaultConfig and override.
type Config struct {
	LoginDeadline  time.Duration // close (1008) a connection not logged in by then
	ReadLimit      int64         // largest frame accepted (1009 beyond)
	SendQueueBytes int           // bytes queued per connection (or held during its login) before it counts as too slow (1008)
	WriteTimeout   time.Duration // one frame's write
	PingInterval   time.Duration // WebSocket pings; a missed pong closes the connection
	RequestTimeout time.Duration // one request's store work
	RateLimit      rate.Limit    // requests per second per connection (60018 beyond)
	RateBurst      int
	OriginPatterns []string // browser origins allowed besides the server's own host
	// TrustedProxies are the load balancers whose X-Forwarded-For names the
	// client in logs (clientAddr); none: the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// CloseBatch and CloseInterval pace Shutdown: connections are closed
	// (1012) CloseBatch at a time, one batch per CloseInterval, so that the
	// clients of a restarting instance do not all reconnect at once.
	CloseBatch    int
	CloseInterval time.Duration
	// CatchUpRate and CatchUpCheckBatch pace the catch-up after a Pub/Sub
	// gap: at most CatchUpRate replays a second, and users checked
	// CatchUpCheckBatch per round trip.
	CatchUpRate       int
	CatchUpCheckBatch int
	// MaxConnections caps the open TCP connections (Listener); 0: no cap.
	MaxConnections int
	// Before login a connection may send at most PreLoginFrames frames of
	// at most PreLoginReadLimit bytes, and at most MaxUnauthenticated
	// connections may be waiting to log in: a stranger costs little.
	PreLoginFrames     int
	PreLoginReadLimit  int64
	MaxUnauthenticated int
}

// DefaultConfig returns the protocol's defaults.
func DefaultConfig() Config {
	return Config{
		LoginDeadline:  10 * time.Second,
		ReadLimit:      64 << 10,
		SendQueueBytes: 4 << 20,
		WriteTimeout:   10 * time.Second,
		PingInterval:   25 * time.Second,
		RequestTimeout: 5 * time.Second,
		RateLimit:      100,
		RateBurst:      200,
		CloseBatch:     500,
		CloseInterval:  100 * time.Millisecond,

		CatchUpRate:       2000,
		CatchUpCheckBatch: 500,

		PreLoginFrames:     4,
		PreLoginReadLimit:  4 << 10,
		MaxUnauthenticated: 4096,
	}
}

func (c Config) validate() error {
	switch {
	case c.LoginDeadline <= 0, c.WriteTimeout <= 0, c.PingInterval <= 0, c.RequestTimeout <= 0:
		return errors.New("server: durations must be positive")
	case c.ReadLimit < 1024:
		return errors.New("server: read limit must be at least 1 KiB")
	case c.SendQueueBytes < 256<<10:
		return errors.New("server: the send queue must hold at least 256 KiB (a few of the largest frames)")
	case c.RateLimit <= 0 || c.RateBurst < 1:
		return errors.New("server: rate limit and burst must be positive")
	case c.CloseBatch < 1 || c.CloseInterval < 0:
		return errors.New("server: close batch must be positive and close interval not negative")
	case c.CatchUpRate < 1 || c.CatchUpCheckBatch < 1:
		return errors.New("server: catch-up rate and check batch must be positive")
	case c.MaxConnections < 0:
		return errors.New("server: max connections must not be negative")
	case c.PreLoginFrames < 1 || c.PreLoginReadLimit < 1024 || c.MaxUnauthenticated < 1:
		return errors.New("server: pre-login frames, read limit (at least 1 KiB) and unauthenticated connections must be positive")
	}
	return nil
}

// Deps are the server's collaborators; all are required but Node and Demo.
type Deps struct {
	// Node names this instance among those sharing the bus: a connection
	// here is (Node, its session) in the Origin of the events it causes.
	Node     string
	Engine   Engine
	Hub      *hub.Hub
	Bus      bus.Bus
	Verifier Verifier
	Health   Health
	Groups   group.Store // group membership, for the admin API
	// Devices keeps device registrations; PushEnabled says which platforms
	// have credentials here (a registration for another is refused).
	Devices     Devices
	PushEnabled func(device.Platform) bool
	// AdminToken guards the admin API (/v1/groups/..., /v1/users/...).
	AdminToken string
	Logger     *slog.Logger
	Registry   prometheus.Registerer
	Gatherer   prometheus.Gatherer // what /metrics serves

	// Demo serves the demo page under /demo on the public listener
	// (internal/demo); nil: no demo.
	Demo http.Handler
}

// Server serves signald's HTTP surface and owns every WebSocket connection it
// accepted: Shutdown closes them and waits for their goroutines.
type Server struct {
	cfg         Config
	d           Deps
	log         *slog.Logger
	m           *metrics
	nextSes     atomic.Uint64
	unauth      atomic.Int64 // WebSocket connections not logged in (yet)
	catcher     *catcher
	stopCatcher context.CancelFunc
	adminAPI    http.Handler
	originLog   onceAMinute

	mu       sync.Mutex
	conns    map[*conn]struct{} // guarded by mu
	draining bool               // guarded by mu; set by Drain: /readyz says 503, all else goes on
	closing  bool               // guarded by mu; set once by Shutdown
	wg       sync.WaitGroup     // one per accepted connection
}

// New checks cfg and deps and registers the server's metrics.
func New(cfg Config, d Deps) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if d.Engine == nil || d.Hub == nil || d.Bus == nil || d.Verifier == nil || d.Health == nil || d.Groups == nil || d.Devices == nil || d.PushEnabled == nil ||
		d.Logger == nil || d.Registry == nil || d.Gatherer == nil {
		return nil, errors.New("server: every dependency is required")
	}
	m, err := newMetrics(d.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, d: d, log: d.Logger, m: m, conns: make(map[*conn]struct{})}
	s.adminAPI = s.newAdminAPI()
	s.catcher = newCatcher(s)
	if err := d.Registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "signald_unauthenticated_connections",
		Help: "WebSocket connections not logged in (yet), at most SIGNALD_MAX_UNAUTHENTICATED.",
	}, func() float64 { return float64(s.unauth.Load()) })); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopCatcher = cancel
	go s.catcher.run(ctx)
	return s, nil
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	s.mu.Lock()
	closing := s.closing || s.draining
	s.mu.Unlock()
	if closing {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("shutting down\n"))
		return
	}
	if err := s.d.Health.Err(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("store unreachable\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if closing {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	handedOff := false
	defer func() {
		if !handedOff {
			s.wg.Done()
		}
	}()
	// Counted from before the upgrade until the login succeeds or the
	// connection ends, whichever first.
	if s.unauth.Add(1) > int64(s.cfg.MaxUnauthenticated) {
		s.unauth.Add(-1)
		s.m.refused.WithLabelValues("unauthenticated").Inc()
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many connections waiting to log in", http.StatusServiceUnavailable)
		return
	}
	if !s.originAllowed(r) {
		s.unauth.Add(-1)
		s.refuseOrigin(w, r)
		return
	}
	ws, err := websocket.Accept(smallBuffers{w}, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.OriginPatterns})
	if err != nil {
		s.unauth.Add(-1)
		return // Accept has answered the client
	}
	ws.SetReadLimit(s.cfg.PreLoginReadLimit)
	c := newConn(s, ws)
	s.mu.Lock()
	if s.closing { // Shutdown began while we upgraded
		s.mu.Unlock()
		s.unauth.Add(-1)
		_ = ws.Close(websocket.StatusServiceRestart, "server restart")
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.m.wsOpen.Inc()
	// The connection is hijacked: the HTTP server needs this goroutine no
	// more. The connection's reader gets a goroutine of its own, whose stack
	// is as small as reading needs, rather than keep this one, whose stack
	// grew with the HTTP server's and the router's frames. Shutdown waits
	// for it (wg).
	handedOff = true
	go func() {
		defer s.wg.Done()
		c.run()
		if !c.authed {
			s.unauth.Add(-1)
		}
		s.m.wsOpen.Dec()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// The bufio buffers of an upgraded connection. net/http hands a hijacked
// connection 4 KiB for each; a signaling connection idles almost always
// and its frames are small, so a kilobyte to read into and two to write
// from serve it as well for a quarter of the memory (larger frames pass
// through bufio unbuffered).
const (
	upgradeReadBuffer  = 1 << 10
	upgradeWriteBuffer = 2 << 10
)

// smallBuffers is the ResponseWriter of a WebSocket upgrade, whose Hijack
// gives the connection small bufio buffers (upgradeReadBuffer,
// upgradeWriteBuffer) in place of net/http's.
type smallBuffers struct {
	http.ResponseWriter
}

// Hijack hijacks the underlying connection and wraps it in small buffers,
// keeping what net/http had read ahead (a client may send its first frame
// with the upgrade request) and writing what it had buffered.
func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Writer.Buffered() > 0 {
		if err := brw.Writer.Flush(); err != nil {
			nc.Close()
			return nil, nil, err
		}
	}
	br := bufio.NewReaderSize(nc, upgradeReadBuffer)
	if n := brw.Reader.Buffered(); n > 0 {
		// What was read ahead must be in br's buffer, not behind it:
		// websocket.Accept takes br's buffered bytes and resets br onto nc.
		ahead, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(ahead)), nc), max(upgradeReadBuffer, n))
		if _, err := br.Peek(n); err != nil {
			nc.Close()
			return nil, nil, err
		}
	}
	return nc, bufio.NewReadWriter(br, bufio.NewWriterSize(nc, upgradeWriteBuffer)), nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// CatchUp brings every connection of users on this instance up to date:
// the bus calls for it when it may have missed events for them (its
// subscription connection broke and was restored). Each connection that
// is behind replays what it missed; only those whose missed events are no
// longer kept are closed (1012) for their clients to resume. It does not
// block: the work is paced by the server's catcher.
func (s *Server) CatchUp(users []string) {
	s.catcher.check(users)
}

// connsOf returns the logged-in connections of users here, by user.
func (s *Server) connsOf(users []string) map[string][]*conn {
	set := make(map[string]bool, len(users))
	for _, u := range users {
		set[u] = true
	}
	out := make(map[string][]*conn)
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.loggedIn.Load() && set[c.user] {
			out[c.user] = append(out[c.user], c)
		}
	}
	return out
}

// Drain turns /readyz to 503 so that load balancers stop sending new
// connections here, while everything else goes on as before.
func (s *Server) Drain() {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
}

// Shutdown turns /readyz to 503, refuses new connections, closes every live
// one with 1012 (after its in-flight request is answered), in batches of
// CloseBatch per CloseInterval, and waits for them, and for the catcher.
// When ctx ends first the rest are dropped without a handshake and ctx's
// error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	defer func() { s.stopCatcher(); <-s.catcher.done }()
	s.mu.Lock()
	s.closing = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	tick := time.NewTicker(max(s.cfg.CloseInterval, time.Millisecond))
	defer tick.Stop()
	for i := 0; i < len(conns); i += s.cfg.CloseBatch {
		if i > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
		for _, c := range conns[i:min(i+s.cfg.CloseBatch, len(conns))] {
			c.stop(closeShutdown, true)
		}
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			_ = c.ws.CloseNow()
		}
		<-done
		return ctx.Err()
	}
}
