package bench

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// The invites scenario is issue #11's load shape, the one signald was
// compared with a general-purpose real-time server in: -callees idle
// logged-in users, -callers callers with -per-caller invites in flight
// each, a warm-up, then the measured load. Each invite (timeout
// -invite-timeout, small data) goes to a callee picked round-robin, and
// the measured delivery is that callee's onReceiveNewInvitation; the
// caller slot's next invite goes out as soon as it arrived (closed loop),
// or when -rate's schedule says (paced). Callees never answer. So that
// the invitations do not pile up against signald's quotas (100 active per
// inviter, 100 pending per invitee), the caller cancels each one once it
// has been delivered (-cancel-delivered, counted apart: a cancel is not a
// delivery).
//
// Connections 0 … P-1 are the callers, P … P+N-1 the callees. Every
// invitation in flight has a callee of its own (invCallee.owner), so that a
// delivery tells by its callee which invitation it is: the delivery may
// come before the invite's reply, which then finds its slot moved on and
// is matched in invCaller.late instead.

// Owner values of a callee that is no slot's.
const (
	calleeFree    int32 = -1
	calleeResting int32 = -2 // an invitation to it failed; see quarantine
	calleeDead    int32 = -3 // its connection ended
)

// noCalleeWait is how long a slot waits when every callee is taken.
const noCalleeWait = 100 * time.Millisecond

// invCallee is one idle callee.
type invCallee struct {
	user string
	// owner is the slot whose invitation it is waiting for, or one of the
	// callee* values. A slot takes it with a compare-and-swap from
	// calleeFree and gives it back the same way, so that a connection's end
	// (calleeDead) is never overwritten.
	owner atomic.Int32
	// restUntil is when a resting callee may be used again, ns since the
	// run's epoch; stored before owner becomes calleeResting.
	restUntil atomic.Int64
}

// invSlot is one invite in flight of a caller: it sends an invite, waits
// for its delivery, and sends the next.
type invSlot struct {
	caller *invCaller // immutable
	index  int32      // in invitesRun.slots; immutable

	// Guarded by caller.mu.
	active    bool // an invite is under way
	queued    bool // paced: in invitesRun.ready, waiting for the driver
	gen       uint64
	callee    int32
	start     time.Time
	measured  bool      // started after the warm-up
	inviteReq int64     // the invite's request id until its reply came; 0 after
	inviteID  string    // from the reply, when it came before the delivery
	restUntil time.Time // not zero: idle until then (no free callee, or a write failed)
}

// lateReply is an invitation delivered before its invite's reply came
// (invCaller.late). The reply is then checked against the delivery's
// inviteID. The caller's reader can lag behind the callees' on a busy
// machine, so a slot may be several deliveries ahead of its replies.
type lateReply struct {
	inviteID string
	start    time.Time
	measured bool
}

// invCaller is one caller's connection and its slots.
type invCaller struct {
	slots []*invSlot // immutable

	mu      sync.Mutex
	conn    *Conn               // guarded by mu (set once connected; nil if it did not)
	dead    bool                // guarded by mu: the connection ended
	late    map[int64]lateReply // guarded by mu: invites delivered, awaiting their reply, by request id
	cancels map[int64]time.Time // guarded by mu: cancels awaiting their reply, by request id, when sent
}

// invAction is what a locked section decided to send once the lock is
// released. The invite goes before the cancel of the invitation just
// delivered: signald serves one connection's requests in order, so the
// measured invite is not queued behind that cancel.
type invAction struct {
	invite    *invSlot // send the invite prepared on it
	gen       uint64
	inviteReq int64
	invitee   string

	cancelOn  *invCaller // send a cancel of cancelID with request id cancelReq
	cancelReq int64
	cancelID  string

	enqueue *invSlot // paced: hand the slot to the driver
}

// invitesRun is the invites scenario and the Handler of its connections.
type invitesRun struct {
	cfg     *Config
	data    string
	epoch   time.Time
	callers []*invCaller
	slots   []*invSlot
	callees []invCallee
	next    atomic.Uint64 // round-robin position among the callees
	ready   chan *invSlot // paced: idle slots, for the driver; holds every slot
	stop    atomic.Bool   // the load has ended: no new invite

	errs                            ErrorCounter
	delivery, inviteReply, cancelRT *Histogram

	from, to             atomic.Int64 // measured window, ns since epoch; from is MaxInt64 until the warm-up ends
	sent                 atomic.Int64 // invites sent
	deliveries           atomic.Int64
	deliveriesInWindow   atomic.Int64
	deliveriesSinceBegin atomic.Int64
	cancelsSent          atomic.Int64
	cancelled            atomic.Int64 // cancels answered 0
	cancelsFailed        atomic.Int64 // answered with a code, unanswered within -op-timeout, or not written
	cancelEvents         atomic.Int64 // onInvitationCancelled at the callees
	lateReplies          atomic.Int64 // invite replies that came after their delivery
	stale                atomic.Int64
	noCallee             atomic.Int64 // times a slot found no free callee
	active               atomic.Int64 // invites under way
	lateOut              atomic.Int64 // invites delivered, awaiting their reply
	cancelsOut           atomic.Int64 // cancels awaiting their reply
}

func newInvitesRun(cfg *Config) *invitesRun {
	r := &invitesRun{
		cfg: cfg, data: cfg.inviteData(), epoch: time.Now(),
		callers: make([]*invCaller, cfg.Callers), callees: make([]invCallee, cfg.Callees),
		ready:    make(chan *invSlot, cfg.Callers*cfg.PerCaller),
		delivery: NewHistogram(), inviteReply: NewHistogram(), cancelRT: NewHistogram(),
	}
	for i := range r.callers {
		cl := &invCaller{late: map[int64]lateReply{}, cancels: map[int64]time.Time{}}
		for range cfg.PerCaller {
			s := &invSlot{caller: cl, index: int32(len(r.slots)), callee: calleeFree}
			cl.slots = append(cl.slots, s)
			r.slots = append(r.slots, s)
		}
		r.callers[i] = cl
	}
	for i := range r.callees {
		r.callees[i].user = cfg.Prefix + "-e" + strconv.Itoa(i)
		r.callees[i].owner.Store(calleeFree) // nobody picks one before attach
	}
	r.from.Store(math.MaxInt64)
	r.to.Store(math.MaxInt64)
	return r
}

func (r *invitesRun) since(t time.Time) int64 { return int64(t.Sub(r.epoch)) }

// users returns the connections' users: the callers, then the callees.
func (r *invitesRun) users() []string {
	users := make([]string, 0, len(r.callers)+len(r.callees))
	for i := range r.callers {
		users = append(users, r.cfg.Prefix+"-c"+strconv.Itoa(i))
	}
	for i := range r.callees {
		users = append(users, r.callees[i].user)
	}
	return users
}

// attach hands the run its connections (nil: not connected) and returns
// how many callers and callees have one. A connection that has already
// ended stays ended (HandleClose).
func (r *invitesRun) attach(conns []*Conn) (callers, callees int) {
	for i, cl := range r.callers {
		cl.mu.Lock()
		cl.conn = conns[i]
		if cl.conn == nil {
			cl.dead = true
		} else {
			callers++
		}
		cl.mu.Unlock()
	}
	for i := range r.callees {
		if conns[len(r.callers)+i] == nil {
			r.callees[i].owner.Store(calleeDead)
		} else {
			callees++
		}
	}
	return callers, callees
}

// pickCallee takes the next free callee round-robin for slot and returns
// its index, or -1 when every callee is taken, resting or gone.
func (r *invitesRun) pickCallee(slot int32) int32 {
	n := uint64(len(r.callees))
	for range n {
		k := int32((r.next.Add(1) - 1) % n)
		if r.callees[k].owner.CompareAndSwap(calleeFree, slot) {
			return k
		}
	}
	return -1
}

// releaseCallee gives s's callee back: free when the invitation to it has
// surely ended or been delivered, else resting for quarantine, so that a
// late delivery of the failed invitation finds it nobody's.
func (r *invitesRun) releaseCallee(s *invSlot, now time.Time, free bool) {
	k := s.callee
	s.callee = calleeFree
	if k < 0 {
		return
	}
	c := &r.callees[k]
	if free {
		c.owner.CompareAndSwap(s.index, calleeFree)
		return
	}
	c.restUntil.Store(r.since(now.Add(quarantine)))
	c.owner.CompareAndSwap(s.index, calleeResting)
}

// prepareLocked makes s's next invite, with s.caller.mu held: it takes a
// callee and fills a for the send. Without a free callee the slot waits
// noCalleeWait for the watchdog.
func (r *invitesRun) prepareLocked(s *invSlot, now time.Time, a *invAction) {
	cl := s.caller
	k := r.pickCallee(s.index)
	if k < 0 {
		r.noCallee.Add(1)
		s.restUntil = now.Add(noCalleeWait)
		return
	}
	s.gen++
	s.active, s.callee, s.start, s.measured = true, k, now, r.since(now) >= r.from.Load()
	s.inviteReq, s.inviteID, s.restUntil = cl.conn.NextID(), "", time.Time{}
	r.active.Add(1)
	a.invite, a.gen, a.inviteReq, a.invitee = s, s.gen, s.inviteReq, r.callees[k].user
}

// nextLocked decides what an idle slot does next, with s.caller.mu held:
// nothing once the load has ended, the next invite at once (closed loop),
// or a place in the driver's queue (paced).
func (r *invitesRun) nextLocked(s *invSlot, now time.Time, a *invAction) {
	if r.stop.Load() || s.caller.dead || s.active {
		return
	}
	if r.cfg.Rate > 0 {
		if !s.queued {
			s.queued = true
			a.enqueue = s
		}
		return
	}
	r.prepareLocked(s, now, a)
}

// failLocked ends s's invite as failed, with s.caller.mu held. calleeFree
// says the invitation surely does not exist (its callee may take the next
// at once); retry, that the slot may go on at once rather than wait.
func (r *invitesRun) failLocked(s *invSlot, reason string, calleeFree, retry bool, now time.Time, a *invAction) {
	r.errs.Add(reason)
	s.active, s.inviteReq = false, 0
	r.active.Add(-1)
	r.releaseCallee(s, now, calleeFree)
	if retry {
		r.nextLocked(s, now, a)
	} else {
		s.restUntil = now.Add(quarantine)
	}
}

func (r *invitesRun) HandleFrame(c *Conn, f *Frame) {
	now := time.Now()
	var a invAction
	if c.Index < len(r.callers) {
		if f.Kind() != EvNone || f.ID == 0 {
			r.stale.Add(1) // a caller gets replies only
			return
		}
		data, _ := stringValue(f.Data)
		a = r.callerReply(r.callers[c.Index], f.ID, f.Code, data, now)
	} else {
		switch f.Kind() {
		case EvNewInvitation:
			a = r.delivered(int32(c.Index-len(r.callers)), f.InviteID, now)
		case EvCancelled:
			r.cancelEvents.Add(1)
			return
		default:
			r.stale.Add(1)
			return
		}
	}
	r.do(a)
}

// callerReply handles the reply with request id id on cl's connection: an
// invite's (the current one of a slot, or one delivered already) or a
// cancel's.
func (r *invitesRun) callerReply(cl *invCaller, id int64, code int, data []byte, now time.Time) invAction {
	var a invAction
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, s := range cl.slots {
		switch {
		case s.active && id == s.inviteReq:
			s.inviteReq = 0
			if s.measured {
				r.inviteReply.Record(now.Sub(s.start))
			}
			if code != 0 {
				// The invitation was not made, except perhaps on 90994.
				r.failLocked(s, fmt.Sprintf("invite: code %d", code), code != protocol.CodeInternal, true, now, &a)
				return a
			}
			s.inviteID = string(data)
			return a
		}
	}
	if p, ok := cl.late[id]; ok {
		delete(cl.late, id)
		r.lateOut.Add(-1)
		r.lateReplies.Add(1)
		if p.measured {
			r.inviteReply.Record(now.Sub(p.start))
		}
		if code != 0 {
			r.errs.Add(fmt.Sprintf("invite: code %d after its onReceiveNewInvitation", code))
		} else if string(data) != p.inviteID {
			r.errs.Add("invite reply and onReceiveNewInvitation name different inviteIDs")
		}
		return a
	}
	if sent, ok := cl.cancels[id]; ok {
		delete(cl.cancels, id)
		r.cancelsOut.Add(-1)
		if r.since(sent) >= r.from.Load() {
			r.cancelRT.Record(now.Sub(sent))
		}
		if code != 0 {
			r.cancelsFailed.Add(1)
			r.errs.Code(protocol.OpCancel, code)
		} else {
			r.cancelled.Add(1)
		}
		return a
	}
	r.stale.Add(1)
	return a
}

// delivered handles an onReceiveNewInvitation at callee k: the delivery of
// the invitation of the slot that owns k. It frees the callee, cancels the
// invitation (-cancel-delivered) and starts the slot's next invite.
func (r *invitesRun) delivered(k int32, inviteID []byte, now time.Time) invAction {
	var a invAction
	o := r.callees[k].owner.Load()
	if o < 0 {
		r.stale.Add(1) // a late delivery of a failed invitation
		return a
	}
	s := r.slots[o]
	cl := s.caller
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if !s.active || s.callee != k || (s.inviteID != "" && s.inviteID != string(inviteID)) {
		r.stale.Add(1)
		return a
	}
	if s.measured {
		r.delivery.Record(now.Sub(s.start))
	}
	r.countDelivery(now)
	id := string(inviteID)
	if s.inviteReq != 0 {
		cl.late[s.inviteReq] = lateReply{inviteID: id, start: s.start, measured: s.measured}
		r.lateOut.Add(1)
	}
	s.active, s.inviteReq = false, 0
	r.active.Add(-1)
	r.releaseCallee(s, now, true)
	if r.cfg.CancelDelivered && !cl.dead {
		a.cancelOn, a.cancelReq, a.cancelID = cl, cl.conn.NextID(), id
		cl.cancels[a.cancelReq] = now
		r.cancelsOut.Add(1)
		r.cancelsSent.Add(1)
	}
	r.nextLocked(s, now, &a)
	return a
}

// countDelivery counts a delivery received at now, in the totals and, by
// time, in the throughput and cost windows.
func (r *invitesRun) countDelivery(now time.Time) {
	r.deliveries.Add(1)
	if t := r.since(now); t >= r.from.Load() {
		r.deliveriesSinceBegin.Add(1)
		if t <= r.to.Load() {
			r.deliveriesInWindow.Add(1)
		}
	}
}

// do carries out an action outside the locks.
func (r *invitesRun) do(a invAction) {
	if s := a.invite; s != nil {
		r.sent.Add(1)
		if err := s.caller.conn.SendInvite(a.inviteReq, a.invitee, r.data, r.cfg.InviteTimeout); err != nil {
			r.failSend(s, a.gen, "invite: write failed: "+lastPart(err.Error()))
		}
	}
	if cl := a.cancelOn; cl != nil {
		if err := cl.conn.SendAnswer(a.cancelReq, protocol.OpCancel, a.cancelID); err != nil {
			cl.mu.Lock()
			if _, ok := cl.cancels[a.cancelReq]; ok {
				delete(cl.cancels, a.cancelReq)
				r.cancelsOut.Add(-1)
				r.cancelsFailed.Add(1)
				r.errs.Add("cancel: write failed: " + lastPart(err.Error()))
			}
			cl.mu.Unlock()
		}
	}
	if a.enqueue != nil {
		r.ready <- a.enqueue // never blocks: the channel holds every slot, each queued once
	}
}

// failSend fails invite gen of s, whose request could not be written. The
// slot rests: the connection is most likely gone.
func (r *invitesRun) failSend(s *invSlot, gen uint64, reason string) {
	var a invAction
	s.caller.mu.Lock()
	if s.active && s.gen == gen {
		r.failLocked(s, reason, false, false, time.Now(), &a)
	}
	s.caller.mu.Unlock()
	r.do(a)
}

func (r *invitesRun) HandleClose(c *Conn, err error) {
	r.errs.Add(classifyCloseErr(err))
	if c.Index >= len(r.callers) {
		// An invitation to it in flight fails at -op-timeout.
		r.callees[c.Index-len(r.callers)].owner.Store(calleeDead)
		return
	}
	cl := r.callers[c.Index]
	now := time.Now()
	cl.mu.Lock()
	cl.dead = true
	for _, s := range cl.slots {
		if s.active {
			s.active = false
			r.active.Add(-1)
			r.releaseCallee(s, now, false)
		}
	}
	r.lateOut.Add(-int64(len(cl.late)))
	clear(cl.late)
	r.cancelsOut.Add(-int64(len(cl.cancels)))
	clear(cl.cancels)
	cl.mu.Unlock()
}

// kick starts s's next invite, if it is idle: the first of the run, or the
// driver's paced one.
func (r *invitesRun) kick(s *invSlot) {
	var a invAction
	s.caller.mu.Lock()
	s.queued = false
	if !s.caller.dead && !s.active && !r.stop.Load() {
		r.prepareLocked(s, time.Now(), &a)
	}
	s.caller.mu.Unlock()
	r.do(a)
}

// drive starts the load until ctx ends. Closed loop (no -rate), it starts
// every slot once and returns: each delivery starts its slot's next invite
// on the callee's reader. Paced, it sends invites on idle slots on -rate's
// schedule, start + n/rate, as the calls scenario does.
func (r *invitesRun) drive(ctx context.Context) {
	if r.cfg.Rate <= 0 {
		for _, s := range r.slots {
			r.kick(s)
		}
		return
	}
	for _, s := range r.slots {
		s.caller.mu.Lock()
		if !s.caller.dead {
			s.queued = true
			r.ready <- s
		}
		s.caller.mu.Unlock()
	}
	start := time.Now()
	for n := int64(0); ; n++ {
		due := start.Add(time.Duration(float64(n) / r.cfg.Rate * float64(time.Second)))
		if !sleepCtx(ctx, time.Until(due)) {
			return
		}
		select {
		case s := <-r.ready:
			r.kick(s)
		case <-ctx.Done():
			return
		}
	}
}

// watchdog fails invites undelivered after -op-timeout and cancels
// unanswered after it, restarts slots that waited, and returns resting
// callees to service. It stops with ctx.
func (r *invitesRun) watchdog(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	acts := make([]invAction, 0, r.cfg.PerCaller)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, cl := range r.callers {
				acts = acts[:0]
				cl.mu.Lock()
				for _, s := range cl.slots {
					var a invAction
					switch {
					case s.active && now.Sub(s.start) > r.cfg.OpTimeout:
						r.failLocked(s, "no onReceiveNewInvitation within -op-timeout", false, true, now, &a)
					case !s.active && !s.restUntil.IsZero() && now.After(s.restUntil):
						s.restUntil = time.Time{}
						r.nextLocked(s, now, &a)
					}
					acts = append(acts, a)
				}
				for id, l := range cl.late {
					if now.Sub(l.start) > r.cfg.OpTimeout {
						delete(cl.late, id)
						r.lateOut.Add(-1)
						r.errs.Add("invite: no reply within -op-timeout (delivered)")
					}
				}
				for id, sent := range cl.cancels {
					if now.Sub(sent) > r.cfg.OpTimeout {
						delete(cl.cancels, id)
						r.cancelsOut.Add(-1)
						r.cancelsFailed.Add(1)
						r.errs.Add("cancel: no reply within -op-timeout")
					}
				}
				cl.mu.Unlock()
				for _, a := range acts {
					r.do(a)
				}
			}
			at := r.since(now)
			for i := range r.callees {
				c := &r.callees[i]
				if c.owner.Load() == calleeResting && at >= c.restUntil.Load() {
					c.owner.CompareAndSwap(calleeResting, calleeFree)
				}
			}
		}
	}
}

// settle waits, once the load has stopped, until every invite under way
// has been delivered and answered and every cancel answered; the watchdog
// fails what is stuck after -op-timeout.
func (r *invitesRun) settle(ctx context.Context, rep *Report) {
	until := time.Now().Add(r.cfg.OpTimeout + 3*time.Second)
	for r.outstanding() > 0 && time.Now().Before(until) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if n, c := r.active.Load()+r.lateOut.Load(), r.cancelsOut.Load(); n+c > 0 {
		rep.note("%d invites and %d cancels were still under way when the run ended and are counted neither as done nor as failed", n, c)
	}
}

// outstanding counts the requests whose outcome the run still waits for.
func (r *invitesRun) outstanding() int64 {
	return r.active.Load() + r.lateOut.Load() + r.cancelsOut.Load()
}

// runInvites runs the invites scenario: connect the callers and callees,
// warm up, measure for -duration, let the last invites and cancels
// finish, report.
func runInvites(ctx context.Context, cfg *Config, d *Dialer, p *probe, rep *Report) error {
	r := newInvitesRun(cfg)
	rep.setOutcome("deliveries", 0, &r.errs)
	connectLat := NewHistogram()
	var established atomic.Int64
	stopProgress := startProgress(ctx, cfg.Progress, "invites", "deliveries", func() (int64, int64, string) {
		return r.deliveries.Load(), r.errs.Total(), fmt.Sprintf("connections %d  in flight %d  cancels %d",
			established.Load(), r.active.Load(), r.cancelled.Load())
	})
	defer stopProgress()
	conns := d.ConnectMany(ctx, r.users(), r, cfg.DialConcurrency, &r.errs, connectLat, &established)
	defer closeConns(ctx, conns, cfg.DialConcurrency)
	rep.addLatency("connect (dial + WebSocket + login)", connectLat)
	callers, callees := r.attach(conns)
	if callers == 0 || callees == 0 {
		rep.setOutcome("deliveries", 0, &r.errs)
		return fmt.Errorf("%d of %d callers and %d of %d callees could connect", callers, cfg.Callers, callees, cfg.Callees)
	}
	if callers < cfg.Callers || callees < cfg.Callees {
		rep.note("only %d of %d callers and %d of %d callees connected", callers, cfg.Callers, callees, cfg.Callees)
	}
	p.redisBaseline(ctx)

	// Every goroutine below is owned here and stopped before returning.
	wctx, stopWatchdog := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.watchdog(wctx) })
	defer func() { stopWatchdog(); wg.Wait() }()

	loadStart := time.Now()
	loadCtx, stopLoad := context.WithDeadline(ctx, loadStart.Add(cfg.Warmup+cfg.Duration))
	defer stopLoad()
	var driver sync.WaitGroup
	driver.Go(func() { r.drive(loadCtx) })

	measured := sleepCtx(loadCtx, cfg.Warmup) || cfg.Warmup == 0
	var before snapshot
	if measured {
		before = p.take(ctx)
		r.from.Store(r.since(time.Now()))
	}
	<-loadCtx.Done()
	stopAt := time.Now()
	r.to.Store(r.since(stopAt))
	r.stop.Store(true)
	driver.Wait()
	r.settle(ctx, rep)
	stopProgress()
	var after snapshot
	if measured {
		after = p.take(ctx)
	}

	rep.setOutcome("deliveries", r.deliveries.Load(), &r.errs)
	if !measured {
		rep.note("interrupted during the warmup: nothing was measured")
		return nil
	}
	r.results(rep, callers, callees, stopAt)
	p.costs(rep, before, after, []unit{{"delivery", float64(r.deliveriesSinceBegin.Load())}})
	p.perThousand(rep, cpuBetween(before, after), "deliveries", float64(r.deliveriesSinceBegin.Load()))
	return nil
}

// results adds the throughput (over the window from the warm-up's end to
// stopAt), the counts, the latencies and what they mean.
func (r *invitesRun) results(rep *Report, callers, callees int, stopAt time.Time) {
	cfg := r.cfg
	secs := stopAt.Sub(r.epoch).Seconds() - float64(r.from.Load())/1e9
	rep.MeasuredSeconds = secs
	res := rep.section("results")
	res.add("callees", "idle logged-in callees (N)", float64(callees), "")
	res.add("callers", "callers (P)", float64(callers), "")
	res.add("per_caller", "invites in flight per caller (W)", float64(cfg.PerCaller), "")
	res.add("deliveries_per_s", "deliveries (onReceiveNewInvitation) per second", float64(r.deliveriesInWindow.Load())/secs, "/s")
	if cfg.Rate > 0 {
		res.add("target_rate", "target invites per second (-rate)", cfg.Rate, "/s")
	}
	res.add("invites_sent", "invites sent (whole run)", float64(r.sent.Load()), "")
	res.add("deliveries", "deliveries (whole run)", float64(r.deliveries.Load()), "")
	if cfg.CancelDelivered {
		res.add("cancels_sent", "cancels sent, one per delivery (whole run)", float64(r.cancelsSent.Load()), "")
		res.add("cancelled", "invitations cancelled (cancel answered 0)", float64(r.cancelled.Load()), "")
		res.add("cancels_failed", "cancels failed (a code, no reply within -op-timeout, or not written)", float64(r.cancelsFailed.Load()), "")
		res.add("cancel_events", "onInvitationCancelled received by the callees", float64(r.cancelEvents.Load()), "")
	}
	res.add("late_replies", "invite replies that came after the delivery", float64(r.lateReplies.Load()), "")
	res.add("stale_frames", "frames of no invitation under way (ignored)", float64(r.stale.Load()), "")
	if n := r.noCallee.Load(); n > 0 {
		res.add("no_free_callee", "times a slot found every callee taken", float64(n), "")
	}

	rep.addLatency("invite → onReceiveNewInvitation", r.delivery)
	rep.addLatency("invite → reply (caller)", r.inviteReply)
	rep.addLatency("cancel → reply (caller)", r.cancelRT)

	if cfg.Rate > 0 {
		rep.note("each invite goes to a callee of its own, taken round-robin; a slot whose invitation was delivered waits for -rate's schedule (%g/s over all slots: start + n/rate) and the next free slot takes each invite", cfg.Rate)
	} else {
		rep.note("each invite goes to a callee of its own, taken round-robin; a slot's next invite goes out as soon as the delivery arrived (closed loop)")
	}
	rep.note("latencies count invites sent after the warm-up; throughput counts deliveries between the warm-up's end and -duration's end; costs divide the CPU from the warm-up's end until the last invite and cancel were answered by the deliveries in it")
	switch {
	case cfg.CancelDelivered && cfg.Rate == 0:
		rep.note("each delivered invitation is cancelled by its caller (-cancel-delivered), just after the slot's next invite is written: signald serves a connection's requests in order, so an invite still waits behind the cancel of the one before when the server has not finished that; the cancels' work (a transition, its reply, onInvitationCancelled to the callee) is in the CPU per delivery")
	case cfg.CancelDelivered:
		rep.note("each delivered invitation is cancelled by its caller at once (-cancel-delivered); the cancels' work (a transition, its reply, onInvitationCancelled to the callee) is in the CPU per delivery")
	default:
		rep.note("-cancel-delivered=false: the invitations stay pending until their %d s timeout; signald's --max-active-invitations (per caller) and --max-pending-invitations (per callee) must hold them, or invites are answered 8013 and 8012", cfg.InviteTimeout)
	}
}
