package bench_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/bench"
	"github.com/signald/signald/internal/leaktest"
)

// TestScenariosAgainstDaemon starts the real daemon in-process on a
// loopback port and runs the calls scenario (with every kind of ending in
// the mix) and the group scenario against it briefly: both must do work
// and count no error.
func TestScenariosAgainstDaemon(t *testing.T) {
	leaktest.Check(t)

	o := app.DefaultOptions()
	o.Addr = "127.0.0.1:0"
	o.Dev = true
	o.Engine.PollInterval = 10 * time.Millisecond // timeouts fire promptly
	o.Server.RateLimit, o.Server.RateBurst = 1e6, 1e6
	// The per-user invite budget (20 invitees/s by default) too: a pair's
	// caller invites far faster (signald --invite-rate, --invite-burst).
	o.Engine.Limits.Rate, o.Engine.Limits.Burst = 1e6, 1e6
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	d, err := app.Start(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, reg)
	if err != nil {
		cancel()
		t.Fatalf("start signald: %v", err)
	}
	defer func() {
		cancel()
		if err := d.Wait(); err != nil {
			t.Errorf("signald shutdown: %v", err)
		}
	}()

	base := bench.DefaultConfig()
	base.URL = "ws://" + d.Addr + "/v1/ws"
	base.SrcAddrs = 2
	// A failure deadline, never a pause: the timeout-1 invitations of
	// the mix end a second after they are made, however busy the machine.
	base.OpTimeout = 10 * time.Second

	check := func(t *testing.T, rep *bench.Report, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		var out bytes.Buffer
		if err := rep.Print(&out); err != nil {
			t.Fatal(err)
		}
		t.Logf("report:\n%s", out.String())
		if rep.Ops == 0 || rep.Failed != 0 || len(rep.Errors) != 0 {
			t.Fatalf("ops %d, failed %d, errors %v", rep.Ops, rep.Failed, rep.Errors)
		}
		if err := rep.Check(0); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("calls", func(t *testing.T) {
		cfg := base
		cfg.Scenario = bench.ScenarioCalls
		cfg.Pairs, cfg.Inflight = 2, 2
		cfg.Warmup, cfg.Duration = 100*time.Millisecond, time.Second
		cfg.RejectPct, cfg.CancelPct, cfg.TimeoutPct = 10, 10, 1
		rep, err := bench.Run(context.Background(), cfg)
		check(t, rep, err)
		for _, key := range []string{"setups_per_s", "deliveries_per_s"} {
			if v, ok := rep.Figure("results", key); !ok || v <= 0 {
				t.Errorf("%s = %v (present %v)", key, v, ok)
			}
		}
		if !hasLatency(rep, "setup: invite → onInviteeAccepted") || !hasLatency(rep, "invite → onReceiveNewInvitation") {
			t.Errorf("latencies missing: %+v", rep.Latencies)
		}
		if v, ok := rep.Figure("bench tool (this process)", "cpu_seconds"); !ok || v <= 0 {
			t.Errorf("bench CPU = %v (present %v)", v, ok)
		}
		// The in-process daemon exports signald's metrics but no process
		// collector: connections are there, CPU is not.
		if v, ok := rep.Figure("server (from /metrics)", "connections_before"); !ok || v != 4 {
			t.Errorf("signald_connections before = %v (present %v), want 4", v, ok)
		}
	})

	t.Run("group", func(t *testing.T) {
		cfg := base
		cfg.Scenario = bench.ScenarioGroup
		cfg.GroupSize, cfg.Rounds = 5, 2
		rep, err := bench.Run(context.Background(), cfg)
		check(t, rep, err)
		if rep.Ops != 2 {
			t.Errorf("rounds ok = %d, want 2", rep.Ops)
		}
		if v, _ := rep.Figure("results", "deliveries"); v != 10 {
			t.Errorf("deliveries = %v, want 10", v)
		}
		if v, ok := rep.Figure("results", "fanout_deliveries_per_s"); !ok || v <= 0 {
			t.Errorf("fan-out throughput = %v (present %v)", v, ok)
		}
		if !hasLatency(rep, "round: inviteInGroup → all K delivered") {
			t.Errorf("latencies missing: %+v", rep.Latencies)
		}
	})
}

func hasLatency(rep *bench.Report, name string) bool {
	for _, l := range rep.Latencies {
		if strings.EqualFold(l.Name, name) && l.Count > 0 {
			return true
		}
	}
	return false
}
