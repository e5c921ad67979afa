package chaos

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/signald/signald/internal/buildtest"
	"github.com/signald/signald/internal/leaktest"
)

// signaldBin is the signald binary under test: TestMain's build, or
// $CHAOS_SIGNALD; "" with -short.
var signaldBin string

// TestMain builds cmd/signald once into a temporary directory, runs the
// tests, and removes the directory. CHAOS_SIGNALD=path runs them against
// that binary instead (another commit's, to see what the run says of it).
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // the run skips itself
	}
	if bin := os.Getenv("CHAOS_SIGNALD"); bin != "" {
		signaldBin = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "signald-chaos-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	bin, err := buildtest.Signald(dir)
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	signaldBin = bin
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testWriter turns the run's progress into test log lines.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestChaosShort is the short chaos run of `make test`: three instances,
// 40 users, 25 s of calls with a fault every second, so every kind happens
// several times. It fails unless nothing was lost, duplicated,
// inconsistent or unrecovered. The losses it looks for are races (an event
// published while an instance resubscribes after a Redis restart), so the
// run is dense: users call every 1–3 s rather than 5–15 s, which is what
// made it catch the loss of the code before the outbox in 4 runs of 5
// (make chaos, longer and with more users, catches it every time). It
// asserts nothing about time: every wait in the run is a generous deadline
// on something awaited. CHAOS_LOGDIR=dir keeps every process's output and
// the run's history there (see cmd/signald-chaos).
func TestChaosShort(t *testing.T) {
	if signaldBin == "" {
		t.Skip("starts redis-server and signald processes; skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server not on PATH: run `make deps` (it installs Debian's redis-server)")
	}
	leaktest.Check(t)
	cfg := DefaultConfig()
	cfg.SignaldBin = signaldBin
	cfg.Users = 40
	cfg.Duration = 25 * time.Second
	cfg.FaultInterval = time.Second
	cfg.CallEveryMin, cfg.CallEveryMax = time.Second, 3*time.Second
	cfg.Seed = 1
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	cfg.LogDir = os.Getenv("CHAOS_LOGDIR")
	start := time.Now()
	rep, err := Run(t.Context(), cfg)
	if rep != nil {
		var b strings.Builder
		_ = rep.Print(&b)
		t.Logf("report (run took %v):\n%s", time.Since(start).Round(time.Second), b.String())
	}
	if err != nil {
		t.Fatalf("the run could not be carried out: %v", err)
	}
	for _, k := range AllFaults {
		if rep.Stats.FaultCounts[k] == 0 {
			t.Errorf("fault %s never happened", k)
		}
	}
	if !rep.OK() {
		t.Errorf("%s unrecovered=%d; want all 0", rep.Line(), rep.Unrecovered)
	}
}
