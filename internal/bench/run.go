package bench

import (
	"context"
	"fmt"
	"time"
)

// Run executes cfg's scenario against a running signald and returns its
// report. Every scenario is bounded: it stops by itself after its duration,
// hold or rounds, and soon after ctx ends (the report then says
// "interrupted" and holds what was measured so far). The error is about the
// run itself (bad configuration, no server); a run whose operations failed
// still returns a report, and Report.Check judges it.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	d, err := NewDialer(cfg.URL, []byte(cfg.Secret), cfg.SrcAddrs)
	if err != nil {
		return nil, err
	}
	d.OtherURL = cfg.OtherURL
	p := newProbe(&cfg)
	defer p.close()
	r := &Report{
		Scenario: cfg.Scenario, Target: cfg.URL, Prefix: cfg.Prefix, Started: time.Now(),
		Config: cfg, GeneratedBy: "signald-bench", Errors: map[string]int64{},
	}
	if len(d.SourceAddrs) > 1 {
		r.note("connections spread over %d source addresses %s … %s", len(d.SourceAddrs), d.SourceAddrs[0], d.SourceAddrs[len(d.SourceAddrs)-1])
	} else if cfg.SrcAddrs > 1 {
		r.note("-src-addrs %d ignored: the target is not an IPv4 loopback address, so connections use the system's source address", cfg.SrcAddrs)
	}
	if cfg.OtherURL != "" {
		r.note("every other connection (the callees) on %s: each event crosses instances; server CPU and RSS are %s's alone", cfg.OtherURL, cfg.URL)
	}
	switch cfg.Scenario {
	case ScenarioIdle:
		err = runIdle(ctx, &cfg, d, p, r)
	case ScenarioCalls:
		err = runCalls(ctx, &cfg, d, p, r)
	case ScenarioGroup:
		err = runGroup(ctx, &cfg, d, p, r)
	case ScenarioGap:
		err = runGap(ctx, &cfg, d, p, r)
	case ScenarioMemory:
		err = runMemory(ctx, &cfg, d, p, r)
	case ScenarioInvites:
		err = runInvites(ctx, &cfg, d, p, r)
	default:
		err = fmt.Errorf("unknown scenario %q", cfg.Scenario)
	}
	r.WallSeconds = time.Since(r.Started).Seconds()
	r.Interrupted = ctx.Err() != nil
	return r, err
}

// sleepCtx waits d or until ctx ends, and reports whether the full time
// passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// teardownTimeout bounds closing every connection at the end of a run.
const teardownTimeout = 15 * time.Second

// closeConns closes the run's connections within teardownTimeout, even
// when the run's context has already ended (Ctrl-C must still leave the
// server with clean closes where possible).
func closeConns(ctx context.Context, conns []*Conn, conc int) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
	defer cancel()
	CloseAll(cctx, conns, conc)
}
