package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
)

// The calls scenario's run, in pieces that the gap scenario (gap.go) reuses
// to put the same load beside its idle users.

// newCallsRun prepares the state of cfg.Pairs caller/callee pairs. The
// caller connects the users (callsRun.users) with the run as their handler
// and hands the connections to attach.
func newCallsRun(cfg *Config) *callsRun {
	r := &callsRun{
		cfg: cfg, data: cfg.inviteData(), epoch: time.Now(),
		pairs: make([]*pair, cfg.Pairs), free: make(chan *pair, cfg.Pairs), slots: make(chan struct{}, cfg.Inflight),
		inviteReply: NewHistogram(), delivery: NewHistogram(), lateness: NewHistogram(),
	}
	for k := range r.byKind {
		r.byKind[k] = NewHistogram()
	}
	for i := range r.pairs {
		r.pairs[i] = &pair{}
	}
	r.from.Store(math.MaxInt64)
	r.to.Store(math.MaxInt64)
	return r
}

// users returns the pairs' user IDs: pair i's caller at 2i, its callee at
// 2i+1, as HandleFrame expects of the connections' indexes.
func (r *callsRun) users() []string {
	users := make([]string, 2*len(r.pairs))
	for i := range r.pairs {
		users[2*i] = r.cfg.Prefix + "-c" + strconv.Itoa(i)
		users[2*i+1] = r.cfg.Prefix + "-e" + strconv.Itoa(i)
	}
	return users
}

// attach gives pair i the connections conns[2i] and conns[2i+1] and queues
// the pairs that have both for setups; it returns how many do, and notes
// in rep what that limits.
func (r *callsRun) attach(conns []*Conn, rep *Report) int {
	usable := 0
	for i, pr := range r.pairs {
		pr.caller, pr.callee = conns[2*i], conns[2*i+1]
		if pr.caller == nil || pr.callee == nil {
			pr.dead = true
			continue
		}
		usable++
		r.free <- pr
	}
	if usable > 0 && usable < len(r.pairs) {
		rep.note("only %d of %d pairs connected", usable, len(r.pairs))
	}
	if usable > 0 && r.cfg.Inflight > usable {
		rep.note("-inflight %d is more than the %d pairs: at most %d setups were in flight", r.cfg.Inflight, usable, usable)
	}
	return usable
}

// startWatchdog runs the watchdog until stop, which waits for it.
func (r *callsRun) startWatchdog(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.watchdog(ctx) })
	return func() { cancel(); wg.Wait() }
}

// completedTotal is how many invitations of every kind completed.
func (r *callsRun) completedTotal() int64 {
	var done int64
	for k := range r.completed {
		done += r.completed[k].Load()
	}
	return done
}

// settle lets the invitations under way finish once the driver has
// stopped: the watchdog fails the stuck ones after -op-timeout.
func (r *callsRun) settle(ctx context.Context, rep *Report) {
	until := time.Now().Add(r.cfg.OpTimeout + 3*time.Second)
	for r.active.Load()+r.activeTimeouts.Load() > 0 && time.Now().Before(until) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if n := r.active.Load() + r.activeTimeouts.Load(); n > 0 {
		rep.note("%d setups were still in flight when the run ended and are counted neither as done nor as failed", n)
	}
}

// results adds the load's throughput (over the window from the warmup's end
// to stopAt), counts and latencies to rep.
func (r *callsRun) results(rep *Report, usable int, stopAt time.Time) {
	var window int64
	for k := range numKinds {
		window += r.inWindow[k].Load()
	}
	secs := stopAt.Sub(r.epoch).Seconds() - float64(r.from.Load())/1e9
	rep.MeasuredSeconds = secs
	res := rep.section("results")
	res.add("pairs", "caller/callee pairs", float64(usable), "")
	res.add("inflight", "setups in flight (max)", float64(min(r.cfg.Inflight, usable)), "")
	res.add("setups_per_s", "call setups per second (accepted)", float64(r.inWindow[kindAccept].Load())/secs, "/s")
	res.add("invitations_per_s", "invitations completed per second (all kinds)", float64(window)/secs, "/s")
	res.add("deliveries_per_s", "deliveries (onReceiveNewInvitation) per second", float64(r.deliveriesInWindow.Load())/secs, "/s")
	if r.cfg.Rate > 0 {
		res.add("target_rate", "target invitations per second", r.cfg.Rate, "/s")
	}
	for k := range numKinds {
		if n := r.completed[k].Load(); n > 0 || r.started[k].Load() > 0 {
			res.add("completed_"+kindNames[k], "invitations "+kindNames[k]+" (whole run)", float64(n), "")
		}
	}
	res.add("deliveries", "deliveries (whole run)", float64(r.deliveries.Load()), "")
	if r.started[kindTimeout].Load() > 0 {
		res.add("timeouts_to_inviter", "onInvitationTimeout received by inviters", float64(r.timeoutsToCaller.Load()), "")
		res.add("timeouts_skipped", "timeout invitations not sent (a pair had 64 open)", float64(r.timeoutsSkipped.Load()), "")
	}
	res.add("stale_frames", "frames of no current setup (ignored)", float64(r.stale.Load()), "")

	rep.addLatency("invite → reply (caller)", r.inviteReply)
	rep.addLatency("invite → onReceiveNewInvitation", r.delivery)
	rep.addLatency("setup: invite → onInviteeAccepted", r.byKind[kindAccept])
	rep.addLatency("invite → onInviteeRejected", r.byKind[kindReject])
	rep.addLatency("invite → cancelled (reply + callee event)", r.byKind[kindCancel])
	rep.addLatency("invite(timeout 1) → onInvitationTimeout", r.byKind[kindTimeout])
	rep.addLatency("timeout lateness: deadline → onInvitationTimeout", r.lateness)
	if r.started[kindTimeout].Load() > 0 {
		rep.note("timeout invitations go from a pair's callee to its caller beside the pair's setups, without an -inflight slot; they are in the delivery latency but not in the setup latency")
	}
}

// runCalls runs the calls scenario: connect the pairs, warm up, measure
// for -duration, drain, report.
func runCalls(ctx context.Context, cfg *Config, d *Dialer, p *probe, rep *Report) error {
	r := newCallsRun(cfg)
	connectLat := NewHistogram()
	conns := d.ConnectMany(ctx, r.users(), r, cfg.DialConcurrency, &r.errs, connectLat, nil)
	defer closeConns(ctx, conns, cfg.DialConcurrency)
	usable := r.attach(conns, rep)
	rep.addLatency("connect (dial + WebSocket + login)", connectLat)
	if usable == 0 {
		rep.setOutcome("invitations completed", 0, &r.errs)
		return errors.New("no caller/callee pair could connect")
	}
	p.redisBaseline(ctx)

	// Every goroutine below is owned here and stopped before returning.
	defer r.startWatchdog(ctx)()
	stopProgress := startProgress(ctx, cfg.Progress, "calls", "invitations completed", func() (int64, int64, string) {
		return r.completedTotal(), r.errs.Total(), fmt.Sprintf("deliveries %d  in flight %d", r.deliveries.Load(), r.active.Load())
	})
	defer stopProgress()

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
	driver.Wait()
	r.settle(ctx, rep)
	stopProgress()
	var after snapshot
	if measured {
		after = p.take(ctx)
	}

	rep.setOutcome("invitations completed", r.completedTotal(), &r.errs)
	if !measured {
		rep.note("interrupted during the warmup: nothing was measured")
		return nil
	}
	r.results(rep, usable, stopAt)
	rep.note("latencies count setups started after the warmup; throughput counts completions between the warmup's end and -duration's end")
	p.costs(rep, before, after, []unit{{"setup", float64(r.sinceBegin.Load())}, {"delivery", float64(r.deliveriesSinceBegin.Load())}})
	rep.note("cost per setup divides by every invitation completed in the cost window (all kinds), per delivery by the deliveries in it")
	return nil
}
