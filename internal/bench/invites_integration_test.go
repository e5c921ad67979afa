package bench_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os/exec"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/bench"
	"github.com/signald/signald/internal/leaktest"
	"github.com/signald/signald/internal/redistest"
)

// startInvitesDaemon starts signald in-process for the invites scenario,
// with its per-connection rate limit and the invite budget lifted and the
// quotas raised (a run without cancels leaves its invitations pending).
// app.Start registers no process collector (only `signald serve` does), so
// the test registers one: the server's CPU is then the test process's, the
// bench's included, and is not judged.
func startInvitesDaemon(t *testing.T, redisAddr string) (bench.Config, func()) {
	t.Helper()
	o := app.DefaultOptions()
	o.Addr = "127.0.0.1:0"
	o.Dev = true
	o.Server.RateLimit, o.Server.RateBurst = 1e6, 1e6
	o.Engine.Limits.Rate, o.Engine.Limits.Burst = 1e6, 1e6
	o.Engine.Limits.MaxActive, o.Engine.Limits.MaxPending = 1e6, 1e6
	if redisAddr != "" {
		o.RedisURL = "redis://" + redisAddr
		o.NodeID = "invitestest"
	}
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d, err := app.Start(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, reg)
	if err != nil {
		cancel()
		t.Fatalf("start signald: %v", err)
	}
	cfg := bench.DefaultConfig()
	cfg.Scenario = bench.ScenarioInvites
	cfg.URL = "ws://" + d.Addr + "/v1/ws"
	cfg.RedisAddr = redisAddr
	cfg.SrcAddrs = 2
	cfg.OpTimeout = 5 * time.Second
	cfg.Callees, cfg.Callers, cfg.PerCaller = 40, 3, 2
	cfg.Warmup, cfg.Duration = 200*time.Millisecond, time.Second
	cfg.InviteTimeout = bench.InvitesInviteTimeout
	return cfg, func() {
		cancel()
		if err := d.Wait(); err != nil {
			t.Errorf("signald shutdown: %v", err)
		}
	}
}

// runInvites runs the scenario and checks what does not depend on the
// machine: deliveries happened, nothing failed, every delivered invitation
// was cancelled (when asked), and the figures are there.
func runInvites(t *testing.T, cfg bench.Config) *bench.Report {
	t.Helper()
	rep, err := bench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var out bytes.Buffer
	if err := rep.Print(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", out.String())
	if err := rep.Check(0); err != nil {
		t.Fatal(err)
	}
	if rep.Ops == 0 || rep.Failed != 0 || len(rep.Errors) != 0 {
		t.Fatalf("deliveries %d, failed %d, errors %v", rep.Ops, rep.Failed, rep.Errors)
	}
	figure := func(section, key string) float64 {
		t.Helper()
		v, ok := rep.Figure(section, key)
		if !ok {
			t.Errorf("no %s / %s", section, key)
		}
		return v
	}
	if v := figure("results", "deliveries"); v != float64(rep.Ops) {
		t.Errorf("deliveries %v, ops %d", v, rep.Ops)
	}
	if v := figure("results", "deliveries_per_s"); v <= 0 {
		t.Errorf("deliveries per second = %v", v)
	}
	if v := figure("results", "stale_frames"); v != 0 {
		t.Errorf("stale frames = %v", v)
	}
	if cfg.CancelDelivered {
		// The run waits for every cancel's reply before it reports.
		for _, key := range []string{"cancels_sent", "cancelled", "cancel_events"} {
			if v := figure("results", key); v != float64(rep.Ops) {
				t.Errorf("%s = %v, want one per delivery (%d)", key, v, rep.Ops)
			}
		}
		if v := figure("results", "cancels_failed"); v != 0 {
			t.Errorf("cancels failed = %v", v)
		}
	} else if _, ok := rep.Figure("results", "cancels_sent"); ok {
		t.Error("cancels reported in a run without them")
	}
	for _, name := range []string{"invite → onReceiveNewInvitation", "invite → reply (caller)"} {
		if !hasLatency(rep, name) {
			t.Errorf("no latency %q: %+v", name, rep.Latencies)
		}
	}
	for _, key := range []string{"cpu_us_per_delivery", "connections_before"} {
		figure("server (from /metrics)", key)
	}
	figure("cpu per 1,000 deliveries", "server_cpu_s_per_1k")
	figure("bench tool (this process)", "machine_busy_pct")
	if cfg.RedisAddr != "" {
		figure("cpu per 1,000 deliveries", "redis_cpu_s_per_1k")
		figure("cpu per 1,000 deliveries", "server_redis_cpu_s_per_1k")
		figure("redis (INFO commandstats, measured window)", "cpu_seconds")
	} else if _, ok := rep.Figure("cpu per 1,000 deliveries", "redis_cpu_s_per_1k"); ok {
		t.Error("a Redis figure without -redis")
	}
	return rep
}

// TestInvitesAgainstDaemon runs the invites scenario briefly against the
// daemon in memory mode: closed loop, paced with -rate, and without
// cancels.
func TestInvitesAgainstDaemon(t *testing.T) {
	leaktest.Check(t)
	base, stop := startInvitesDaemon(t, "")
	defer stop()
	t.Run("closed loop", func(t *testing.T) {
		runInvites(t, base)
	})
	t.Run("paced", func(t *testing.T) {
		cfg := base
		cfg.Rate = 300
		rep := runInvites(t, cfg)
		if v, _ := rep.Figure("results", "target_rate"); v != 300 {
			t.Errorf("target rate = %v", v)
		}
	})
	t.Run("no cancels", func(t *testing.T) {
		cfg := base
		cfg.CancelDelivered = false
		runInvites(t, cfg)
	})
}

// TestInvitesAgainstDaemonOnRedis runs it in Redis mode, on a redis-server
// of the test's own, whose CPU is then signald's work alone.
func TestInvitesAgainstDaemonOnRedis(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed (make test installs it)")
	}
	leaktest.Check(t)
	addr, stopRedis := redistest.StartServer(t)
	defer stopRedis()
	cfg, stop := startInvitesDaemon(t, addr)
	defer stop()
	runInvites(t, cfg)
}
