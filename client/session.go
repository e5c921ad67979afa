package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// session is the life of one Login: a sequence of connections, each logged
// in with the last eventID processed, and the listener's queue.
//
// Goroutines: the reader of the current connection (Conn.readLoop) drops
// duplicates and queues events (onFrame); run holds the connection,
// pings it, and reconnects when it ends; dispatch hands the queue to the
// listener. Login starts dispatch at once and run after the first login;
// Logout and Close end ctx, after which run closes the connection and
// queues the final state change, and dispatch returns once it has handed
// that over.
type session struct {
	c        *Client
	userID   string
	deviceID string
	refresh  func(ctx context.Context, userID string) (string, error)
	sig      string // owned by Login, then by run

	ctx     context.Context // ended by Logout and Close
	cancel  context.CancelFunc
	runDone chan struct{} // closed by end: no connection is held any more, nothing more is queued
	done    chan struct{} // closed when dispatch has returned, after runDone

	background atomic.Bool // the last of DoBackground and DoForeground to succeed was DoBackground

	// seen are the eventIDs handed to the queue, and the invitations rung
	// for, so that an event that comes twice around a reconnect is dropped.
	// Owned by the reader of the current connection: a connection is opened
	// only once the previous one's reader has returned.
	seen seenSet

	lastMu sync.Mutex
	last   string // guarded by lastMu: the newest eventID processed, what a login resumes from

	qmu     sync.Mutex
	queue   []item        // guarded by qmu: what dispatch has yet to hand to the listener
	holding bool          // guarded by qmu: a login is under way; the events after its reply wait in held
	held    []item        // guarded by qmu
	ended   bool          // guarded by qmu: the final state change is queued; nothing follows it
	wake    chan struct{} // capacity 1: something was queued
}

// item is one entry of the listener's queue.
type item struct {
	frame  *Frame       // an event,
	state  *StateChange // or a change of state,
	anchor string       // or: what a fresh (or unrecovered) login sent has been processed, resume from here at least
}

// maxSeen is how many eventIDs (and inviteIDs rung for) are remembered for
// dropping duplicates, which come only around a reconnect, a few events
// apart.
const maxSeen = 10000

func newSession(c *Client, o LoginOptions) *session {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{
		c: c, userID: o.UserID, deviceID: o.DeviceID, refresh: o.RefreshUserSig, sig: o.UserSig,
		ctx: ctx, cancel: cancel,
		runDone: make(chan struct{}),
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
	}
}

func (s *session) getLast() string {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	return s.last
}

func (s *session) setLast(id string) {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	s.last = id
}

// connect dials and logs in with the last eventID processed. The events
// that follow the login reply wait until release.
func (s *session) connect(ctx context.Context, sig string) (*Conn, *LoginResult, error) {
	ctx, cancel := context.WithTimeout(ctx, s.c.o.RequestTimeout)
	defer cancel()
	d := s.c.dialer
	d.OnFrame = s.onFrame
	s.qmu.Lock()
	s.holding, s.held = true, nil
	s.qmu.Unlock()
	fail := func(conn *Conn, err error) (*Conn, *LoginResult, error) {
		if conn != nil {
			conn.CloseNow()
		}
		s.qmu.Lock()
		s.holding, s.held = false, nil
		s.qmu.Unlock()
		return nil, nil, err
	}
	conn, err := d.Dial(ctx, s.c.url)
	if err != nil {
		return fail(nil, fmt.Errorf("signald: connect: %w", err))
	}
	last := s.getLast()
	p := map[string]any{"userID": s.userID, "userSig": sig}
	if s.deviceID != "" {
		p["deviceID"] = s.deviceID
	}
	if last != "" {
		p["lastEventID"] = last
	}
	f, err := conn.call(ctx, ctx, protocol.OpLogin, p)
	if err != nil {
		return fail(conn, fmt.Errorf("signald: login: %w", err))
	}
	if f.Code != 0 {
		return fail(conn, &Error{Op: protocol.OpLogin, Code: f.Code, Desc: f.Desc})
	}
	var data protocol.LoginData
	if err := json.Unmarshal(f.Data, &data); err != nil {
		return fail(conn, fmt.Errorf("signald: login: reply data: %w", err))
	}
	return conn, &LoginResult{
		UserID: data.UserID, ServerTime: time.UnixMilli(data.ServerTime), LastEventID: data.LastEventID,
		Resumed: last != "", Recovered: data.Recovered != nil && *data.Recovered,
	}, nil
}

// run holds the logged-in connection and, each time it ends, logs in again
// on a new one after a backoff, until ctx ends or a re-login is refused
// for good.
func (s *session) run(conn *Conn, res *LoginResult) {
	c := s.c
	final := StateChange{State: StateDisconnected, CloseCode: -1}
	defer func() { s.end(final) }()
	failures := 0
	for {
		if !s.hold(conn, res) {
			_ = conn.Close()
			return
		}
		c.mu.Lock()
		if c.sess == s {
			c.conn = nil
			c.setStateLocked(StateReconnecting)
		}
		c.mu.Unlock()
		code, reason, cause := int(conn.CloseStatus()), conn.closeReason(), conn.Err()
		for {
			wait := c.o.Backoff.delay(failures, code, random())
			failures++
			s.push(item{state: &StateChange{State: StateReconnecting, Err: cause, CloseCode: code, CloseReason: reason, Attempt: failures, RetryIn: wait}})
			if !sleep(s.ctx, wait) {
				return
			}
			if s.refresh != nil {
				if sig, err := s.refresh(s.ctx, s.userID); err == nil {
					s.sig = sig
				} else {
					c.log.Warn("signald client: refreshing the userSig failed; trying the previous one", "user", s.userID, "err", err)
				}
			}
			next, r, err := s.connect(s.ctx, s.sig)
			if err == nil {
				if s.background.Load() {
					ctx, cancel := context.WithTimeout(s.ctx, c.o.RequestTimeout)
					if _, err := next.call(ctx, ctx, protocol.OpDoBackground, nil); err != nil {
						c.log.Warn("signald client: doBackground after a reconnect failed", "user", s.userID, "err", err)
					}
					cancel()
				}
				c.mu.Lock()
				ok := c.sess == s
				if ok {
					c.conn = next
					c.setStateLocked(StateConnected)
				}
				c.mu.Unlock()
				if !ok {
					_ = next.Close()
					return
				}
				s.release(StateChange{State: StateConnected, CloseCode: -1, Resumed: r.Resumed, Recovered: r.Recovered})
				conn, res, failures = next, r, 0
				break
			}
			if s.ctx.Err() != nil {
				return
			}
			if e := (*Error)(nil); errors.As(err, &e) && isLoginFatal(e.Code) {
				c.log.Warn("signald client: re-login refused; the session ends", "user", s.userID, "err", err)
				c.mu.Lock()
				if c.sess == s {
					c.sess, c.conn = nil, nil
					c.setStateLocked(StateDisconnected)
				}
				c.mu.Unlock()
				final.Err = err
				return
			}
			code, reason, cause = -1, "", err
		}
	}
}

// hold waits until conn ends (true) or the session does (false), pinging
// the connection meanwhile. After a login that replayed nothing (a fresh
// one, or not recovered), a ping op's reply, which comes after everything
// the login sent, marks the point from which a later login may resume.
func (s *session) hold(conn *Conn, res *LoginResult) bool {
	c := s.c
	if !res.Recovered && res.LastEventID != "" {
		// Until this reply, a connection lost in the middle of the pending
		// invitations must not resume after them: the next login resumes
		// from what was processed, or is a fresh one again.
		ctx, cancel := context.WithTimeout(s.ctx, c.o.RequestTimeout)
		f, err := conn.call(ctx, ctx, protocol.OpPing, nil)
		cancel()
		if err == nil && f.Code == 0 {
			s.push(item{anchor: res.LastEventID})
		}
	}
	var tick <-chan time.Time
	if c.o.PingInterval > 0 {
		t := time.NewTicker(c.o.PingInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-conn.Done():
			return true
		case <-s.ctx.Done():
			return false
		case <-tick:
			ctx, cancel := context.WithTimeout(s.ctx, c.o.RequestTimeout)
			err := conn.Ping(ctx)
			cancel()
			if err != nil && s.ctx.Err() == nil && !conn.ended() {
				c.log.Info("signald client: no pong; dropping the connection", "user", s.userID, "err", err)
				conn.CloseNow()
			}
		}
	}
}

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// onFrame takes a frame that is not the reply to a request, on the
// connection's reader.
func (s *session) onFrame(f *Frame) {
	if !f.IsEvent() {
		s.c.log.Debug("signald client: a reply nobody waits for", "id", f.ID, "code", f.Code, "desc", f.Desc)
		return
	}
	// An invitation rings a user once; it is rung again only by a login
	// that could not replay (with the eventID of the first ring, or none
	// once the server has forgotten it).
	var ring string
	if f.Event == EventReceiveNewInvitation && f.InviteID != "" {
		ring = "ring " + f.InviteID
	}
	if s.seen.has(f.EventID) || s.seen.has(ring) {
		return
	}
	s.seen.add(f.EventID)
	s.seen.add(ring)
	s.push(item{frame: f})
}

// seenSet remembers the last maxSeen keys added.
type seenSet struct {
	keys  map[string]struct{}
	order []string // the ring of keys, oldest at next once full
	next  int
}

func (s *seenSet) has(key string) bool {
	_, ok := s.keys[key]
	return key != "" && ok
}

func (s *seenSet) add(key string) {
	if key == "" {
		return
	}
	if s.keys == nil {
		s.keys = make(map[string]struct{})
	}
	if len(s.order) < maxSeen {
		s.order = append(s.order, key)
	} else {
		delete(s.keys, s.order[s.next])
		s.order[s.next] = key
		s.next = (s.next + 1) % maxSeen
	}
	s.keys[key] = struct{}{}
}

// push queues it for the listener; an event waits while a login is under
// way.
func (s *session) push(it item) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	switch {
	case s.ended:
		return
	case s.holding && it.frame != nil:
		s.held = append(s.held, it)
		return
	}
	s.queue = append(s.queue, it)
	s.signal()
}

// signal wakes dispatch. s.qmu is held.
func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// release queues a login's state change, then the events that came after
// its reply.
func (s *session) release(ch StateChange) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if !s.ended {
		s.queue = append(s.queue, item{state: &ch})
		s.queue = append(s.queue, s.held...)
	}
	s.holding, s.held = false, nil
	s.signal()
}

// end queues the final state change; nothing is queued after it. Called
// once, by run, or by Login when the first login fails.
func (s *session) end(ch StateChange) {
	s.cancel()
	s.qmu.Lock()
	s.queue = append(s.queue, item{state: &ch})
	s.ended = true
	s.signal()
	s.qmu.Unlock()
	close(s.runDone)
	s.c.wg.Done()
}

// dispatch hands the queue to the listener until the final state change,
// once the previous session's dispatch (prev) has returned.
func (s *session) dispatch(prev <-chan struct{}) {
	defer s.c.wg.Done()
	defer close(s.done)
	<-prev
	for {
		s.qmu.Lock()
		for len(s.queue) == 0 && !s.ended {
			s.qmu.Unlock()
			<-s.wake
			s.qmu.Lock()
		}
		items, ended := s.queue, s.ended
		s.queue = nil
		s.qmu.Unlock()
		for _, it := range items {
			s.handle(it)
		}
		if ended {
			<-s.runDone
			return
		}
	}
}

func (s *session) handle(it item) {
	l := &s.c.o.Listener
	switch {
	case it.state != nil:
		if l.OnConnectionStateChanged != nil {
			l.OnConnectionStateChanged(*it.state)
		}
	case it.frame != nil:
		l.dispatch(it.frame)
		s.processed(it.frame.EventID)
	default:
		s.processed(it.anchor)
	}
}

// processed records that the listener is done with eventID, if it is the
// newest, and saves it.
func (s *session) processed(eventID string) {
	s.lastMu.Lock()
	newer := eventID > s.last
	if newer {
		s.last = eventID
	}
	s.lastMu.Unlock()
	if !newer {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.c.o.RequestTimeout)
	defer cancel()
	if err := s.c.store.Save(ctx, s.userID, s.deviceID, eventID); err != nil {
		s.c.log.Warn("signald client: saving the last eventID failed", "user", s.userID, "eventID", eventID, "err", err)
	}
}
