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

	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/bench"
	"github.com/signald/signald/internal/leaktest"
	"github.com/signald/signald/internal/redistest"
)

// TestGapAgainstDaemonOnRedis runs the gap scenario against the daemon
// started in-process on a redis-server of the test's own (CLIENT KILL TYPE
// pubsub would break every other test's subscriptions on a shared one):
// the Pub/Sub connection must be killed twice, both gaps caught up, and no
// connection closed and no event lost.
func TestGapAgainstDaemonOnRedis(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed (make test installs it)")
	}
	leaktest.Check(t)
	addr, stopRedis := redistest.StartServer(t)
	defer stopRedis()

	o := app.DefaultOptions()
	o.Addr = "127.0.0.1:0"
	o.Dev = true
	o.RedisURL = "redis://" + addr
	o.NodeID = "gaptest"
	o.Server.RateLimit, o.Server.RateBurst = 1e6, 1e6
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

	cfg := bench.DefaultConfig()
	cfg.Scenario = bench.ScenarioGap
	cfg.URL = "ws://" + d.Addr + "/v1/ws"
	cfg.RedisAddr = addr
	cfg.SrcAddrs = 2
	cfg.Conns, cfg.Pairs, cfg.Inflight, cfg.Rate = 100, 4, 4, 100
	// Between kills the instance must subscribe again and catch up: 3 s
	// leaves a loaded machine room for it.
	cfg.Warmup, cfg.Kills, cfg.KillInterval = 300*time.Millisecond, 2, 3*time.Second
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
	for key, want := range map[string]float64{"users": 100, "gaps": 2, "pubsub_killed": 2, "closed_by_server": 0, "events_lost": 0} {
		if v, ok := rep.Figure("results", key); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	if v, ok := rep.Figure("catch-up after a Pub/Sub gap (from /metrics)", "gaps_caught_up"); !ok || v != 2 {
		t.Errorf("gaps caught up = %v (present %v), want 2", v, ok)
	}
	if v, _ := rep.Figure("results", "kept_events"); v == 0 {
		t.Error("no kept event was received: the call load did not run")
	}
}
