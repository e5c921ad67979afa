package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// device is one phone app of a user: a sequence of connections. It logs in
// once without lastEventID, and from then on, whenever its connection
// ends, reconnects to a random live instance and resumes after the newest
// eventID it has processed. It rings for each invitation once (events are
// deduplicated by eventID, as an app does) and answers some of them.
type device struct {
	id  DeviceID
	env *env

	kick    chan struct{}  // capacity 1: run closes connections up to kickSeq and resumes
	ready   chan struct{}  // closed after the first login
	actions sync.WaitGroup // the delayed requests scheduled by schedule
	actCtx  context.Context

	mu       sync.Mutex
	rng      *rand.Rand      // guarded by mu
	conn     *wsConn         // guarded by mu: the logged-in connection, nil between two
	connSeq  int             // guarded by mu: the newest connection's number
	kickSeq  int             // guarded by mu: connections up to this one are to be replaced
	last     string          // guarded by mu: the newest eventID processed, at first the anchor
	seen     map[string]bool // guarded by mu: eventIDs processed
	rang     map[string]bool // guarded by mu: inviteIDs it has rung for
	loggedIn chan struct{}   // guarded by mu: closed (and replaced) at each login
}

func newDevice(id DeviceID, e *env, seed uint64, actCtx context.Context) *device {
	return &device{
		id: id, env: e, actCtx: actCtx,
		kick:     make(chan struct{}, 1),
		ready:    make(chan struct{}),
		rng:      rand.New(rand.NewPCG(seed, uint64(id.Index)+0x9e3779b97f4a7c15)),
		seen:     make(map[string]bool),
		rang:     make(map[string]bool),
		loggedIn: make(chan struct{}),
	}
}

// run keeps the device connected until ctx ends, then closes its
// connection. The delayed requests it scheduled are waited for by
// waitActions.
func (d *device) run(ctx context.Context) {
	resume, failures := false, 0
	for ctx.Err() == nil {
		c, seq, err := d.connect(ctx, resume)
		if err != nil {
			failures++
			d.env.log.Debug("connect failed", "device", d.id, "err", err)
			d.backoff(ctx, failures)
			continue
		}
		if !resume {
			close(d.ready)
		}
		resume, failures = true, 0
		d.hold(ctx, c, seq)
		d.mu.Lock()
		d.conn = nil
		d.mu.Unlock()
		if ctx.Err() == nil {
			d.backoff(ctx, 0)
		}
	}
}

// hold waits until c (connection number seq) ends, or is to be replaced,
// or ctx ends, and records how it ended.
func (d *device) hold(ctx context.Context, c *wsConn, seq int) {
	rec := CloseRecord{Device: d.id, Conn: seq, Status: -1}
	defer func() {
		rec.At = d.env.j.now()
		d.env.j.closed(rec)
	}()
	for {
		select {
		case <-c.Done():
			rec.Status, rec.Reason = c.closeStatus(), fmt.Sprint(c.Err())
			return
		case <-ctx.Done():
			c.close()
			rec.Reason = "end of the run"
			return
		case <-d.kick:
			d.mu.Lock()
			replace := seq <= d.kickSeq
			d.mu.Unlock()
			if replace {
				c.close()
				rec.Reason = "replaced by the device (final resume)"
				return
			}
		}
	}
}

// backoff waits a little before a reconnect, longer after failures.
func (d *device) backoff(ctx context.Context, failures int) {
	d.mu.Lock()
	wait := time.Duration(50+d.rng.IntN(250)) * time.Millisecond
	d.mu.Unlock()
	wait = min(wait<<min(failures, 3), 2*time.Second)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// connect dials a live instance and logs in, with the newest eventID
// processed when resume is set.
func (d *device) connect(ctx context.Context, resume bool) (*wsConn, int, error) {
	in := d.env.dep.pick()
	d.mu.Lock()
	d.connSeq++
	seq, after := d.connSeq, d.last
	d.mu.Unlock()
	c, err := dialConn(ctx, in.addr, func(f *protocol.Frame) { d.onFrame(seq, f) })
	if err != nil {
		return nil, 0, err
	}
	params := map[string]any{"userID": d.id.User, "userSig": d.env.tokens[d.id.User]}
	if resume {
		params["lastEventID"] = after
	}
	rec := LoginRecord{Device: d.id, Conn: seq, Instance: in.node, Resume: resume, After: after, Code: CodeNoReply, At: d.env.j.now()}
	f, err := c.call(ctx, protocol.OpLogin, params)
	if err == nil {
		rec.Code = f.Code
	}
	if err != nil || f.Code != 0 {
		d.env.j.login(rec)
		c.drop()
		if err == nil {
			err = fmt.Errorf("login answered %d %q", f.Code, f.Desc)
		}
		return nil, 0, err
	}
	var data protocol.LoginData
	if err := json.Unmarshal(f.Data, &data); err != nil {
		c.drop()
		return nil, 0, fmt.Errorf("login reply data %s: %w", f.Data, err)
	}
	rec.LastEventID = data.LastEventID
	rec.Recovered = data.Recovered != nil && *data.Recovered
	d.env.j.login(rec)
	if resume && !rec.Recovered {
		d.env.log.Warn("resume answered recovered:false", "device", d.id, "lastEventID", after, "instance", in.node)
	}
	d.mu.Lock()
	if !resume && data.LastEventID > d.last {
		d.last = data.LastEventID // the anchor
	}
	d.conn = c
	close(d.loggedIn)
	d.loggedIn = make(chan struct{})
	d.mu.Unlock()
	return c, seq, nil
}

// onFrame records a frame that is not a reply, and rings for a new
// invitation. It runs on the connection's reader.
func (d *device) onFrame(seq int, f *protocol.Frame) {
	if !f.IsEvent() {
		d.env.log.Warn("frame that is neither an event nor an awaited reply", "device", d.id, "id", f.ID, "code", f.Code)
		return
	}
	d.env.j.event(EventRecord{
		Device: d.id, Conn: seq, Kind: f.Event, EventID: f.EventID, InviteID: f.InviteID,
		Inviter: f.Inviter, GroupID: f.GroupID, Invitee: f.Invitee, InviteeList: f.InviteeList,
		Data: f.EventData(), At: d.env.j.now(),
	})
	d.mu.Lock()
	fresh := true
	if f.EventID != "" {
		fresh = !d.seen[f.EventID]
		d.seen[f.EventID] = true
		if f.EventID > d.last {
			d.last = f.EventID
		}
	}
	var op string
	var delay time.Duration
	if fresh && f.Event == "onReceiveNewInvitation" && !d.rang[f.InviteID] {
		d.rang[f.InviteID] = true
		switch x := d.rng.Float64(); {
		case x < acceptShare:
			op = protocol.OpAccept
		case x < acceptShare+rejectShare:
			op = protocol.OpReject
		}
		delay = time.Duration(200+d.rng.IntN(2800)) * time.Millisecond
	}
	d.mu.Unlock()
	if op != "" {
		id := f.InviteID
		d.schedule(delay, func(ctx context.Context) {
			d.send(ctx, RequestRecord{Op: op, InviteID: id}, map[string]any{"inviteID": id, "data": op + " by " + d.id.String()})
		})
	}
}

// schedule runs fn after delay on a goroutine of the device's, unless the
// run ends first.
func (d *device) schedule(delay time.Duration, fn func(ctx context.Context)) {
	d.actions.Go(func() {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-d.actCtx.Done():
		case <-t.C:
			fn(d.actCtx)
		}
	})
}

// waitActions waits for the scheduled requests; the caller has ended
// actCtx and run, so no more are scheduled.
func (d *device) waitActions() { d.actions.Wait() }

// current returns the logged-in connection and its number, waiting up to
// a few seconds for one when the device is between two.
func (d *device) current(ctx context.Context) (*wsConn, int) {
	t := time.NewTimer(3 * time.Second)
	defer t.Stop()
	for {
		d.mu.Lock()
		c, seq, next := d.conn, d.connSeq, d.loggedIn
		d.mu.Unlock()
		if c != nil && !c.closed() {
			return c, seq
		}
		select {
		case <-next:
		case <-t.C:
			return nil, 0
		case <-ctx.Done():
			return nil, 0
		}
	}
}

// send makes one request on the current connection and records it; rec
// has Op and what the request is about. It returns the reply, nil when
// none came or the device had no connection (then nothing was sent and
// nothing is recorded). A connection that left a request unanswered is
// dropped: the app reconnects.
func (d *device) send(ctx context.Context, rec RequestRecord, params map[string]any) *protocol.Frame {
	c, seq := d.current(ctx)
	if c == nil {
		return nil
	}
	rec.Device, rec.Conn, rec.Code, rec.Sent = d.id, seq, CodeNoReply, d.env.j.now()
	if s, ok := params["data"].(string); ok {
		rec.Data = s
	}
	f, err := c.call(ctx, rec.Op, params)
	rec.Answered = d.env.j.now()
	if err == nil {
		rec.Code = f.Code
		if (rec.Op == protocol.OpInvite || rec.Op == protocol.OpInviteInGroup) && f.Code == 0 {
			_ = json.Unmarshal(f.Data, &rec.InviteID)
		}
	}
	d.env.j.request(rec)
	if err != nil {
		if errors.Is(err, errNoReply) && !c.closed() && ctx.Err() == nil {
			c.drop()
		}
		return nil
	}
	return f
}

// replaceConnection has the device close its connection and resume on a
// new one; it returns the number of the connection being replaced (the
// current one), for awaitLoginAfter.
func (d *device) replaceConnection() int {
	d.mu.Lock()
	d.kickSeq = d.connSeq
	mark := d.connSeq
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default: // one is pending already
	}
	return mark
}

// awaitLoginAfter waits until a connection newer than mark is logged in.
func (d *device) awaitLoginAfter(ctx context.Context, mark int) error {
	for {
		d.mu.Lock()
		ok := d.conn != nil && d.connSeq > mark
		next := d.loggedIn
		d.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-next:
		case <-ctx.Done():
			return fmt.Errorf("%v: no new login after connection %d: %w", d.id, mark, ctx.Err())
		}
	}
}

// dropConnection ends the current connection as a lost network does, and
// reports whether there was one.
func (d *device) dropConnection() bool {
	d.mu.Lock()
	c := d.conn
	d.mu.Unlock()
	if c == nil || c.closed() {
		return false
	}
	c.drop()
	return true
}

// online reports whether the device holds a logged-in connection.
func (d *device) online() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conn != nil && !d.conn.closed()
}
