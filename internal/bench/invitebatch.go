package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// The memory scenario's requests: batches of one-to-one invitations from
// many inviters, each waiting for its reply before the next, and the
// cancels and getSignalingInfo calls around them. One request is in flight
// per connection, so a reply is matched by the connection and its id.

// invitePlan spreads n one-to-one invitations over inviters and invitees
// so that none has more than the per-user bound the server's quotas allow
// (active invitations per inviter, pending per invitee, the invite burst):
// invitation k goes from inviter k mod I, the inviter's m-th (m = k div I)
// to invitee (k mod I + m) mod J. With J = I an inviter never invites the
// same invitee twice and each invitee is invited at most ceil(n/I) times;
// a flood plan gives every invitation an invitee of its own.
type invitePlan struct {
	n        int // invitations
	inviters int
	invitees int
	flood    bool // invitee k for invitation k
}

// spreadPlan is n invitations among ceil(n/perUser) inviters and as many
// invitees.
func spreadPlan(n, perUser int) invitePlan {
	u := ceilDiv(n, perUser)
	return invitePlan{n: n, inviters: u, invitees: u}
}

// floodPlan is n invitations from ceil(n/perUser) inviters to n invitees.
func floodPlan(n, perUser int) invitePlan {
	return invitePlan{n: n, inviters: ceilDiv(n, perUser), invitees: n, flood: true}
}

func ceilDiv(a, b int) int {
	if a <= 0 || b <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// pair returns the inviter and the invitee of invitation k.
func (p invitePlan) pair(k int) (inviter, invitee int) {
	i := k % p.inviters
	if p.flood {
		return i, k
	}
	return i, (i + k/p.inviters) % p.invitees
}

// names returns prefix0 … prefix(n-1).
func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// memReply is a reply, reduced to what the scenario reads.
type memReply struct {
	id   int64
	code int
	data string // a string data (an inviteID); "" otherwise
}

// calFrame is an event at the calibration users (calibrate.go).
type calFrame struct {
	conn     int
	kind     EventKind
	inviteID string
	size     int
}

// memRun is the memory scenario's state and the Handler of its
// connections.
type memRun struct {
	cfg     *Config
	errs    ErrorCounter
	replies []chan memReply // by connection index
	cal     chan calFrame   // events at the calibration users
	calConn [2]int          // their connection indexes: the invitee, the inviter
	events  atomic.Int64    // events at the other connections (the flood's timeouts at its inviters)
	stray   atomic.Int64    // replies nobody waited for
	lost    atomic.Int64    // connections that ended
	created atomic.Int64    // invitations made, for the progress line
	phase   atomic.Pointer[string]
}

func newMemRun(cfg *Config, conns int, calInvitee, calInviter int) *memRun {
	m := &memRun{cfg: cfg, replies: make([]chan memReply, conns), cal: make(chan calFrame, 64),
		calConn: [2]int{calInvitee, calInviter}}
	for i := range m.replies {
		m.replies[i] = make(chan memReply, 4)
	}
	m.setPhase("connecting")
	return m
}

func (m *memRun) setPhase(s string) { m.phase.Store(&s) }

func (m *memRun) HandleFrame(c *Conn, f *Frame) {
	k := f.Kind()
	if k == EvNone {
		select {
		case m.replies[c.Index] <- memReply{id: f.ID, code: f.Code, data: f.DataString()}:
		default:
			m.stray.Add(1)
		}
		return
	}
	if c.Index == m.calConn[0] || c.Index == m.calConn[1] {
		select {
		case m.cal <- calFrame{conn: c.Index, kind: k, inviteID: string(f.InviteID), size: f.Size}:
		default:
		}
		return
	}
	m.events.Add(1)
}

func (m *memRun) HandleClose(_ *Conn, err error) {
	m.lost.Add(1)
	m.errs.Add(classifyCloseErr(err))
}

var (
	errConnClosed = errors.New("connection closed")
	errNoReply    = errors.New("no reply within -op-timeout")
)

// call sends one request (send writes it with the id given) and waits up
// to -op-timeout for its reply, skipping late replies to earlier requests.
func (m *memRun) call(ctx context.Context, c *Conn, send func(id int64) error) (memReply, error) {
	id := c.NextID()
	if err := send(id); err != nil {
		return memReply{}, fmt.Errorf("write failed: %s", lastPart(err.Error()))
	}
	t := time.NewTimer(m.cfg.OpTimeout)
	defer t.Stop()
	for {
		select {
		case r := <-m.replies[c.Index]:
			if r.id == id {
				return r, nil
			}
		case <-t.C:
			return memReply{}, errNoReply
		case <-c.Done():
			return memReply{}, errConnClosed
		case <-ctx.Done():
			return memReply{}, ctx.Err()
		}
	}
}

// invite sends one invite and returns its inviteID.
func (m *memRun) invite(ctx context.Context, c *Conn, invitee, data string, timeout int) (string, error) {
	r, err := m.call(ctx, c, func(id int64) error { return c.SendInvite(id, invitee, data, timeout) })
	if err != nil {
		return "", err
	}
	if r.code != 0 {
		return "", &codeError{op: protocol.OpInvite, code: r.code}
	}
	return r.data, nil
}

// codeError is a reply with a non-zero code.
type codeError struct {
	op   string
	code int
}

func (e *codeError) Error() string { return fmt.Sprintf("%s: code %d", e.op, e.code) }

// countErr counts a failed op under a reason without addresses (call's
// errors have none).
func (m *memRun) countErr(ctx context.Context, prefix, op string, err error) {
	if ctx.Err() != nil {
		return // interrupted: not the server's failure
	}
	var ce *codeError
	if errors.As(err, &ce) {
		m.errs.Add(prefix + ce.Error())
		return
	}
	m.errs.Add(prefix + op + ": " + err.Error())
}

// made is one invitation the scenario made, and the connection of its
// inviter.
type made struct {
	conn    *Conn
	id      string
	invitee string
	at      time.Time // when its reply came
}

// batch is what one batch of invitations made.
type batch struct {
	byInviter [][]made // in the order they were made
	created   int64
	failed    int64
	elapsed   time.Duration
	last      made // the one made last
}

// all returns every invitation of the batch.
func (b *batch) all() []made {
	var out []made
	for _, ms := range b.byInviter {
		out = append(out, ms...)
	}
	return out
}

// inviteBatch makes plan's invitations: every inviter at once, each
// sending its invitations one after another. inviters[i] nil (not
// connected) fails its share.
func (m *memRun) inviteBatch(ctx context.Context, plan invitePlan, inviters []*Conn, invitees []string, data string, timeout int) *batch {
	b := &batch{byInviter: make([][]made, plan.inviters)}
	var created, failed atomic.Int64
	var mu sync.Mutex // guards b.last
	start := time.Now()
	var wg sync.WaitGroup
	for i := range plan.inviters {
		c := inviters[i]
		if c == nil {
			n := int64(ceilDiv(plan.n-i, plan.inviters))
			failed.Add(n)
			for range n {
				m.errs.Add("invite: inviter not connected")
			}
			continue
		}
		wg.Go(func() {
			for k := i; k < plan.n && ctx.Err() == nil; k += plan.inviters {
				_, j := plan.pair(k)
				id, err := m.invite(ctx, c, invitees[j], data, timeout)
				if err != nil {
					m.countErr(ctx, "", protocol.OpInvite, err)
					failed.Add(1)
					continue
				}
				at := time.Now()
				x := made{c, id, invitees[j], at}
				b.byInviter[i] = append(b.byInviter[i], x)
				created.Add(1)
				m.created.Add(1)
				mu.Lock()
				if at.After(b.last.at) {
					b.last = x
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	b.created, b.failed, b.elapsed = created.Load(), failed.Load(), time.Since(start)
	return b
}

// cancelAll cancels every invitation of the batches (each inviter's one
// after another, the inviters at once) and returns how many were
// cancelled, and the one cancelled last (the last to be dropped); failures
// are counted as "cleanup: ...".
func (m *memRun) cancelAll(ctx context.Context, batches []*batch) (int64, made) {
	var done atomic.Int64
	var mu sync.Mutex // guards last
	var last made
	var wg sync.WaitGroup
	for _, b := range batches {
		for _, ms := range b.byInviter {
			if len(ms) == 0 {
				continue
			}
			wg.Go(func() {
				for _, x := range ms {
					if ctx.Err() != nil {
						return
					}
					r, err := m.call(ctx, x.conn, func(id int64) error { return x.conn.SendAnswer(id, protocol.OpCancel, x.id) })
					if err == nil && r.code != 0 {
						err = &codeError{op: protocol.OpCancel, code: r.code}
					}
					if err != nil {
						m.countErr(ctx, "cleanup: ", protocol.OpCancel, err)
						continue
					}
					done.Add(1)
					at := time.Now()
					mu.Lock()
					if at.After(last.at) {
						last = made{x.conn, x.id, x.invitee, at}
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return done.Load(), last
}

// gone reports whether the server has dropped invitation x: its
// getSignalingInfo is answered 8010 (unknown, or ended longer than the
// retention ago).
func (m *memRun) gone(ctx context.Context, x made) (bool, error) {
	r, err := m.call(ctx, x.conn, func(id int64) error { return x.conn.SendAnswer(id, protocol.OpGetSignalingInfo, x.id) })
	if err != nil {
		return false, err
	}
	switch r.code {
	case protocol.CodeInviteEnded:
		return true, nil
	case 0:
		return false, nil
	}
	return false, &codeError{op: protocol.OpGetSignalingInfo, code: r.code}
}
