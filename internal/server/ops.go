package server

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/signald/signald/internal/bus"
	"github.com/signald/signald/internal/device"
	"github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/protocol"
)

// handler serves one op for a logged-in connection and returns the reply's
// data. Parameter errors wrap protocol.ErrBadParam; the rest are domain
// errors, turned into codes by codeOf.
type handler func(c *conn, ctx context.Context, r *protocol.Request) (any, error)

var handlers = map[string]handler{
	protocol.OpInvite:               (*conn).opInvite,
	protocol.OpInviteInGroup:        (*conn).opInviteInGroup,
	protocol.OpCancel:               opChange(func(e Engine) changeFunc { return e.Cancel }, false),
	protocol.OpAccept:               opChange(func(e Engine) changeFunc { return e.Accept }, false),
	protocol.OpReject:               opChange(func(e Engine) changeFunc { return e.Reject }, false),
	protocol.OpModifyInvitation:     opChange(func(e Engine) changeFunc { return e.Modify }, true),
	protocol.OpGetSignalingInfo:     (*conn).opGet,
	protocol.OpSetOfflinePushConfig: (*conn).opSetOfflinePushConfig,
	protocol.OpDoBackground:         (*conn).opBackground,
	protocol.OpDoForeground:         (*conn).opForeground,
	protocol.OpPing: func(*conn, context.Context, *protocol.Request) (any, error) {
		return protocol.PingData{ServerTime: time.Now().UnixMilli()}, nil
	},
}

// serve answers one frame. It runs on the reader with reqMu held. After
// login every frame takes its token from the rate limiter, malformed ones
// and binary ones too, and a client that keeps sending past it is closed:
// the limiter bounds the work anyone can cause, not only the valid work.
func (c *conn) serve(ctx context.Context, typ websocket.MessageType, frame []byte) {
	start := time.Now()
	logged := c.loggedIn.Load()
	if logged && !c.limiter.Allow() {
		if c.limited++; c.limited > c.srv.cfg.RateBurst {
			c.stop(closeRateLimit, true)
			return
		}
		var id int64
		if req, err := protocol.DecodeRequest(frame); err == nil {
			id = req.ID
		}
		c.answerCode("limited", id, start, protocol.CodeRateLimited, "request rate limit exceeded")
		return
	}
	c.limited = 0
	if typ != websocket.MessageText {
		c.answerCode("malformed", 0, start, protocol.CodeInvalidParams, "frames must be UTF-8 text holding one JSON object")
		return
	}
	req, err := protocol.DecodeRequest(frame)
	if err != nil {
		c.answer("malformed", 0, start, nil, err)
		return
	}
	op := req.Op
	if _, known := handlers[op]; !known && op != protocol.OpLogin {
		op = "unknown" // a metric label must not be a client's string
	}
	switch {
	case !logged && req.Op == protocol.OpLogin:
		c.login(ctx, req, start)
	case !logged:
		c.answerCode(op, req.ID, start, protocol.CodeNotLoggedIn, "log in first")
	case req.Op == protocol.OpLogin:
		c.answerCode(op, req.ID, start, protocol.CodeInvalidParams, "already logged in")
	case op == "unknown":
		c.answerCode(op, req.ID, start, protocol.CodeInvalidParams, fmt.Sprintf("unknown op %q", req.Op))
	default:
		rctx, cancel := context.WithTimeout(ctx, c.srv.cfg.RequestTimeout)
		data, err := handlers[op](c, rctx, req)
		cancel()
		c.answer(op, req.ID, start, data, err)
	}
}

func (c *conn) answer(op string, id int64, start time.Time, data any, err error) {
	code, desc := codeOf(err)
	switch code {
	case protocol.CodeOK:
	case protocol.CodeInternal:
		c.srv.log.Error("request failed", "op", op, "user", c.user, "err", err)
		data = nil
	default:
		c.refused(op, code, err.Error())
		data = nil
	}
	// Counted before the reply is queued: a client that has its answer
	// finds it counted on /metrics.
	c.observe(op, code, start)
	c.reply(id, code, desc, data)
}

// answerCode refuses a request with code; why is logged.
func (c *conn) answerCode(op string, id int64, start time.Time, code int, why string) {
	c.refused(op, code, why)
	c.observe(op, code, start)
	c.reply(id, code, protocol.Desc(code), nil)
}

// refused logs why a request was refused, at debug level: a client's
// mistakes are its developer's to read, and must not fill an operator's
// log. The text is bounded, as the client may have chosen part of it.
func (c *conn) refused(op string, code int, why string) {
	if c.srv.log.Enabled(context.Background(), slog.LevelDebug) {
		if len(why) > 200 {
			why = strings.ToValidUTF8(why[:200], "") + "…"
		}
		c.srv.log.Debug("request refused", "op", op, "user", c.user, "code", code, "why", why)
	}
}

func (c *conn) observe(op string, code int, start time.Time) {
	c.srv.m.requests.WithLabelValues(op, strconv.Itoa(code)).Inc()
	c.srv.m.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (c *conn) caller() invite.Caller {
	return invite.Caller{User: c.user, Session: c.session, Device: c.device}
}

// login authenticates the connection, registers it with the hub and the
// bus and sends, in this order, the reply; the events kept after
// lastEventID (when it resumes) or else the invitations the user is still
// pending in; and the live events that arrived meanwhile. A failed login is
// answered and the connection closed (1008).
func (c *conn) login(ctx context.Context, req *protocol.Request, start time.Time) {
	user, err := req.String("userID")
	if err == nil {
		err = invite.CheckID("userID", user)
	}
	var sig, lastEventID string
	var hasLast bool
	if err == nil {
		sig, err = req.OptString("userSig")
	}
	if err == nil {
		lastEventID, err = req.OptString("lastEventID")
		hasLast = req.Has("lastEventID")
	}
	var dev string
	if err == nil && req.Has("deviceID") {
		if dev, err = req.String("deviceID"); err == nil {
			err = device.CheckDeviceID(dev)
		}
	}
	if err == nil {
		err = c.srv.d.Verifier.Verify(user, sig)
	}
	if err != nil {
		c.failLogin(req.ID, start, err)
		return
	}
	c.user, c.device = user, dev
	c.holdMu.Lock()
	c.holding = true
	c.holdMu.Unlock()
	c.loggedIn.Store(true)
	c.srv.d.Hub.Register(user, c)

	rctx, cancel := context.WithTimeout(ctx, c.srv.cfg.RequestTimeout)
	defer cancel()
	b := c.srv.d.Bus
	if err := b.Watch(rctx, user); err != nil {
		c.undoLogin()
		c.failLogin(req.ID, start, err)
		return
	}
	c.watching = true
	c.setForeground(true)
	// Live events now reach c.held. What happened before is replayed from
	// the user's kept events, or, without a usable lastEventID, the user is
	// rung again for every invitation still pending. An empty lastEventID
	// names no event: it is a fresh login.
	var events []bus.Kept // replayed
	var frames [][]byte   // or pending
	recovered := false
	if hasLast && lastEventID != "" {
		events, recovered, err = b.Replay(rctx, user, lastEventID)
		if err == nil {
			c.srv.m.resumed(recovered, len(events))
		}
	}
	if err == nil && !recovered {
		frames, err = c.pendingFrames(rctx, user)
	}
	// The newest kept event, read after Watch: every later one arrives live.
	var last string
	if err == nil {
		last, err = b.Last(rctx, user)
	}
	if err != nil {
		c.undoLogin()
		c.failLogin(req.ID, start, err)
		return
	}
	data := protocol.LoginData{UserID: user, ServerTime: time.Now().UnixMilli(), LastEventID: last}
	if hasLast {
		data.Recovered = &recovered
	}
	// Counted before the reply is queued, as every answer is.
	c.srv.m.logins.WithLabelValues("0").Inc()
	c.observe(protocol.OpLogin, protocol.CodeOK, start)
	c.authed = true
	c.srv.unauth.Add(-1)
	c.reply(req.ID, protocol.CodeOK, "", data)
	c.ws.SetReadLimit(c.srv.cfg.ReadLimit)
	// What comes before the live events goes out paced (sendPaced), so
	// that a user with many pending invitations, or a long replay, can
	// always log in; live events wait in held meanwhile.
	if recovered {
		// A contiguous run after lastEventID: the held events continue it.
		c.holdMu.Lock()
		c.lastID = lastEventID
		c.holdMu.Unlock()
		for _, e := range events {
			if !c.sendPaced(len(e.Frame), func() { c.sendRangeLocked([]bus.Kept{e}) }) {
				return
			}
		}
	} else {
		// Pending invitations carry the eventIDs they were first rung
		// under. They go out in eventID order with the events held up to
		// last, which were published while the login was under way; the
		// held events after last continue the user's sequence from there.
		c.holdMu.Lock()
		i := 0
		for ; i < len(c.held); i++ {
			if id := c.held[i].d.ID; id != "" && id > last {
				break
			}
		}
		before := make([][]byte, 0, i)
		for _, h := range c.held[:i] {
			if !h.own {
				before = append(before, h.d.Frame)
			}
			c.heldBytes -= len(h.d.Frame)
		}
		c.held = c.held[i:]
		c.lastID = last
		c.holdMu.Unlock()
		for _, f := range mergeByEventID(frames, before) {
			if !c.sendPaced(len(f), func() { c.enqueue(f) }) {
				return
			}
		}
	}
	c.holdMu.Lock()
	c.drainHeldLocked()
	c.holdMu.Unlock()
}

// sendPaced waits for room for n bytes in the send queue, then runs send
// with holdMu held. It reports false, having closed the connection as too
// slow (1008), when the client read nothing for a write timeout: a client
// that reads is never closed, however much the login has to send.
func (c *conn) sendPaced(n int, send func()) bool {
	if !c.waitRoom(n) {
		select {
		case <-c.quit:
		default:
			c.srv.m.slowClosed.Inc()
			c.stop(closeTooSlow, false)
		}
		return false
	}
	c.holdMu.Lock()
	send()
	c.holdMu.Unlock()
	return true
}

// pendingFrames rings user again for every invitation it is still pending
// in, each frame with the eventID under which it was first rung.
func (c *conn) pendingFrames(ctx context.Context, user string) ([][]byte, error) {
	pending, err := c.srv.d.Engine.Pending(ctx, user)
	if err != nil || len(pending) == 0 {
		return nil, err
	}
	ids := make([]string, len(pending))
	for i, inv := range pending {
		ids[i] = inv.ID
	}
	rung, err := c.srv.d.Bus.RungAs(ctx, user, ids)
	if err != nil {
		return nil, err
	}
	frames := make([][]byte, len(pending))
	for i, inv := range pending {
		frames[i] = encodeEvent(newInvitationEvent(inv))
		if rung[i] != "" {
			frames[i] = bus.WithEventID(frames[i], rung[i])
		}
	}
	return frames, nil
}

// mergeByEventID orders what a fresh login sends after its reply: the
// pending invitations (frames, oldest first) and the live events held while
// they were gathered, interleaved by eventID (an invitation may have been
// rung while the login was under way), none twice. Frames without an
// eventID keep their place.
func mergeByEventID(frames, held [][]byte) [][]byte {
	out := make([][]byte, 0, len(frames)+len(held))
	sent := make(map[string]bool, len(frames))
	i := 0
	for ; i < len(frames) && bus.EventIDOf(frames[i]) == ""; i++ {
		out = append(out, frames[i])
	}
	for _, h := range held {
		hid := bus.EventIDOf(h)
		for hid != "" && i < len(frames) && bus.EventIDOf(frames[i]) <= hid {
			sent[bus.EventIDOf(frames[i])] = true
			out = append(out, frames[i])
			i++
		}
		if hid == "" || !sent[hid] {
			out = append(out, h)
		}
	}
	return append(out, frames[i:]...)
}

// undoLogin takes back a login that failed after the connection was
// registered, so that nothing is served on it before it closes.
func (c *conn) undoLogin() {
	c.loggedIn.Store(false)
	c.srv.d.Hub.Unregister(c.user, c)
	c.setForeground(false)
	if c.watching {
		c.srv.d.Bus.Unwatch(c.user)
		c.watching = false
	}
	c.holdMu.Lock()
	c.held, c.heldBytes, c.holding, c.recheck = nil, 0, false, false
	c.holdMu.Unlock()
}

func (c *conn) failLogin(id int64, start time.Time, err error) {
	code, _ := codeOf(err)
	c.srv.m.logins.WithLabelValues(strconv.Itoa(code)).Inc()
	c.answer(protocol.OpLogin, id, start, nil, err)
	c.stop(closeLoginFailed, true)
}

// common parameters of invite and inviteInGroup
func inviteParams(r *protocol.Request) (invite.InviteRequest, error) {
	var q invite.InviteRequest
	var err error
	if q.Data, err = r.String("data"); err != nil {
		return q, err
	}
	timeout, err := r.Int("timeout", 30)
	if err != nil {
		return q, err
	}
	if timeout < 0 || timeout > math.MaxInt32 {
		return q, fmt.Errorf("timeout %d out of range: %w", timeout, invite.ErrInvalid)
	}
	q.Timeout = int(timeout)
	if q.OnlineUserOnly, err = r.Bool("onlineUserOnly", false); err != nil {
		return q, err
	}
	p, err := r.PushInfo("offlinePushInfo")
	q.Push = invite.PushInfo(p)
	return q, err
}

func (c *conn) opInvite(ctx context.Context, r *protocol.Request) (any, error) {
	invitee, err := r.String("invitee")
	if err != nil {
		return nil, err
	}
	q, err := inviteParams(r)
	if err != nil {
		return nil, err
	}
	q.Invitees = []string{invitee}
	return c.srv.d.Engine.Invite(ctx, c.caller(), q)
}

func (c *conn) opInviteInGroup(ctx context.Context, r *protocol.Request) (any, error) {
	groupID, err := r.String("groupID")
	if err != nil {
		return nil, err
	}
	if groupID == "" {
		return nil, fmt.Errorf("groupID is empty: %w", invite.ErrInvalid)
	}
	list, err := r.StringList("inviteeList")
	if err != nil {
		return nil, err
	}
	q, err := inviteParams(r)
	if err != nil {
		return nil, err
	}
	q.GroupID, q.Invitees = groupID, list
	return c.srv.d.Engine.Invite(ctx, c.caller(), q)
}

type changeFunc func(ctx context.Context, c invite.Caller, id, data string) error

// opChange serves cancel, accept, reject and modifyInvitation, which differ
// only in the engine method and whether data is required.
func opChange(method func(Engine) changeFunc, dataRequired bool) handler {
	return func(c *conn, ctx context.Context, r *protocol.Request) (any, error) {
		id, err := r.String("inviteID")
		if err != nil {
			return nil, err
		}
		var data string
		if dataRequired {
			data, err = r.String("data")
		} else {
			data, err = r.OptString("data")
		}
		if err != nil {
			return nil, err
		}
		return nil, method(c.srv.d.Engine)(ctx, c.caller(), id, data)
	}
}

func (c *conn) opGet(ctx context.Context, r *protocol.Request) (any, error) {
	id, err := r.String("inviteID")
	if err != nil {
		return nil, err
	}
	inv, err := c.srv.d.Engine.Get(ctx, c.caller(), id)
	if err != nil {
		return nil, err
	}
	states := make(map[string]string, len(inv.States))
	for u, s := range inv.States {
		states[u] = string(s)
	}
	return protocol.SignalingInfo{
		InviteID: inv.ID, GroupID: inv.GroupID, Inviter: inv.Inviter, InviteeList: inv.Invitees,
		Data: inv.Data, Timeout: inv.Timeout, OnlineUserOnly: inv.OnlineUserOnly,
		CreatedAt: inv.CreatedAt, Deadline: inv.Deadline, States: states,
	}, nil
}
