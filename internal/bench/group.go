package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// groupRound is one invite-and-cancel round. The driver fills it before
// publishing it (groupRun.round); after that, readers only touch its
// atomics and close its channels.
type groupRound struct {
	n         int
	start     time.Time
	inviteReq int64

	cancelStart  atomic.Int64 // ns since epoch; 0 until the cancel is sent
	delivered    atomic.Int32
	cancelled    atomic.Int32
	allDelivered chan struct{} // closed by the reader of the K-th delivery
	allCancelled chan struct{}
	deliveredAt  atomic.Int64 // ns since epoch, set before allDelivered is closed
	cancelledAt  atomic.Int64
	replies      chan groupReply // the inviter's replies
}

type groupReply struct {
	id   int64
	code int
	data string
	at   time.Time
}

// inviteeState is what one invitee's reader remembers; only that reader
// writes it, and the driver reads it after a round's allDelivered.
type inviteeState struct {
	round          int
	inviteID       string
	cancelledRound int
}

// groupRun is the group scenario and the Handler of its connections:
// connection 0 is the inviter, 1…K the invitees.
type groupRun struct {
	cfg     *Config
	epoch   time.Time
	k       int32
	round   atomic.Pointer[groupRound]
	invitee []inviteeState // by connection index

	errs                              ErrorCounter
	inviteReply, delivery, fanout     *Histogram
	cancelReply, cancelEvent, cancels *Histogram
	deliveries, cancelEvents, stale   atomic.Int64
	lost                              atomic.Int64 // connections that ended: no later round can succeed
}

func (g *groupRun) since(t time.Time) int64 { return int64(t.Sub(g.epoch)) }

func (g *groupRun) HandleFrame(c *Conn, f *Frame) {
	now := time.Now()
	st := g.round.Load()
	if st == nil {
		g.stale.Add(1)
		return
	}
	if c.Index == 0 {
		if f.Kind() != EvNone {
			g.stale.Add(1)
			return
		}
		select {
		case st.replies <- groupReply{id: f.ID, code: f.Code, data: f.DataString(), at: now}:
		default: // the driver reads every reply it expects; anything beyond is stale
			g.stale.Add(1)
		}
		return
	}
	s := &g.invitee[c.Index]
	switch f.Kind() {
	case EvNewInvitation:
		if s.round == st.n {
			g.stale.Add(1)
			return
		}
		s.round, s.inviteID, s.cancelledRound = st.n, string(f.InviteID), 0
		g.delivery.Record(now.Sub(st.start))
		g.deliveries.Add(1)
		if st.delivered.Add(1) == g.k {
			st.deliveredAt.Store(g.since(now))
			close(st.allDelivered)
		}
	case EvCancelled:
		if s.round != st.n || s.cancelledRound == st.n || string(f.InviteID) != s.inviteID {
			g.stale.Add(1)
			return
		}
		s.cancelledRound = st.n
		if cs := st.cancelStart.Load(); cs > 0 {
			g.cancelEvent.Record(time.Duration(g.since(now) - cs))
		}
		g.cancelEvents.Add(1)
		if st.cancelled.Add(1) == g.k {
			st.cancelledAt.Store(g.since(now))
			close(st.allCancelled)
		}
	default:
		g.stale.Add(1)
	}
}

func (g *groupRun) HandleClose(_ *Conn, err error) {
	g.lost.Add(1)
	g.errs.Add(classifyCloseErr(err))
}

// waitReply waits for the inviter's reply to id, skipping stale ones.
func (g *groupRun) waitReply(ctx context.Context, st *groupRound, id int64, deadline <-chan time.Time) (groupReply, error) {
	for {
		select {
		case rep := <-st.replies:
			if rep.id == id {
				return rep, nil
			}
			g.stale.Add(1)
		case <-deadline:
			return groupReply{}, errTimedOut
		case <-ctx.Done():
			return groupReply{}, ctx.Err()
		}
	}
}

var errTimedOut = errors.New("timed out")

// waitAll waits for ch to close.
func waitAll(ctx context.Context, ch <-chan struct{}, deadline <-chan time.Time) error {
	select {
	case <-ch:
		return nil
	case <-deadline:
		return errTimedOut
	case <-ctx.Done():
		return ctx.Err()
	}
}

// playRound invites all K invitees, waits until every one has the
// invitation, cancels it and waits until every one has the cancel. It
// reports whether the round succeeded; failures are counted in g.errs.
func (g *groupRun) playRound(ctx context.Context, n int, inviter *Conn, groupID string, list []byte, data string) bool {
	st := &groupRound{
		n: n, allDelivered: make(chan struct{}), allCancelled: make(chan struct{}),
		replies: make(chan groupReply, 8),
	}
	st.inviteReq = inviter.NextID()
	st.start = time.Now()
	g.round.Store(st)
	if err := inviter.SendInviteInGroup(st.inviteReq, groupID, list, data, g.cfg.InviteTimeout); err != nil {
		g.errs.Add("inviteInGroup: write failed: " + lastPart(err.Error()))
		return false
	}
	timer := time.NewTimer(g.cfg.OpTimeout)
	defer timer.Stop()
	rep, err := g.waitReply(ctx, st, st.inviteReq, timer.C)
	if err != nil {
		if ctx.Err() == nil {
			g.errs.Add("inviteInGroup: no reply within -op-timeout")
		}
		return false
	}
	g.inviteReply.Record(rep.at.Sub(st.start))
	if rep.code != 0 {
		g.errs.Code(protocol.OpInviteInGroup, rep.code)
		return false
	}
	inviteID := rep.data
	ok := true
	if err := waitAll(ctx, st.allDelivered, timer.C); err != nil {
		if ctx.Err() != nil {
			return false
		}
		g.errs.Add(fmt.Sprintf("round: not all %d invitees got onReceiveNewInvitation within -op-timeout", g.k))
		ok = false
	} else {
		g.fanout.Record(time.Duration(st.deliveredAt.Load()) - time.Duration(g.since(st.start)))
		for i := 1; i < len(g.invitee); i++ {
			if g.invitee[i].inviteID != inviteID {
				g.errs.Add("an invitee's onReceiveNewInvitation names another inviteID than the reply")
				ok = false
				break
			}
		}
	}

	// Cancel even after a failed delivery, so that no invitation of the run
	// stays active on the server.
	cancelReq := inviter.NextID()
	cancelStart := time.Now()
	st.cancelStart.Store(g.since(cancelStart))
	if err := inviter.SendAnswer(cancelReq, protocol.OpCancel, inviteID); err != nil {
		g.errs.Add("cancel: write failed: " + lastPart(err.Error()))
		return false
	}
	timer.Reset(g.cfg.OpTimeout)
	rep, err = g.waitReply(ctx, st, cancelReq, timer.C)
	if err != nil {
		if ctx.Err() == nil {
			g.errs.Add("cancel: no reply within -op-timeout")
		}
		return false
	}
	g.cancelReply.Record(rep.at.Sub(cancelStart))
	if rep.code != 0 {
		g.errs.Code(protocol.OpCancel, rep.code)
		return false
	}
	if !ok {
		return false // the K cancel events cannot all come
	}
	if err := waitAll(ctx, st.allCancelled, timer.C); err != nil {
		if ctx.Err() == nil {
			g.errs.Add(fmt.Sprintf("round: not all %d invitees got onInvitationCancelled within -op-timeout", g.k))
		}
		return false
	}
	g.cancels.Record(time.Duration(st.cancelledAt.Load() - g.since(cancelStart)))
	return true
}

// runGroup runs the group scenario.
func runGroup(ctx context.Context, cfg *Config, d *Dialer, p *probe, rep *Report) error {
	k := cfg.GroupSize
	g := &groupRun{
		cfg: cfg, epoch: time.Now(), k: int32(k), invitee: make([]inviteeState, k+1),
		inviteReply: NewHistogram(), delivery: NewHistogram(), fanout: NewHistogram(),
		cancelReply: NewHistogram(), cancelEvent: NewHistogram(), cancels: NewHistogram(),
	}
	users := make([]string, k+1)
	users[0] = cfg.Prefix + "-inviter"
	for i := 1; i <= k; i++ {
		users[i] = cfg.Prefix + "-m" + strconv.Itoa(i)
	}
	groupID := cfg.Prefix + "-group"
	rep.setOutcome("group rounds", 0, &g.errs)
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := putGroupMembers(actx, p.hc, cfg.AdminURL, cfg.AdminToken, groupID, users)
	cancel()
	if err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := deleteGroup(dctx, p.hc, cfg.AdminURL, cfg.AdminToken, groupID); err != nil {
			rep.note("could not delete group %s: %v", groupID, err)
		}
	}()

	connectLat := NewHistogram()
	conns := d.ConnectMany(ctx, users, g, cfg.DialConcurrency, &g.errs, connectLat, nil)
	defer closeConns(ctx, conns, cfg.DialConcurrency)
	rep.addLatency("connect (dial + WebSocket + login)", connectLat)
	for _, c := range conns {
		if c == nil {
			rep.setOutcome("group rounds", 0, &g.errs)
			return errors.New("not every group member could connect")
		}
	}
	p.redisBaseline(ctx)

	var okRounds atomic.Int64
	var round atomic.Int64
	stop := startProgress(ctx, cfg.Progress, "group", "rounds ok", func() (int64, int64, string) {
		return okRounds.Load(), g.errs.Total(), fmt.Sprintf("round %d/%d  deliveries %d", round.Load(), cfg.Rounds, g.deliveries.Load())
	})
	defer stop()
	list := EncodeList(users[1:])
	data := cfg.inviteData()
	before := p.take(ctx)
	for n := 1; n <= cfg.Rounds && ctx.Err() == nil; n++ {
		if g.lost.Load() > 0 {
			rep.note("stopped after round %d: %d connections were lost", n-1, g.lost.Load())
			break
		}
		round.Store(int64(n))
		if g.playRound(ctx, n, conns[0], groupID, list, data) {
			okRounds.Add(1)
		}
	}
	after := p.take(ctx)
	stop()
	g.round.Store(nil)

	rep.setOutcome("group rounds", okRounds.Load(), &g.errs)
	rep.MeasuredSeconds = after.at.Sub(before.at).Seconds()
	res := rep.section("results")
	res.add("group_size", "invitees per round (K)", float64(k), "")
	res.add("rounds", "rounds completed", float64(okRounds.Load()), "")
	res.add("deliveries", "deliveries (onReceiveNewInvitation)", float64(g.deliveries.Load()), "")
	res.add("cancel_events", "onInvitationCancelled received", float64(g.cancelEvents.Load()), "")
	if s := g.fanout.Summarize(); s.Count > 0 {
		res.add("fanout_deliveries_per_s", "deliveries per second during fan-out (K / mean time to all K)",
			float64(k)/s.Mean.Seconds(), "/s")
	}
	if rep.MeasuredSeconds > 0 {
		res.add("events_per_s", "events per second over the run (deliveries + cancels)",
			float64(g.deliveries.Load()+g.cancelEvents.Load())/rep.MeasuredSeconds, "/s")
	}
	res.add("stale_frames", "frames of no current round (ignored)", float64(g.stale.Load()), "")
	rep.addLatency("inviteInGroup → reply", g.inviteReply)
	rep.addLatency("round: inviteInGroup → all K delivered", g.fanout)
	rep.addLatency("per invitee: inviteInGroup → onReceiveNewInvitation", g.delivery)
	rep.addLatency("cancel → reply", g.cancelReply)
	rep.addLatency("round: cancel → all K onInvitationCancelled", g.cancels)
	rep.addLatency("per invitee: cancel → onInvitationCancelled", g.cancelEvent)
	p.costs(rep, before, after, []unit{{"round", float64(okRounds.Load())}, {"delivery", float64(g.deliveries.Load())}})
	rep.note("a round is one inviteInGroup to all K invitees and one cancel; cost per round covers both, cost per delivery divides by the onReceiveNewInvitation events")
	return nil
}
