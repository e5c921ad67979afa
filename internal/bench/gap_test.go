package bench

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestConnWatchEventOrder(t *testing.T) {
	w := newConnWatch(2)
	for _, id := range []string{"0001", "0002", "0002", "0004", "0003", "0005"} {
		w.event(0, []byte(id))
	}
	w.event(1, []byte("0001")) // connections are independent
	if w.kept.Load() != 7 || w.repeated.Load() != 1 || w.outOfOrder.Load() != 1 {
		t.Fatalf("kept %d repeated %d out of order %d, want 7 1 1", w.kept.Load(), w.repeated.Load(), w.outOfOrder.Load())
	}
	if w.last[0] != "0005" || w.last[1] != "0001" {
		t.Fatalf("newest IDs %q", w.last)
	}
	// An eventID below the newest is never taken as the newest: the one
	// after it is judged against 0005.
	w.event(0, []byte("0004"))
	if w.outOfOrder.Load() != 2 || w.last[0] != "0005" {
		t.Fatalf("out of order %d, newest %q", w.outOfOrder.Load(), w.last[0])
	}
}

func TestConnWatchCloses(t *testing.T) {
	w := newConnWatch(0)
	w.ended(fmt.Errorf("read: %w", websocket.CloseError{Code: websocket.StatusServiceRestart, Reason: "reconnect and resume"}))
	w.ended(websocket.CloseError{Code: websocket.StatusServiceRestart})
	w.ended(websocket.CloseError{Code: websocket.StatusPolicyViolation, Reason: "too slow"})
	w.ended(errors.New("EOF"))
	got := w.closed()
	if got[1012] != 2 || got[1008] != 1 || got[-1] != 1 || len(got) != 3 || w.closedTotal() != 4 {
		t.Fatalf("closes %v total %d", got, w.closedTotal())
	}
	got[1012] = 100 // a copy
	if w.closed()[1012] != 2 {
		t.Fatal("closed returned the watch's own map")
	}
}

func TestOwedEvents(t *testing.T) {
	for _, tc := range []struct {
		kind    setupKind
		pending uint8
		want    int64
	}{
		{kindAccept, kindNeeds[kindAccept], 0},                            // no invite reply: the invitation may not exist
		{kindAccept, needDelivery | needAnswerReply | needCallerEvent, 1}, // the ring never came
		{kindAccept, needAnswerReply | needCallerEvent, 0},                // the accept reply never came: a lost reply
		{kindAccept, needCallerEvent, 1},                                  // accepted, but the caller never heard
		{kindReject, needCallerEvent, 1},
		{kindCancel, needAnswerReply | needCalleeEvent, 0},  // no cancel reply
		{kindCancel, needCalleeEvent, 1},                    // cancelled, the callee never heard
		{kindTimeout, needCallerEvent | needCalleeEvent, 2}, // the timeout reached neither
		{kindTimeout, needDelivery | needCallerEvent | needCalleeEvent, 3},
		{kindTimeout, needCalleeEvent, 1},
		{kindAccept, 0, 0},
	} {
		if got := owedEvents(tc.pending, tc.kind); got != tc.want {
			t.Errorf("owedEvents(%05b, %s) = %d, want %d", tc.pending, kindNames[tc.kind], got, tc.want)
		}
	}
}

func TestCatchUpWatchObserve(t *testing.T) {
	hist := func(count, sum float64) PromHistogram {
		return PromHistogram{Count: count, Sum: sum, Buckets: []PromBucket{{0.01, count}, {math.Inf(1), count}}}
	}
	w := newCatchUpWatch(nil, Metrics{})
	if w.exported {
		t.Fatal("a scrape without the histogram counts as exported")
	}
	w.base, w.last = hist(2, 0.5), hist(2, 0.5) // gaps before the run
	w.observe(hist(2, 0.5))
	w.observe(hist(3, 0.52)) // one gap of 20 ms
	w.observe(hist(3, 0.52))
	w.observe(hist(5, 0.62)) // two at once, 100 ms together
	want := []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond}
	if w.seen() != 3 || w.merged != 1 {
		t.Fatalf("seen %d merged %d", w.seen(), w.merged)
	}
	for i, d := range w.gaps {
		if (d - want[i]).Abs() > time.Microsecond {
			t.Fatalf("gaps %v, want %v", w.gaps, want)
		}
	}
	if s := w.perGap.Summarize(); s.Count != 3 || (s.Max-50*time.Millisecond).Abs() > time.Microsecond {
		t.Fatalf("per-gap histogram %+v", s)
	}
	w.observe(hist(0, 0)) // the server restarted: nothing is counted
	if w.seen() != 3 {
		t.Fatalf("a counter reset counted as gaps: %d", w.seen())
	}
}

func TestClientNames(t *testing.T) {
	list := "id=5 addr=127.0.0.1:5000 laddr=127.0.0.1:6379 fd=9 name=signald-x age=3 flags=P\n" +
		"id=9 addr=127.0.0.1:5002 name=signald-b age=1 flags=P\r\n" +
		"id=7 addr=127.0.0.1:5001 name= age=1 flags=P\n" +
		"id=8 addr=127.0.0.1:5003 name=signald-x age=1 flags=P\n\n"
	if got := clientNames(list); !slices.Equal(got, []string{"(unnamed)", "signald-b", "signald-x"}) {
		t.Fatalf("names %q", got)
	}
	if got := clientNames(""); len(got) != 0 {
		t.Fatalf("no clients: %q", got)
	}
}

func TestReportFailuresFailTheCheck(t *testing.T) {
	r := sampleReport()
	if err := r.Check(1); err != nil {
		t.Fatal(err)
	}
	r.fail("%d connections ended (%s): the target is 0 reconnects", 2, "2 with status 1012")
	r.fail("%d events lost: the target is 0", 1)
	err := r.Check(100)
	if err == nil || !strings.Contains(err.Error(), "2 connections ended") || !strings.Contains(err.Error(), "1 events lost") {
		t.Fatalf("Check = %v", err)
	}
	var b strings.Builder
	if err := r.Print(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "FAILED CHECKS\n- 2 connections ended (2 with status 1012)") {
		t.Fatalf("report:\n%s", b.String())
	}
}

func TestNormalizeGap(t *testing.T) {
	ok := DefaultConfig()
	ok.Scenario, ok.Conns, ok.RedisAddr = ScenarioGap, 200, "127.0.0.1:6379"
	if err := ok.Normalize(); err != nil {
		t.Fatalf("valid gap config: %v", err)
	}
	for name, change := range map[string]func(*Config){
		"no -redis":                           func(c *Config) { c.RedisAddr = "" },
		"-other-url":                          func(c *Config) { c.OtherURL = "ws://127.0.0.1:2/v1/ws" },
		"fewer conns than users of the pairs": func(c *Config) { c.Conns = 2*c.Pairs - 1 },
		"no kill":                             func(c *Config) { c.Kills = 0 },
		"no interval":                         func(c *Config) { c.KillInterval = 0 },
		"metrics off":                         func(c *Config) { c.MetricsURL = "off" },
		"bad mix":                             func(c *Config) { c.RejectPct = 101 },
	} {
		c := ok
		c.MetricsURL = ""
		change(&c)
		if err := c.Normalize(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
