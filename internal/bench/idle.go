package bench

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"
)

// idleHandler watches idle connections: nothing should arrive on them and
// none should drop.
type idleHandler struct {
	errs    *ErrorCounter
	frames  atomic.Int64
	dropped atomic.Int64
}

func (h *idleHandler) HandleFrame(*Conn, *Frame) { h.frames.Add(1) }

func (h *idleHandler) HandleClose(_ *Conn, err error) {
	h.dropped.Add(1)
	h.errs.Add(classifyCloseErr(err))
}

// runIdle opens cfg.Conns logged-in connections, holds them for cfg.Hold
// and reports what an idle connection costs the server. The measured
// window runs from before the first dial to the end of the hold, so the
// server's CPU includes the logins (JWT checks) and the keep-alive pings.
func runIdle(ctx context.Context, cfg *Config, d *Dialer, p *probe, r *Report) error {
	users := make([]string, cfg.Conns)
	for i := range users {
		users[i] = cfg.Prefix + "-i" + strconv.Itoa(i)
	}
	var errs ErrorCounter
	h := &idleHandler{errs: &errs}
	connectLat := NewHistogram()
	var established atomic.Int64
	stop := startProgress(ctx, cfg.Progress, "idle", "connections", func() (int64, int64, string) {
		return established.Load() - h.dropped.Load(), errs.Total(), ""
	})
	defer stop()

	before := p.take(ctx)
	start := time.Now()
	conns := d.ConnectMany(ctx, users, h, cfg.DialConcurrency, &errs, connectLat, &established)
	connectTime := time.Since(start)
	n := established.Load()
	if n > 0 {
		sleepCtx(ctx, cfg.Hold)
	}
	held := time.Since(start) - connectTime
	after := p.take(ctx)
	stop()
	closeConns(ctx, conns, cfg.DialConcurrency)

	alive := n - h.dropped.Load()
	r.setOutcome("idle connections", alive, &errs)
	r.MeasuredSeconds = after.at.Sub(before.at).Seconds()
	res := r.section("results")
	res.add("connections", "connections established", float64(n), "")
	res.add("connect_failures", "connect or login failures", float64(errs.Total()-h.dropped.Load()), "")
	res.add("dropped", "dropped while held", float64(h.dropped.Load()), "")
	res.add("connect_all_seconds", "time to connect all", connectTime.Seconds(), "s")
	if connectTime > 0 {
		res.add("connects_per_s", "connects (dial + login) per second", float64(n)/connectTime.Seconds(), "/s")
	}
	res.add("held_seconds", "held idle for", held.Seconds(), "s")
	res.add("unexpected_frames", "frames received while idle", float64(h.frames.Load()), "")
	r.addLatency("connect (dial + WebSocket + login)", connectLat)

	p.costs(r, before, after, []unit{{"connection", float64(n)}})
	if before.metricsErr == nil && after.metricsErr == nil && n > 0 {
		s := r.section("server (from /metrics)")
		per := func(metric, key, label string, scale float64, unitName string) {
			b, ok1 := before.metrics.Value(metric)
			a, ok2 := after.metrics.Value(metric)
			if ok1 && ok2 {
				s.add(key, label, (a-b)/float64(n)/scale, unitName)
			}
		}
		per("process_resident_memory_bytes", "rss_kib_per_conn", "RSS per idle connection (delta/N)", 1024, "KiB")
		per("go_memstats_heap_inuse_bytes", "heap_kib_per_conn", "Go heap per idle connection (delta/N)", 1024, "KiB")
		per("go_goroutines", "goroutines_per_conn", "goroutines per idle connection", 1, "")
	}
	r.note("RSS per connection is (RSS after the hold - RSS before the first dial) / connections; Go returns memory to the OS lazily, so it is an upper bound on a steady state")
	if n == 0 {
		return errors.New("no connection could be established")
	}
	if ctx.Err() != nil {
		return nil
	}
	if n < int64(cfg.Conns) {
		r.note("only %d of %d connections were established", n, cfg.Conns)
	}
	return nil
}
