package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// Options configure a Client. The zero value is usable.
type Options struct {
	// Listener gets the events and the connection's state changes.
	Listener Listener
	// Store keeps the last processed eventID between connections; nil: a
	// MemoryStore of this Client's.
	Store EventIDStore
	// Dialer opens the connections (its OnFrame is the Client's own and
	// must be nil); nil: a zero Dialer.
	Dialer *Dialer
	// Backoff paces the reconnect attempts.
	Backoff Backoff
	// FailWhileReconnecting makes a request made without a logged-in
	// connection fail at once with ErrReconnecting. By default it waits
	// for the session to be back, as long as its ctx allows.
	FailWhileReconnecting bool
	// RequestTimeout bounds a request whose ctx has no deadline, waiting
	// for a reconnect included, and every write and login; default 10 s.
	RequestTimeout time.Duration
	// PingInterval is how often a WebSocket ping checks a quiet connection;
	// one unanswered within RequestTimeout drops it (and the Client
	// reconnects). Default 25 s; negative: never.
	PingInterval time.Duration
	// Logger gets what the Client cannot report otherwise (a store that
	// fails, a frame it cannot use); nil: discarded.
	Logger *slog.Logger
}

// Backoff is the wait before each reconnect attempt: Initial after the
// first failure, doubling up to Max, each drawn at random from
// [wait×(1−Jitter), wait] so that the clients of a restarted instance do
// not all come back at once. After a close with 1012 (the instance
// restarts) the first attempt waits only a random part of Initial; after
// a close with 1008 (policy: too slow, over the rate limit) at least
// about Policy. Zero fields take the defaults.
type Backoff struct {
	Initial time.Duration // default 500 ms
	Max     time.Duration // default 30 s
	Jitter  float64       // 0..1, default 0.5; negative: none
	Policy  time.Duration // default 10 s
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 500 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	switch {
	case b.Jitter == 0:
		b.Jitter = 0.5
	case b.Jitter < 0:
		b.Jitter = 0
	case b.Jitter > 1:
		b.Jitter = 1
	}
	if b.Policy <= 0 {
		b.Policy = 10 * time.Second
	}
	return b
}

// Delay is the wait before reconnect attempt number failures+1, after a
// connection that ended with closeCode (-1: none), r being a random number
// in [0, 1). b must have its defaults.
func (b Backoff) delay(failures, closeCode int, r float64) time.Duration {
	if failures == 0 && closeCode == closeServiceRestart {
		return time.Duration(r * float64(b.Initial))
	}
	w := b.Max
	if failures < 30 && b.Initial<<failures < b.Max {
		w = b.Initial << failures
	}
	d := time.Duration(float64(w) * (1 - b.Jitter*r))
	if closeCode == closePolicyViolation {
		d = max(d, time.Duration(float64(b.Policy)*(1-b.Jitter/2*r)))
	}
	return d
}

// The close codes the Client treats apart (api/README.md §8).
const (
	closeNormal          = 1000
	closePolicyViolation = 1008
	closeServiceRestart  = 1012
)

// LoginOptions are who logs in.
type LoginOptions struct {
	UserID  string
	UserSig string // an HS256 JWT from your backend (api/README.md §5)
	// DeviceID is the app installation's stable ID (api/README.md §13); it
	// also keys the stored eventID. Optional.
	DeviceID string
	// RefreshUserSig, if set, is called before each re-login for a fresh
	// userSig; on error the previous one is tried. Without it a re-login
	// refused for the userSig (700xx) ends the session.
	RefreshUserSig func(ctx context.Context, userID string) (string, error)
}

// LoginResult is the data of a successful login reply.
type LoginResult struct {
	UserID     string
	ServerTime time.Time
	// LastEventID is the newest event kept for the user ("" if none).
	LastEventID string
	// Resumed: the login carried the stored lastEventID. Recovered: every
	// event kept since then follows (see StateChange).
	Resumed, Recovered bool
}

// OfflinePushInfo are hints for the offline push of an invitation
// (api/README.md §13).
type OfflinePushInfo struct {
	Title       string `json:"title,omitempty"`
	Desc        string `json:"desc,omitempty"`
	Ext         string `json:"ext,omitempty"`
	DisablePush bool   `json:"disablePush,omitempty"`
}

// InviteOptions are the optional parameters of Invite and InviteInGroup.
type InviteOptions struct {
	// Timeout is how long the invitees have to answer, rounded up to whole
	// seconds; 0: the server's default (30 s).
	Timeout time.Duration
	// NoTimeout: no deadline; the invitation rings until answered or
	// cancelled (at most the server's maximum lifetime, 24 h by default).
	NoTimeout bool
	// OnlineUserOnly: reach only the invitees connected right now; nothing
	// is kept for the others and no offline push is sent.
	OnlineUserOnly  bool
	OfflinePushInfo *OfflinePushInfo
}

func (o InviteOptions) add(p map[string]any) {
	switch {
	case o.NoTimeout:
		p["timeout"] = 0
	case o.Timeout != 0:
		secs := int64(o.Timeout / time.Second)
		if rest := o.Timeout % time.Second; rest > 0 {
			secs++
		} else if rest < 0 {
			secs--
		}
		p["timeout"] = secs
	}
	if o.OnlineUserOnly {
		p["onlineUserOnly"] = true
	}
	if o.OfflinePushInfo != nil {
		p["offlinePushInfo"] = o.OfflinePushInfo
	}
}

// InviteeState is an invitee's part in an invitation.
type InviteeState string

// The states of api/README.md §4.
const (
	InviteePending   InviteeState = "pending"
	InviteeAccepted  InviteeState = "accepted"
	InviteeRejected  InviteeState = "rejected"
	InviteeTimeout   InviteeState = "timeout"
	InviteeCancelled InviteeState = "cancelled"
)

// SignalingInfo is an invitation as GetSignalingInfo reads it.
type SignalingInfo struct {
	InviteID       string
	GroupID        string // "" for a one-to-one invitation
	Inviter        string
	InviteeList    []string
	Data           string
	Timeout        time.Duration // 0: no deadline
	OnlineUserOnly bool
	CreatedAt      time.Time
	Deadline       time.Time // zero without a timeout
	States         map[string]InviteeState
}

// Push platforms of OfflinePushConfig.
const (
	PlatformAPNsVoIP = "apns-voip"
	PlatformAPNs     = "apns"
	PlatformFCM      = "fcm"
	PlatformWebhook  = "webhook"
)

// OfflinePushConfig registers where a device is pushed
// (setOfflinePushConfig, api/README.md §13).
type OfflinePushConfig struct {
	Platform string // one of the Platform constants
	Token    string // the platform's device token; "" removes the registration
	Sandbox  bool   // APNs only: a development-environment token
	DeviceID string // default: the login's
}

// Client is one user's session with signald, named and shaped after
// V2TIMSignalingManager: Login once, then make requests and receive events
// through Options.Listener while the Client keeps the session alive across
// dropped connections. Its methods are safe for concurrent use.
type Client struct {
	url    string
	o      Options
	store  EventIDStore
	dialer Dialer
	log    *slog.Logger

	mu      sync.Mutex
	closed  bool          // guarded by mu
	sess    *session      // guarded by mu: nil without a session
	state   State         // guarded by mu
	conn    *Conn         // guarded by mu: the logged-in connection; nil between two
	changed chan struct{} // guarded by mu: closed and replaced when sess, state or conn change
	// lastDone is closed once the newest session's goroutines have
	// returned; the next session's dispatcher waits for it, so that two
	// sessions' callbacks never overlap.
	lastDone chan struct{} // guarded by mu

	wg sync.WaitGroup // every session goroutine; Close waits for them
}

// New returns a Client of the signald at url (ws://host:port/v1/ws or
// wss://…). It connects on Login.
func New(url string, o Options) (*Client, error) {
	if !strings.HasPrefix(url, "ws://") && !strings.HasPrefix(url, "wss://") {
		return nil, fmt.Errorf("signald: url %q: want ws:// or wss://", url)
	}
	if o.Dialer != nil && o.Dialer.OnFrame != nil {
		return nil, errors.New("signald: Options.Dialer.OnFrame must be nil: the Client reads the frames")
	}
	c := &Client{url: url, o: o, store: o.Store, log: o.Logger, changed: make(chan struct{})}
	if c.store == nil {
		c.store = NewMemoryStore()
	}
	if o.Dialer != nil {
		c.dialer = *o.Dialer
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.o.RequestTimeout <= 0 {
		c.o.RequestTimeout = 10 * time.Second
	}
	if c.o.PingInterval == 0 {
		c.o.PingInterval = 25 * time.Second
	}
	c.o.Backoff = c.o.Backoff.withDefaults()
	closedCh := make(chan struct{})
	close(closedCh)
	c.lastDone = closedCh
	return c, nil
}

// Login connects, logs in and returns the reply's data; from then on the
// Client reconnects by itself until Logout or Close. It resumes from the
// eventID the Store holds for (UserID, DeviceID), if any. An error is the
// server's refusal (an *Error: 700xx for the userSig), a failure to
// connect, or ctx's; no session is left then.
func (c *Client) Login(ctx context.Context, o LoginOptions) (*LoginResult, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.sess != nil {
		c.mu.Unlock()
		return nil, ErrAlreadyLoggedIn
	}
	s := newSession(c, o)
	c.sess = s
	prev := c.lastDone
	c.lastDone = s.done
	c.setStateLocked(StateConnecting)
	s.push(item{state: &StateChange{State: StateConnecting, CloseCode: -1}})
	c.wg.Add(2) // dispatch, and run (or Login's own end of the session)
	go s.dispatch(prev)
	c.mu.Unlock()

	last, err := c.store.Load(ctx, o.UserID, o.DeviceID)
	if err != nil {
		c.log.Warn("signald client: loading the last eventID failed; logging in without", "user", o.UserID, "err", err)
		last = ""
	}
	s.setLast(last)
	lctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	conn, res, err := s.connect(lctx, o.UserSig)
	stop()
	cancel()
	if err == nil {
		c.mu.Lock()
		if c.sess != s { // Logout or Close meanwhile
			err = fmt.Errorf("signald: login: %w", ErrNotLoggedIn)
			if c.closed {
				err = ErrClosed
			}
		} else {
			c.conn = conn
			c.setStateLocked(StateConnected)
		}
		c.mu.Unlock()
		if err != nil {
			_ = conn.Close()
		}
	}
	if err != nil {
		c.mu.Lock()
		if c.sess == s {
			c.sess = nil
			c.setStateLocked(StateDisconnected)
		}
		c.mu.Unlock()
		s.end(StateChange{State: StateDisconnected, Err: err, CloseCode: -1})
		return nil, err
	}
	s.release(StateChange{State: StateConnected, CloseCode: -1, Resumed: res.Resumed, Recovered: res.Recovered})
	r := *res // run's own: the caller may change what it is returned
	go s.run(conn, &r)
	return res, nil
}

// Logout ends the session: it closes the connection, fails the requests
// that wait for a reconnect (ErrNotLoggedIn) or for a reply
// (ErrConnectionLost), and waits until the listener has been handed what
// was received before and the final StateDisconnected, or ctx ends. Not
// from a listener callback, which it would wait for. The Client may log in
// again, and with the same Store resumes where this session stopped.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	s := c.sess
	if s == nil {
		c.mu.Unlock()
		return nil
	}
	c.sess, c.conn = nil, nil
	c.setStateLocked(StateDisconnected)
	c.mu.Unlock()
	s.cancel()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close logs out and waits for every goroutine of the Client; then every
// method fails with ErrClosed. Not from a listener callback.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	_ = c.Logout(context.Background())
	c.wg.Wait()
	return nil
}

// State is the session's state now.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// UserID is the logged-in user, "" without a session
// (V2TIMManager.getLoginUser).
func (c *Client) UserID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return ""
	}
	return c.sess.userID
}

// LastEventID is the newest eventID the listener has processed in this
// session (or that the Store held at Login), what the next login resumes
// from; "" without a session.
func (c *Client) LastEventID() string {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return ""
	}
	return s.getLast()
}

// setStateLocked records the Client's state and wakes the requests that
// wait for a change. Handing the change to the listener is the caller's
// (session.push), in order with the events. c.mu is held.
func (c *Client) setStateLocked(st State) {
	c.state = st
	close(c.changed)
	c.changed = make(chan struct{})
}

// ready returns the logged-in connection, waiting for one while the
// session reconnects.
func (c *Client) ready(ctx context.Context, op string) (*Conn, error) {
	for {
		c.mu.Lock()
		closed, s, conn, changed := c.closed, c.sess, c.conn, c.changed
		c.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case s == nil:
			return nil, &Error{Op: op, Code: protocol.CodeNotLoggedIn, Desc: protocol.Desc(protocol.CodeNotLoggedIn)}
		case conn != nil && !conn.ended():
			return conn, nil
		case c.o.FailWhileReconnecting:
			return nil, fmt.Errorf("signald: %s: %w", op, ErrReconnecting)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("signald: %s: %w: %w", op, ErrReconnecting, ctx.Err())
		}
	}
}

// request sends op on the logged-in connection and returns the reply's
// data; a non-zero code is an *Error.
func (c *Client) request(ctx context.Context, op string, params map[string]any) (json.RawMessage, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.o.RequestTimeout)
		defer cancel()
	}
	for {
		conn, err := c.ready(ctx, op)
		if err != nil {
			return nil, err
		}
		// The write has a context of its own: coder/websocket closes a
		// connection whose write's context ends, and a caller giving up
		// must not cost the session its connection.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.o.RequestTimeout)
		f, err := conn.call(ctx, wctx, op, params)
		cancel()
		switch {
		case err == nil && f.Code != 0:
			return nil, &Error{Op: op, Code: f.Code, Desc: f.Desc}
		case err == nil:
			return f.Data, nil
		case errors.Is(err, errNotSent):
			// That connection has ended, or is stuck: wait for the next.
			select {
			case <-conn.Done():
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("signald: %s: not sent: %w", op, ctx.Err())
			}
		case ctx.Err() != nil:
			return nil, fmt.Errorf("signald: %s: no reply: %w", op, ctx.Err())
		case conn.ended():
			return nil, fmt.Errorf("signald: %s: %w (%v)", op, ErrConnectionLost, conn.Err())
		default:
			return nil, fmt.Errorf("signald: %s: %w", op, err)
		}
	}
}

// Invite invites one user and returns the new inviteID.
func (c *Client) Invite(ctx context.Context, invitee, data string, o InviteOptions) (string, error) {
	p := map[string]any{"invitee": invitee, "data": data}
	o.add(p)
	return c.requestID(ctx, protocol.OpInvite, p)
}

// InviteInGroup invites members of a group (managed with the admin API)
// and returns the new inviteID.
func (c *Client) InviteInGroup(ctx context.Context, groupID string, inviteeList []string, data string, o InviteOptions) (string, error) {
	if inviteeList == nil {
		inviteeList = []string{}
	}
	p := map[string]any{"groupID": groupID, "inviteeList": inviteeList, "data": data}
	o.add(p)
	return c.requestID(ctx, protocol.OpInviteInGroup, p)
}

func (c *Client) requestID(ctx context.Context, op string, p map[string]any) (string, error) {
	data, err := c.request(ctx, op, p)
	if err != nil {
		return "", err
	}
	var id string
	if err := json.Unmarshal(data, &id); err != nil {
		return "", fmt.Errorf("signald: %s: reply data %.100s is not an inviteID", op, data)
	}
	return id, nil
}

// Accept accepts an invitation the user is pending in.
func (c *Client) Accept(ctx context.Context, inviteID, data string) error {
	return c.answer(ctx, protocol.OpAccept, inviteID, data)
}

// Reject rejects an invitation the user is pending in.
func (c *Client) Reject(ctx context.Context, inviteID, data string) error {
	return c.answer(ctx, protocol.OpReject, inviteID, data)
}

// Cancel withdraws an active invitation the user made.
func (c *Client) Cancel(ctx context.Context, inviteID, data string) error {
	return c.answer(ctx, protocol.OpCancel, inviteID, data)
}

// ModifyInvitation replaces the data of an active invitation the user made.
func (c *Client) ModifyInvitation(ctx context.Context, inviteID, data string) error {
	return c.answer(ctx, protocol.OpModifyInvitation, inviteID, data)
}

func (c *Client) answer(ctx context.Context, op, inviteID, data string) error {
	_, err := c.request(ctx, op, map[string]any{"inviteID": inviteID, "data": data})
	return err
}

// GetSignalingInfo reads an invitation the user is the inviter or an
// invitee of.
func (c *Client) GetSignalingInfo(ctx context.Context, inviteID string) (*SignalingInfo, error) {
	data, err := c.request(ctx, protocol.OpGetSignalingInfo, map[string]any{"inviteID": inviteID})
	if err != nil {
		return nil, err
	}
	var w protocol.SignalingInfo
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("signald: getSignalingInfo: reply data: %w", err)
	}
	info := &SignalingInfo{
		InviteID: w.InviteID, GroupID: w.GroupID, Inviter: w.Inviter, InviteeList: w.InviteeList, Data: w.Data,
		Timeout: time.Duration(w.Timeout) * time.Second, OnlineUserOnly: w.OnlineUserOnly,
		CreatedAt: time.UnixMilli(w.CreatedAt), States: make(map[string]InviteeState, len(w.States)),
	}
	if w.Deadline != 0 {
		info.Deadline = time.UnixMilli(w.Deadline)
	}
	for u, st := range w.States {
		info.States[u] = InviteeState(st)
	}
	return info, nil
}

// SetOfflinePushConfig registers where a device of the user is pushed.
func (c *Client) SetOfflinePushConfig(ctx context.Context, cfg OfflinePushConfig) error {
	p := map[string]any{"platform": cfg.Platform, "token": cfg.Token}
	if cfg.Sandbox {
		p["sandbox"] = true
	}
	if cfg.DeviceID != "" {
		p["deviceID"] = cfg.DeviceID
	}
	_, err := c.request(ctx, protocol.OpSetOfflinePushConfig, p)
	return err
}

// DoBackground tells the server the app went to the background: this
// connection's device counts as absent when the server decides whom to
// push. A new connection starts in the foreground, so the Client sends it
// again after each reconnect until DoForeground.
func (c *Client) DoBackground(ctx context.Context) error {
	return c.setBackground(ctx, protocol.OpDoBackground, true)
}

// DoForeground tells the server the app is in the foreground again.
func (c *Client) DoForeground(ctx context.Context) error {
	return c.setBackground(ctx, protocol.OpDoForeground, false)
}

func (c *Client) setBackground(ctx context.Context, op string, on bool) error {
	if _, err := c.request(ctx, op, nil); err != nil {
		return err
	}
	c.mu.Lock()
	if c.sess != nil {
		c.sess.background.Store(on)
	}
	c.mu.Unlock()
	return nil
}

// Ping asks the server for its clock (the ping op).
func (c *Client) Ping(ctx context.Context) (time.Time, error) {
	data, err := c.request(ctx, protocol.OpPing, nil)
	if err != nil {
		return time.Time{}, err
	}
	var p protocol.PingData
	if err := json.Unmarshal(data, &p); err != nil {
		return time.Time{}, fmt.Errorf("signald: ping: reply data: %w", err)
	}
	return time.UnixMilli(p.ServerTime), nil
}

// random is a number in [0, 1) for the backoff's jitter.
func random() float64 { return rand.Float64() }
