package systemtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// TestKill9TimeoutsExactlyOnce: three instances poll one Redis for due
// timeouts; one of them is killed with SIGKILL while it is firing the first
// deadlines, holding claims it never fires. Every invitation still times
// out exactly once: each recipient connection on the surviving instances
// hears each timeout once, and getSignalingInfo says "timeout".
//
// node1 polls every 20 ms, the survivors every 500 ms, so that node1 is
// nearly always the one that claims the first due deadlines: the kill then
// lands while it holds claims, every run, instead of in some runs only.
func TestKill9TimeoutsExactlyOnce(t *testing.T) {
	requireBinary(t)
	rs := startRedis(t, "redis")
	dep := newDeployment(t, "redis://"+rs.addr, "single", map[string]string{
		"SIGNALD_CLAIM_LEASE":   "1s",
		"SIGNALD_POLL_INTERVAL": "500ms",
	})
	doomed := dep.startWith("node1", map[string]string{"SIGNALD_POLL_INTERVAL": "20ms"})
	ins := []*instance{doomed, dep.start("node2"), dep.start("node3")}

	dave := login(t, doomed.ws(), "dave") // an inviter on the instance that dies
	alice := login(t, ins[1].ws(), "alice")
	carol := login(t, ins[2].ws(), "carol")
	bob2 := login(t, ins[1].ws(), "bob")
	bob3 := login(t, ins[2].ws(), "bob")

	const n = 42
	callers := []*device{dave, alice, carol}
	byCaller := map[*device][]string{}
	var ids []string
	due := map[string]time.Time{} // when each should time out, roughly
	start := time.Now()
	for i := range n {
		// The first half due after 1 s, created together so that node1
		// claims many of them at once; the rest after 2 s.
		c := callers[i%len(callers)]
		timeout := 1 + 2*i/n
		id := c.invite(map[string]any{"invitee": "bob", "data": fmt.Sprint(i), "timeout": timeout})
		ids = append(ids, id)
		byCaller[c] = append(byCaller[c], id)
		due[id] = time.Now().Add(time.Duration(timeout) * time.Second)
	}
	t.Logf("%d invitations created over the three instances in %v", n, time.Since(start).Round(time.Millisecond))

	// bob's device on node2 hears every ring; the first timeout means that
	// node1 has begun to fire the deadlines it claimed: it dies then.
	deadline := time.Now().Add(waitFor)
	heard2 := newTally()
	for heard2.timeouts() == 0 {
		f, err := bob2.nextWithin(time.Until(deadline))
		if err != nil {
			t.Fatalf("bob on node2, waiting for the first timeout: %v; so far %s", err, heard2.summary(ids))
		}
		heard2.add(t, f)
	}
	doomed.kill()
	t.Logf("node1 killed %v after the first invite; %d timeouts heard by then", time.Since(start).Round(time.Millisecond), heard2.timeouts())
	if st := dave.closedWith(waitFor); st != -1 {
		t.Logf("dave's connection to the killed node ended with status %d", st)
	}

	// Each invitation: rung once and timed out once on each of bob's
	// devices, within deadline + claim lease + poll interval.
	for _, dv := range []struct {
		d     *device
		heard *tally
		name  string
	}{{bob2, heard2, "bob on node2"}, {bob3, newTally(), "bob on node3"}} {
		for dv.heard.total() < 2*n {
			f, err := dv.d.nextWithin(time.Until(deadline))
			if err != nil {
				t.Fatalf("%s: %v; so far %s; not heard once: %s", dv.name, err, dv.heard.summary(ids), dv.heard.explain(ids, dv.d))
			}
			dv.heard.add(t, f)
		}
		if err := dv.heard.exactlyOnce(ids); err != nil {
			t.Fatalf("%s: %v", dv.name, err)
		}
		dv.d.expectQuiet()
	}
	// A deadline claimed by node1 and never fired is fired by a survivor
	// once the claim lease (1 s) has passed. bob2 was read as frames came,
	// so when it heard them says how late they were.
	afterLease := 0
	var latest time.Duration
	for id, at := range heard2.timedOutAt {
		late := at.Sub(due[id])
		latest = max(latest, late)
		if late >= time.Second {
			afterLease++
		}
	}
	t.Logf("%d timeouts were heard a claim lease or more after their deadline (the latest %v): claims node1 held when it died",
		afterLease, latest.Round(time.Millisecond))
	// The callers that survived hear each timeout of theirs once.
	for _, c := range []*device{alice, carol} {
		heard := newTally()
		for heard.total() < len(byCaller[c]) {
			f, err := c.nextWithin(time.Until(deadline))
			if err != nil {
				t.Fatalf("%s: %v; so far %s", c.user, err, heard.summary(byCaller[c]))
			}
			heard.add(t, f)
		}
		if heard.rings() != 0 || heard.timeouts() != len(byCaller[c]) {
			t.Fatalf("%s: %s", c.user, heard.summary(byCaller[c]))
		}
		for _, id := range byCaller[c] {
			if heard.timedOut[id] != 1 {
				t.Fatalf("%s heard the timeout of %s %d times", c.user, id, heard.timedOut[id])
			}
		}
		c.expectQuiet()
	}
	for _, id := range ids {
		if st := bob2.states(id); st["bob"] != "timeout" {
			t.Fatalf("getSignalingInfo %s: states %v, want bob timeout", id, st)
		}
	}
	// dave comes back through another instance: his invitations ended.
	daveAgain := login(t, ins[1].ws(), "dave")
	for _, id := range byCaller[dave] {
		if st := daveAgain.states(id); st["bob"] != "timeout" {
			t.Fatalf("getSignalingInfo %s for its inviter: states %v", id, st)
		}
	}
	daveAgain.expectQuiet()
	t.Logf("all %d timeouts heard exactly once, %v after the first invite", n, time.Since(start).Round(time.Millisecond))
}

// tally counts what one connection heard, per invitation.
type tally struct {
	rung, timedOut map[string]int
	timedOutAt     map[string]time.Time // when the timeout was first heard
}

func newTally() *tally {
	return &tally{rung: map[string]int{}, timedOut: map[string]int{}, timedOutAt: map[string]time.Time{}}
}

func (h *tally) add(t *testing.T, f *protocol.Frame) {
	t.Helper()
	switch f.Event {
	case "onReceiveNewInvitation":
		h.rung[f.InviteID]++
	case "onInvitationTimeout":
		h.timedOut[f.InviteID]++
		if _, ok := h.timedOutAt[f.InviteID]; !ok {
			h.timedOutAt[f.InviteID] = time.Now()
		}
		if !slices.Equal(f.InviteeList, []string{"bob"}) {
			t.Fatalf("timeout with inviteeList %v: %s", f.InviteeList, describe(f))
		}
	default:
		t.Fatalf("unexpected %s", describe(f))
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func (h *tally) rings() int    { return sum(h.rung) }
func (h *tally) timeouts() int { return sum(h.timedOut) }
func (h *tally) total() int    { return h.rings() + h.timeouts() }

// exactlyOnce checks that every one of ids was rung once and timed out once.
func (h *tally) exactlyOnce(ids []string) error {
	var bad []string
	for _, id := range ids {
		if h.rung[id] != 1 || h.timedOut[id] != 1 {
			bad = append(bad, fmt.Sprintf("%s rung %d timed out %d", id, h.rung[id], h.timedOut[id]))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("want each invitation rung once and timed out once: %s", strings.Join(bad, "; "))
	}
	return nil
}

// explain lists the invitations of ids not heard exactly once each way,
// with their states as getSignalingInfo on d reports them.
func (h *tally) explain(ids []string, d *device) string {
	var out []string
	for i, id := range ids {
		if h.rung[id] == 1 && h.timedOut[id] == 1 {
			continue
		}
		out = append(out, fmt.Sprintf("#%d %s (rung %d, timed out %d, states %v)",
			i, id, h.rung[id], h.timedOut[id], d.states(id)))
	}
	return strings.Join(out, "; ")
}

// summary says how many of ids were heard.
func (h *tally) summary(ids []string) string {
	rung, timedOut := 0, 0
	for _, id := range ids {
		if h.rung[id] > 0 {
			rung++
		}
		if h.timedOut[id] > 0 {
			timedOut++
		}
	}
	return fmt.Sprintf("rung for %d/%d invitations, timed out for %d/%d (%d rings, %d timeouts in all)",
		rung, len(ids), timedOut, len(ids), h.rings(), h.timeouts())
}
