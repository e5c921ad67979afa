package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// gapRun is the gap scenario and the Handler of its connections: the
// calls scenario's pairs on connections 0 … 2×-pairs-1, idle users on the
// rest, every one of them watched by connWatch.
type gapRun struct {
	calls      *callsRun
	watch      *connWatch
	pairConns  int
	idleFrames atomic.Int64 // frames that reached an idle user (none should)
	kills      atomic.Int64 // CLIENT KILLs done, for the progress line

	mu         sync.Mutex
	unexpected []string // the first frames of no current setup, or to idle users; guarded by mu
}

// maxUnexpected bounds the frames quoted in the report.
const maxUnexpected = 5

// quote keeps a short description of an unexpected frame for the report:
// after a gap, an event the connection was not owed (one about its own
// action, say, which it is answered instead) or one delivered twice under
// another eventID.
func (g *gapRun) quote(c *Conn, f *Frame) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.unexpected) < maxUnexpected {
		g.unexpected = append(g.unexpected, fmt.Sprintf("connection %d (%s): id %d code %d event %q inviteID %q eventID %q",
			c.Index, c.User, f.ID, f.Code, f.Event, f.InviteID, f.EventID))
	}
}

func (g *gapRun) HandleFrame(c *Conn, f *Frame) {
	if len(f.EventID) > 0 {
		g.watch.event(c.Index, f.EventID)
	}
	if c.Index < g.pairConns {
		g.calls.HandleFrame(c, f)
		return
	}
	g.idleFrames.Add(1)
	g.quote(c, f)
}

func (g *gapRun) HandleClose(c *Conn, err error) {
	g.watch.ended(err)
	if c.Index < g.pairConns {
		g.calls.HandleClose(c, err) // counts the error, ends the pair
		return
	}
	g.calls.errs.Add(classifyCloseErr(err))
}

// killLog is what one CLIENT KILL did.
type killLog struct {
	at     time.Duration // since the load started
	killed int64
	names  []string
	err    error
}

// runGap runs the gap scenario: -conns logged-in users on one instance in
// Redis mode, the calls scenario's load among the first 2×-pairs of them,
// and after the warmup -kills times CLIENT KILL TYPE pubsub, -kill-interval
// apart, the load going on for one more interval after the last. No
// connection may be closed by the server, no event owed may be lost, and
// every connection must get its kept events in eventID order, once; the
// server's catch-up after each gap is timed from its /metrics.
func runGap(ctx context.Context, cfg *Config, d *Dialer, p *probe, rep *Report) error {
	r := newCallsRun(cfg)
	g := &gapRun{calls: r, watch: newConnWatch(cfg.Conns), pairConns: 2 * cfg.Pairs}
	r.onStale = g.quote
	users := r.users()
	for i := len(users); i < cfg.Conns; i++ {
		users = append(users, cfg.Prefix+"-i"+strconv.Itoa(i))
	}
	var established atomic.Int64
	stopProgress := startProgress(ctx, cfg.Progress, "gap", "invitations completed", func() (int64, int64, string) {
		return r.completedTotal(), r.errs.Total(), fmt.Sprintf("connections %d  kills %d  closed by server %d  events lost %d",
			established.Load()-g.watch.closedTotal(), g.kills.Load(), g.watch.closedTotal(), r.lostEvents.Load())
	})
	defer stopProgress()

	connectLat := NewHistogram()
	start := time.Now()
	conns := d.ConnectMany(ctx, users, g, cfg.DialConcurrency, &r.errs, connectLat, &established)
	connectTime := time.Since(start)
	defer closeConns(ctx, conns, cfg.DialConcurrency)
	rep.addLatency("connect (dial + WebSocket + login)", connectLat)
	usable := r.attach(conns[:g.pairConns], rep)
	if usable == 0 {
		rep.setOutcome("invitations completed", 0, &r.errs)
		return errors.New("no caller/callee pair could connect")
	}
	n := established.Load()
	if n < int64(cfg.Conns) {
		rep.note("only %d of %d connections were established", n, cfg.Conns)
	}

	defer r.startWatchdog(ctx)()
	loadStart := time.Now()
	loadCtx, stopLoad := context.WithDeadline(ctx, loadStart.Add(cfg.Warmup+time.Duration(cfg.Kills)*cfg.KillInterval))
	defer stopLoad()
	var driver sync.WaitGroup
	driver.Go(func() { r.drive(loadCtx) })

	if !sleepCtx(loadCtx, cfg.Warmup) && cfg.Warmup > 0 {
		stopLoad()
		driver.Wait()
		rep.setOutcome("invitations completed", r.completedTotal(), &r.errs)
		rep.note("interrupted during the warmup: nothing was measured")
		return nil
	}
	before := p.take(ctx)
	r.from.Store(r.since(time.Now()))
	cw := newCatchUpWatch(p, before.metrics)
	if before.metricsErr != nil || !cw.exported {
		rep.note("the server's /metrics has no %s (%v): the catch-up is not measured", gapCatchUpMetric, before.metricsErr)
	}

	var kills []killLog
	gaps := 0 // kills that broke at least one subscription
	for k := range cfg.Kills {
		at := loadStart.Add(cfg.Warmup + time.Duration(k)*cfg.KillInterval)
		if !sleepCtx(loadCtx, time.Until(at)) {
			break
		}
		kctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		killed, names, err := killPubSub(kctx, p.rdb)
		cancel()
		g.kills.Add(1)
		kills = append(kills, killLog{at: time.Since(loadStart), killed: killed, names: names, err: err})
		if killed > 0 {
			gaps++
			cw.await(loadCtx, gaps, at.Add(cfg.KillInterval))
		}
	}
	<-loadCtx.Done()
	stopAt := time.Now()
	r.to.Store(r.since(stopAt))
	driver.Wait()
	r.settle(ctx, rep)
	// Interrupted, the gaps not yet caught up are not held against the server.
	caughtUp := cw.await(ctx, gaps, time.Now().Add(cfg.OpTimeout)) || ctx.Err() != nil
	stopProgress()
	after := p.take(ctx)

	rep.setOutcome("invitations completed", r.completedTotal(), &r.errs)
	g.report(rep, n, usable, connectTime, kills, gaps)
	r.results(rep, usable, stopAt)
	gapCatchUpReport(rep, cw, before, after, gaps, caughtUp)
	rep.note("latencies count setups started after the warmup; throughput counts completions from the warmup's end to the end of the load, the Pub/Sub gaps included")
	p.costs(rep, before, after, []unit{{"setup", float64(r.sinceBegin.Load())}, {"delivery", float64(r.deliveriesSinceBegin.Load())}})
	return nil
}

// report adds the connections' and the events' figures, and the failed
// checks.
func (g *gapRun) report(rep *Report, n int64, usable int, connectTime time.Duration, kills []killLog, gaps int) {
	closed := g.watch.closed()
	var byServer int64
	for status, c := range closed {
		if status != -1 {
			byServer += c
		}
	}
	var killed int64
	for i, k := range kills {
		killed += k.killed
		if k.err != nil {
			rep.note("kill %d at %.1f s: %v", i+1, k.at.Seconds(), k.err)
		} else {
			rep.note("kill %d at %.1f s: CLIENT KILL TYPE pubsub killed %d (%s)", i+1, k.at.Seconds(), k.killed, strings.Join(k.names, ", "))
		}
	}
	lost := g.calls.lostEvents.Load()
	res := rep.section("results")
	res.add("users", "users logged in", float64(n), "")
	res.add("users_in_calls", "users in the call load", float64(2*usable), "")
	res.add("connect_all_seconds", "time to connect all", connectTime.Seconds(), "s")
	res.add("gaps", "Pub/Sub gaps made (CLIENT KILL TYPE pubsub)", float64(gaps), "")
	res.add("pubsub_killed", "Pub/Sub connections killed", float64(killed), "")
	res.add("closed_by_server", "connections closed by the server", float64(byServer), "")
	res.add("closed_1012", "connections closed with 1012 (reconnects)", float64(closed[1012]), "")
	res.add("connections_lost", "connections lost without a close frame", float64(closed[-1]), "")
	res.add("events_lost", "events lost", float64(lost), "")
	res.add("kept_events", "kept events received", float64(g.watch.kept.Load()), "")
	res.add("kept_events_repeated", "kept events received twice in a row", float64(g.watch.repeated.Load()), "")
	res.add("kept_events_out_of_order", "kept events out of eventID order", float64(g.watch.outOfOrder.Load()), "")
	res.add("idle_frames", "frames received by idle users", float64(g.idleFrames.Load()), "")

	if byServer > 0 || closed[-1] > 0 {
		var parts []string
		for _, s := range slices.Sorted(maps.Keys(closed)) {
			if s == -1 {
				parts = append(parts, fmt.Sprintf("%d without a close frame", closed[s]))
			} else {
				parts = append(parts, fmt.Sprintf("%d with status %d", closed[s], s))
			}
		}
		rep.fail("%d connections ended (%s): the target is 0 reconnects", byServer+closed[-1], strings.Join(parts, ", "))
	}
	if lost > 0 {
		rep.fail("%d events lost: the target is 0", lost)
	}
	if n := g.watch.repeated.Load() + g.watch.outOfOrder.Load(); n > 0 {
		rep.fail("%d kept events arrived twice or out of eventID order", n)
	}
	if gaps == 0 && len(kills) > 0 {
		rep.fail("CLIENT KILL TYPE pubsub killed no connection: no Pub/Sub gap was made (is signald in Redis mode, on this Redis?)")
	}
	g.mu.Lock()
	for _, u := range g.unexpected {
		rep.note("unexpected frame: %s", u)
	}
	g.mu.Unlock()
	rep.note("events lost: a setup whose ring, or whose answer's event after the answer was accepted, never came within -op-timeout (each missing event counts); idle users get no events, so they count only in the closes")
}
