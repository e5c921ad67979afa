package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// setupKind is how one invitation of the calls scenario ends.
type setupKind uint8

const (
	kindAccept  setupKind = iota // callee accepts: a call setup
	kindReject                   // callee rejects
	kindCancel                   // caller cancels once the callee has it
	kindTimeout                  // invite with timeout 1, nobody answers (timeouts.go)
	numKinds
)

var kindNames = [numKinds]string{"accepted", "rejected", "cancelled", "timed out"}

// What a setup still waits for. A setup is complete when every frame its
// kind leads to has arrived, so that no frame of it can arrive after its
// pair has been given the next setup. Timeout invitations use the same
// bits (timeouts.go).
const (
	needInviteReply uint8 = 1 << iota
	needDelivery          // onReceiveNewInvitation at the callee
	needAnswerReply       // the callee's accept/reject reply, or the caller's cancel reply
	needCallerEvent       // onInviteeAccepted / onInviteeRejected / onInvitationTimeout at the caller
	needCalleeEvent       // onInvitationCancelled / onInvitationTimeout at the callee
)

var kindNeeds = [numKinds]uint8{
	kindAccept:  needInviteReply | needDelivery | needAnswerReply | needCallerEvent,
	kindReject:  needInviteReply | needDelivery | needAnswerReply | needCallerEvent,
	kindCancel:  needInviteReply | needDelivery | needAnswerReply | needCalleeEvent,
	kindTimeout: needInviteReply | needDelivery | needCallerEvent | needCalleeEvent,
}

// callerEvent is the event that ends each kind at the caller (EvNone:
// none does).
var callerEvent = [numKinds]EventKind{kindAccept: EvAccepted, kindReject: EvRejected}

// quarantine is how long a pair whose setup failed rests before its next
// setup, so that late frames of the failed invitation arrive while the pair
// is idle and are dropped as stale.
const quarantine = 2 * time.Second

// pair is a caller and a callee, each its own connection, doing one setup
// (accepted, rejected or cancelled) at a time, plus any number of timeout
// invitations in the other direction (timeouts.go), which take a second
// each and must not hold the pair up. Its state is touched by both
// connections' readers, the driver and the watchdog, hence the mutex
// (uncontended almost always).
type pair struct {
	caller, callee *Conn // set before the driver starts; read-only after

	mu         sync.Mutex
	active     bool // a setup is under way
	dead       bool // a connection of the pair has ended
	gen        uint64
	kind       setupKind
	pending    uint8
	start      time.Time
	measured   bool // started after the warmup
	inviteReq  int64
	answerReq  int64
	cancelSent bool
	inviteID   string
	restUntil  time.Time // quarantined until then; zero when not

	timeouts []timeoutInvite // in the order they were sent
}

// action is what a locked section decided to do once the lock is released:
// write a request, give back the setup's in-flight slot, requeue the pair.
type action struct {
	send     bool
	conn     *Conn
	id       int64
	op       string
	inviteID string
	gen      uint64

	release bool // the setup ended: free its in-flight slot
	requeue bool // the pair can take the next setup
}

// callsRun is the calls scenario. It is the Handler of every pair
// connection: connection 2i is pair i's caller, 2i+1 its callee.
type callsRun struct {
	cfg   *Config
	data  string
	epoch time.Time
	pairs []*pair
	free  chan *pair    // pairs ready for a setup
	slots chan struct{} // one token per setup in flight
	errs  ErrorCounter

	inviteReply, delivery *Histogram
	byKind                [numKinds]*Histogram // invite → the kind's final frame
	// lateness: how long after its deadline a timeout reached its inviter,
	// the deadline taken as the invite's sending plus its timeout: an upper
	// bound, as the server starts the clock a little later.
	lateness *Histogram

	from, to   atomic.Int64 // measured window, ns since epoch; from is MaxInt64 until the warmup ends
	started    [numKinds]atomic.Int64
	completed  [numKinds]atomic.Int64
	inWindow   [numKinds]atomic.Int64 // completed within [from, to]
	sinceBegin atomic.Int64           // completed after from (the cost window)

	deliveries           atomic.Int64
	deliveriesInWindow   atomic.Int64
	deliveriesSinceBegin atomic.Int64
	timeoutsToCaller     atomic.Int64
	stale                atomic.Int64 // frames that belong to no setup under way
	lostEvents           atomic.Int64 // events owed to a setup that failed for want of them (owedEvents)
	active               atomic.Int64 // setups under way
	activeTimeouts       atomic.Int64 // timeout invitations under way
	timeoutsSkipped      atomic.Int64
	nextTimeoutPair      int // owned by the driver

	// onStale, when set, sees every stale frame (on its connection's
	// reader, after the count); set before the connections start.
	onStale func(c *Conn, f *Frame)
}

func (r *callsRun) since(t time.Time) int64 { return int64(t.Sub(r.epoch)) }

func (r *callsRun) HandleFrame(c *Conn, f *Frame) {
	p := r.pairs[c.Index/2]
	onCaller := c.Index%2 == 0
	now := time.Now()
	var a action
	p.mu.Lock()
	ok := false
	if p.active {
		if onCaller {
			ok = r.callerFrame(p, f, now, &a)
		} else {
			ok = r.calleeFrame(p, f, now, &a)
		}
		if p.active {
			r.maybeCancel(p, &a)
			if p.pending == 0 {
				r.completeLocked(p, now, &a)
			}
		}
	}
	if !ok && len(p.timeouts) > 0 {
		ok = r.timeoutFrame(p, onCaller, f, now)
	}
	p.mu.Unlock()
	if !ok {
		r.stale.Add(1)
		if r.onStale != nil {
			r.onStale(c, f)
		}
	}
	r.after(p, a)
}

// callerFrame handles a frame on the caller's connection with p.mu held;
// it returns false for a frame that belongs to no current setup.
func (r *callsRun) callerFrame(p *pair, f *Frame, now time.Time, a *action) bool {
	switch f.Kind() {
	case EvNone:
		switch {
		case f.ID != 0 && f.ID == p.inviteReq:
			p.inviteReq = 0
			if f.Code != 0 {
				// The invitation was not made, except perhaps on 90994.
				r.failLocked(p, fmt.Sprintf("invite: code %d", f.Code), f.Code != protocol.CodeInternal, a)
				return true
			}
			id := f.DataString()
			if p.inviteID == "" {
				p.inviteID = id
			} else if p.inviteID != id {
				r.failLocked(p, "invite reply and onReceiveNewInvitation name different inviteIDs", false, a)
				return true
			}
			if p.measured {
				r.inviteReply.Record(now.Sub(p.start))
			}
			p.pending &^= needInviteReply
		case f.ID != 0 && f.ID == p.answerReq && p.kind == kindCancel:
			p.answerReq = 0
			if f.Code != 0 {
				r.failLocked(p, fmt.Sprintf("cancel: code %d", f.Code), false, a)
				return true
			}
			p.pending &^= needAnswerReply
		default:
			return false
		}
	case EvAccepted, EvRejected, EvTimeout, EvCancelled:
		// Only the invite reply and the delivery may introduce an inviteID;
		// any other event must match one already known, so that a late
		// event of an earlier, failed invitation (or a timeout invitation)
		// is never taken for this one.
		if p.inviteID == "" || string(f.InviteID) != p.inviteID {
			return false
		}
		if f.Kind() != callerEvent[p.kind] || p.pending&needCallerEvent == 0 {
			r.failLocked(p, "caller got "+string(f.Event)+" for an invitation meant to be "+kindNames[p.kind], false, a)
			return true
		}
		if p.measured {
			r.byKind[p.kind].Record(now.Sub(p.start))
		}
		p.pending &^= needCallerEvent
	default:
		return false
	}
	return true
}

// calleeFrame handles a frame on the callee's connection with p.mu held.
func (r *callsRun) calleeFrame(p *pair, f *Frame, now time.Time, a *action) bool {
	switch f.Kind() {
	case EvNewInvitation:
		if p.pending&needDelivery == 0 {
			return false
		}
		if p.inviteID == "" {
			p.inviteID = string(f.InviteID)
		} else if string(f.InviteID) != p.inviteID {
			return false
		}
		if p.measured {
			r.delivery.Record(now.Sub(p.start))
		}
		r.countDelivery(now)
		p.pending &^= needDelivery
		if p.kind == kindAccept || p.kind == kindReject {
			op := protocol.OpAccept
			if p.kind == kindReject {
				op = protocol.OpReject
			}
			p.answerReq = p.callee.NextID()
			*a = action{send: true, conn: p.callee, id: p.answerReq, op: op, inviteID: p.inviteID, gen: p.gen}
		}
	case EvNone:
		if f.ID == 0 || f.ID != p.answerReq || (p.kind != kindAccept && p.kind != kindReject) {
			return false
		}
		p.answerReq = 0
		if f.Code != 0 {
			op := protocol.OpAccept
			if p.kind == kindReject {
				op = protocol.OpReject
			}
			r.failLocked(p, fmt.Sprintf("%s: code %d", op, f.Code), false, a)
			return true
		}
		p.pending &^= needAnswerReply
	case EvCancelled, EvTimeout, EvAccepted, EvRejected:
		if p.inviteID == "" || string(f.InviteID) != p.inviteID {
			return false
		}
		if p.kind != kindCancel || f.Kind() != EvCancelled || p.pending&needCalleeEvent == 0 {
			r.failLocked(p, "callee got "+string(f.Event)+" for an invitation meant to be "+kindNames[p.kind], false, a)
			return true
		}
		p.pending &^= needCalleeEvent
	default:
		return false
	}
	return true
}

// maybeCancel sends the cancel of a cancel setup once the callee has the
// invitation and the caller knows its inviteID.
func (r *callsRun) maybeCancel(p *pair, a *action) {
	if p.kind != kindCancel || p.cancelSent || p.pending&(needInviteReply|needDelivery) != 0 {
		return
	}
	p.cancelSent = true
	p.answerReq = p.caller.NextID()
	*a = action{send: true, conn: p.caller, id: p.answerReq, op: protocol.OpCancel, inviteID: p.inviteID, gen: p.gen}
}

// completeLocked ends a setup that got everything it waited for.
func (r *callsRun) completeLocked(p *pair, now time.Time, a *action) {
	p.active = false
	r.active.Add(-1)
	if p.measured && p.kind == kindCancel {
		r.byKind[kindCancel].Record(now.Sub(p.start))
	}
	r.countCompletion(p.kind, now)
	a.release, a.requeue = true, true
}

// countCompletion counts an invitation of kind completed at now, in the
// totals and, by time, in the throughput and cost windows.
func (r *callsRun) countCompletion(kind setupKind, now time.Time) {
	r.completed[kind].Add(1)
	if t := r.since(now); t >= r.from.Load() {
		r.sinceBegin.Add(1)
		if t <= r.to.Load() {
			r.inWindow[kind].Add(1)
		}
	}
}

// countDelivery counts an onReceiveNewInvitation received at now.
func (r *callsRun) countDelivery(now time.Time) {
	r.deliveries.Add(1)
	if t := r.since(now); t >= r.from.Load() {
		r.deliveriesSinceBegin.Add(1)
		if t <= r.to.Load() {
			r.deliveriesInWindow.Add(1)
		}
	}
}

// failLocked ends a setup as failed. reuse says the invitation surely does
// not exist, so the pair may go on at once; otherwise it rests a while.
func (r *callsRun) failLocked(p *pair, reason string, reuse bool, a *action) {
	r.errs.Add(reason)
	p.active = false
	r.active.Add(-1)
	a.send = false
	a.release, a.requeue = true, reuse
	if !reuse {
		p.restUntil = time.Now().Add(quarantine)
	}
}

// after carries out an action outside the pair's lock.
func (r *callsRun) after(p *pair, a action) {
	if a.send {
		if err := a.conn.SendAnswer(a.id, a.op, a.inviteID); err != nil {
			r.failPair(p, a.gen, a.op+": write failed: "+lastPart(err.Error()))
		}
	}
	if a.release {
		<-r.slots
	}
	if a.requeue {
		r.free <- p // never blocks: the channel holds every pair
	}
}

// failPair fails setup gen of p if it is still under way.
func (r *callsRun) failPair(p *pair, gen uint64, reason string) {
	var a action
	p.mu.Lock()
	if p.active && p.gen == gen {
		r.failLocked(p, reason, false, &a)
	}
	p.mu.Unlock()
	r.after(p, a)
}

func (r *callsRun) HandleClose(c *Conn, err error) {
	r.errs.Add(classifyCloseErr(err))
	p := r.pairs[c.Index/2]
	var a action
	p.mu.Lock()
	p.dead = true
	if p.active {
		p.active = false
		r.active.Add(-1)
		a.release = true
	}
	r.activeTimeouts.Add(-int64(len(p.timeouts)))
	p.timeouts = nil
	p.mu.Unlock()
	r.after(p, a)
}

// start begins a setup of kind (not kindTimeout) on p, which holds one of
// the in-flight slots.
func (r *callsRun) start(p *pair, kind setupKind) {
	id := p.caller.NextID()
	now := time.Now()
	p.mu.Lock()
	if p.dead {
		p.mu.Unlock()
		<-r.slots
		return
	}
	p.gen++
	gen := p.gen
	p.active, p.kind = true, kind
	p.pending = kindNeeds[kind]
	p.inviteReq, p.answerReq, p.cancelSent, p.inviteID = id, 0, false, ""
	p.start, p.measured = now, r.since(now) >= r.from.Load()
	r.active.Add(1)
	p.mu.Unlock()
	r.started[kind].Add(1)
	if err := p.caller.SendInvite(id, p.callee.User, r.data, r.cfg.InviteTimeout); err != nil {
		r.failPair(p, gen, "invite: write failed: "+lastPart(err.Error()))
	}
}

// pick draws the next setup's kind from the configured mix.
func (r *callsRun) pick(rng *rand.Rand) setupKind {
	x := rng.Float64() * 100
	switch {
	case x < r.cfg.TimeoutPct:
		return kindTimeout
	case x < r.cfg.TimeoutPct+r.cfg.CancelPct:
		return kindCancel
	case x < r.cfg.TimeoutPct+r.cfg.CancelPct+r.cfg.RejectPct:
		return kindReject
	}
	return kindAccept
}

// drive starts invitations until ctx ends: setups at most -inflight at a
// time, timeout invitations (which wait a second for the server's clock)
// beside them without a slot, all paced to -rate when it is set.
func (r *callsRun) drive(ctx context.Context) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))
	start := time.Now()
	for n := int64(0); ctx.Err() == nil; n++ {
		if r.cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(n) / r.cfg.Rate * float64(time.Second)))
			if !sleepCtx(ctx, time.Until(due)) {
				return
			}
		}
		kind := r.pick(rng)
		if kind == kindTimeout {
			r.startTimeout()
			continue
		}
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		select {
		case p := <-r.free:
			r.start(p, kind)
		case <-ctx.Done():
			<-r.slots
			return
		}
	}
}

// watchdog fails setups that have waited longer than -op-timeout and
// returns rested pairs to service. It owns no state of its own; it stops
// with ctx.
func (r *callsRun) watchdog(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, p := range r.pairs {
				var a action
				p.mu.Lock()
				switch {
				case p.active:
					if now.Sub(p.start) > r.cfg.OpTimeout {
						r.lostEvents.Add(owedEvents(p.pending, p.kind))
						r.failLocked(p, "no "+missing(p.pending, p.kind)+" within -op-timeout", false, &a)
					}
				case !p.restUntil.IsZero() && now.After(p.restUntil):
					p.restUntil = time.Time{}
					a.requeue = !p.dead
				}
				r.expireTimeouts(p, now)
				p.mu.Unlock()
				r.after(p, a)
			}
		}
	}
}

// owedEvents counts the events a stuck invitation still waits for that the
// server owed it: the ring once the invite was answered with an inviteID,
// the answer's event once the answer was accepted, and the timeout events
// of a timeout invitation. A missing reply is a failure of its own, not a
// lost event.
func owedEvents(pending uint8, kind setupKind) int64 {
	if pending&needInviteReply != 0 {
		return 0 // the invitation may not exist
	}
	var n int64
	if pending&needDelivery != 0 {
		n++
	}
	if kind == kindTimeout || pending&needAnswerReply == 0 {
		for _, bit := range []uint8{needCallerEvent, needCalleeEvent} {
			if pending&bit != 0 {
				n++
			}
		}
	}
	return n
}

// missing names the first frame a stuck setup still waits for.
func missing(pending uint8, kind setupKind) string {
	switch {
	case pending&needInviteReply != 0:
		return "invite reply"
	case pending&needDelivery != 0:
		return "onReceiveNewInvitation"
	case pending&needAnswerReply != 0:
		return [numKinds]string{kindAccept: "accept reply", kindReject: "reject reply", kindCancel: "cancel reply"}[kind]
	case pending&needCallerEvent != 0:
		return [numKinds]string{kindAccept: "onInviteeAccepted", kindReject: "onInviteeRejected", kindTimeout: "onInvitationTimeout at the inviter"}[kind]
	default:
		return [numKinds]string{kindCancel: "onInvitationCancelled", kindTimeout: "onInvitationTimeout at the invitee"}[kind]
	}
}
