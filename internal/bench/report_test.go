package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func sampleReport() *Report {
	r := &Report{Scenario: "calls", Target: "ws://127.0.0.1:1/v1/ws", Prefix: "p", MeasuredSeconds: 10}
	var errs ErrorCounter
	for range 3 {
		errs.Code("invite", 60018)
	}
	errs.Add("connection lost: EOF")
	r.setOutcome("invitations completed", 996, &errs)
	s := r.section("results")
	s.add("setups_per_s", "call setups per second", 4860.84, "/s")
	s.add("nan", "dropped because NaN", 0/func() float64 { return 0 }(), "")
	r.section("server").add("cpu_seconds", "CPU used", 10.5, "s")
	h := NewHistogram()
	for i := range 100 {
		h.Record(time.Duration(i+1) * time.Millisecond)
	}
	r.addLatency("setup", h)
	r.addLatency("empty histograms are left out", NewHistogram())
	r.note("a note with %d", 1)
	return r
}

func TestReportOutcomeAndCheck(t *testing.T) {
	r := sampleReport()
	if r.Ops != 996 || r.Failed != 4 || r.ErrorPct != 0.4 {
		t.Fatalf("ops %d failed %d pct %v", r.Ops, r.Failed, r.ErrorPct)
	}
	if r.Errors["invite: code 60018"] != 3 {
		t.Fatalf("errors %v", r.Errors)
	}
	if err := r.Check(1); err != nil {
		t.Fatalf("0.4%% errors failed a 1%% limit: %v", err)
	}
	if err := r.Check(0.3); err == nil {
		t.Fatal("0.4% errors passed a 0.3% limit")
	}
	empty := &Report{OpName: "group rounds"}
	if err := empty.Check(100); err == nil || !strings.Contains(err.Error(), "no group rounds") {
		t.Fatalf("nothing succeeded: %v", err)
	}
	if _, ok := r.Figure("results", "nan"); ok {
		t.Fatal("a NaN figure was kept")
	}
	if v, ok := r.Figure("server", "cpu_seconds"); !ok || v != 10.5 {
		t.Fatalf("Figure = %v %v", v, ok)
	}
	if l := r.Latencies; len(l) != 1 || math.Abs(l[0].P50Ms-50) > 0.5 || l[0].MaxMs != 100 || l[0].MinMs != 1 {
		t.Fatalf("latencies %+v", r.Latencies)
	}
}

func TestReportPrintIsAligned(t *testing.T) {
	var b strings.Builder
	if err := sampleReport().Print(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"RESULTS", "call setups per second  4860.8 /s", "LATENCY (ms)", "invite: code 60018", "- a note with 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// The latency table's columns line up: every row is as long as its header.
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "LATENCY") {
			if len(lines[i+1]) != len(l) {
				t.Errorf("latency row %q not aligned with header %q", lines[i+1], l)
			}
		}
	}
}

func TestReportWriteJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	r := sampleReport()
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Ops != r.Ops || len(back.Sections) != 2 || back.Latencies[0].P99Ms != r.Latencies[0].P99Ms ||
		back.Errors["connection lost: EOF"] != 1 {
		t.Fatalf("round trip lost data: %s", b)
	}
	if strings.Contains(string(b), "signald-dev-secret") {
		t.Fatal("the JSON report holds the secret")
	}
}

func TestParseProcStat(t *testing.T) {
	a := parseProcStat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n")
	b := parseProcStat("cpu  200 0 100 850 50 0 0 0 0 0\n")
	if !a.OK || a.Total != 1000 || a.Idle != 850 {
		t.Fatalf("parsed %+v", a)
	}
	if got := b.BusyPct(a); got != 75 {
		t.Fatalf("busy %v%%, want 75%%", got)
	}
	if parseProcStat("intr 1 2 3").OK || (MachineCPU{}).BusyPct(a) != -1 {
		t.Fatal("garbage accepted")
	}
}

func TestSelfCPUAndNoFile(t *testing.T) {
	start := SelfCPU()
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
	}
	if SelfCPU() <= start {
		t.Fatal("CPU time did not advance while spinning")
	}
	limit, err := RaiseNoFile()
	if err != nil || limit == 0 {
		t.Fatalf("RaiseNoFile = %d, %v", limit, err)
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur != rl.Max {
		t.Fatalf("soft limit %d, hard %d (%v)", rl.Cur, rl.Max, err)
	}
}

func TestClassifyErrors(t *testing.T) {
	for err, want := range map[error]string{
		&LoginError{Code: 70003, Desc: "bad"}:                                                           "login: code 70003",
		fmt.Errorf("dial: %w", syscall.ECONNREFUSED):                                                    "dial: connection refused",
		fmt.Errorf("dial tcp 127.0.0.1:5->127.0.0.1:6: %w", syscall.EADDRNOTAVAIL):                      "dial: no free local port (EADDRNOTAVAIL)",
		fmt.Errorf("x: %w", context.DeadlineExceeded):                                                   "connect: timed out",
		errors.New("failed to WebSocket dial: expected handshake response status code 101 but got 503"): "connect: expected handshake response status code 101 but got 503",
	} {
		if got := classifyConnectErr(err); got != want {
			t.Errorf("classifyConnectErr(%v) = %q, want %q", err, got, want)
		}
	}
	closeErr := fmt.Errorf("read: %w", websocket.CloseError{Code: websocket.StatusServiceRestart})
	if got := classifyCloseErr(closeErr); got != "connection closed by server: status 1012" {
		t.Errorf("classifyCloseErr = %q", got)
	}
}
