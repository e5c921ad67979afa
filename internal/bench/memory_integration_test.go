package bench_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
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

// startMemoryDaemon starts signald in-process with what the memory
// scenario reads: the Go collector on its /metrics, and a pprof server (in
// the same process, so its forced collections are the daemon's). The
// retention is short, so that the flood is dropped soon after it has timed
// out. It returns the bench configuration that targets it.
func startMemoryDaemon(t *testing.T, redisAddr string) (bench.Config, func()) {
	t.Helper()
	o := app.DefaultOptions()
	o.Addr = "127.0.0.1:0"
	o.Dev = true
	o.Server.RateLimit, o.Server.RateBurst = 1e6, 1e6
	o.Engine.PollInterval = 10 * time.Millisecond
	o.Engine.Retention = 300 * time.Millisecond
	if redisAddr != "" {
		o.RedisURL = "redis://" + redisAddr
		o.NodeID = "memtest"
	}
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	d, err := app.Start(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, reg)
	if err != nil {
		cancel()
		t.Fatalf("start signald: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	ps := httptest.NewServer(mux)

	cfg := bench.DefaultConfig()
	cfg.Scenario = bench.ScenarioMemory
	cfg.URL = "ws://" + d.Addr + "/v1/ws"
	cfg.PprofURL = ps.URL
	cfg.RedisAddr = redisAddr
	cfg.SrcAddrs = 2
	cfg.OpTimeout = 5 * time.Second
	cfg.Pending, cfg.PendingDataSizes, cfg.PerUser = 200, []int{32}, 20
	cfg.Flood, cfg.FloodWait = 40, 30*time.Second
	return cfg, func() {
		ps.Close()
		cancel()
		if err := d.Wait(); err != nil {
			t.Errorf("signald shutdown: %v", err)
		}
	}
}

// runMemory runs the scenario and checks what does not depend on the
// machine: every invitation made, the flood timed out and dropped, the
// figures present. The heap figures are the test process's (the bench and
// the daemon share it) and are not judged.
func runMemory(t *testing.T, cfg bench.Config) *bench.Report {
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
	if rep.Ops != 240 || rep.Failed != 0 {
		t.Fatalf("invitations made %d, failed %d; want 240, 0", rep.Ops, rep.Failed)
	}
	pending := "pending invitations, 32 B of data, timeout 3600 s"
	flood := "flood: 40 invitations of 12288 B, timeout 1 s, to as many offline users"
	cancelled := "the pending invitations, cancelled and dropped"
	for _, f := range []struct {
		section, key string
		want         float64 // 0: present is enough
	}{
		{pending, "pending_32_made", 200},
		{pending, "pending_32_active_added", 200},
		{pending, "pending_32_heap_alloc_per_inv", 0},
		{pending, "pending_32_heap_inuse_per_inv", 0},
		{flood, "flood_made", 40},
		{flood, "flood_timed_out_seconds", 0},
		{flood, "flood_dropped_seconds", 0},
		{flood, "flood_heap_alloc_delta_mib", 0},
		{cancelled, "cancelled_made", 200},
		{cancelled, "cancelled_dropped_seconds", 0},
		{cancelled, "cancelled_heap_alloc_per_inv", 0},
	} {
		v, ok := rep.Figure(f.section, f.key)
		if !ok || (f.want != 0 && v != f.want) {
			t.Errorf("%s / %s = %v (present %v), want %v", f.section, f.key, v, ok, f.want)
		}
	}
	// The calibration learnt the frames: the ring of 32 B of data is a few
	// hundred bytes, and the flood's kept frames hold its 40 × 12 KiB.
	if v, ok := rep.Figure(pending, "pending_32_kept_ring_per_inv"); !ok || v < 100 || v > 1000 {
		t.Errorf("kept ring per invitation = %v (present %v)", v, ok)
	}
	if v, ok := rep.Figure(flood, "flood_kept_frames_mib"); !ok || v < 40*12288.0/(1<<20) {
		t.Errorf("flood's kept frames = %v MiB (present %v)", v, ok)
	}
	if v, ok := rep.Figure(cancelled, "cancelled_kept_per_inv"); !ok || v < 100 || v > 2000 {
		t.Errorf("kept frames per cancelled invitation = %v (present %v)", v, ok)
	}
	return rep
}

// TestMemoryAgainstDaemon runs the memory scenario briefly against the
// daemon in memory mode.
func TestMemoryAgainstDaemon(t *testing.T) {
	leaktest.Check(t)
	cfg, stop := startMemoryDaemon(t, "")
	defer stop()
	rep := runMemory(t, cfg)
	if _, ok := rep.Figure("flood: 40 invitations of 12288 B, timeout 1 s, to as many offline users", "flood_heap_not_kept_mib"); !ok {
		t.Error("memory mode: no heap figure less the kept frames")
	}
}

// TestMemoryAgainstDaemonOnRedis runs it in Redis mode, on a redis-server
// of the test's own (the Redis figures count every key).
func TestMemoryAgainstDaemonOnRedis(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed (make test installs it)")
	}
	leaktest.Check(t)
	addr, stopRedis := redistest.StartServer(t)
	defer stopRedis()
	cfg, stop := startMemoryDaemon(t, addr)
	defer stop()
	rep := runMemory(t, cfg)
	pending := "pending invitations, 32 B of data, timeout 3600 s"
	flood := "flood: 40 invitations of 12288 B, timeout 1 s, to as many offline users"
	for _, f := range []struct{ section, key string }{
		{pending, "pending_32_redis_used_per_inv"},
		{pending, "pending_32_redis_invitation_per_inv"},
		{pending, "pending_32_redis_total_per_inv"},
		{flood, "flood_redis_used_delta_mib"},
		{flood, "flood_redis_kept_mib"},
	} {
		if v, ok := rep.Figure(f.section, f.key); !ok || v <= 0 {
			t.Errorf("%s / %s = %v (present %v), want > 0", f.section, f.key, v, ok)
		}
	}
	if v, ok := rep.Figure(flood, "flood_redis_inv_keys_left"); !ok || v != 0 {
		t.Errorf("the flood's invitation keys left in Redis = %v (present %v), want 0", v, ok)
	}
	if v, ok := rep.Figure("the pending invitations, cancelled and dropped", "cancelled_redis_inv_keys_left"); !ok || v != 0 {
		t.Errorf("the cancelled invitations' keys left in Redis = %v (present %v), want 0", v, ok)
	}
}
