package bench

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// newTestInvites returns an invites run whose connections exist but have no
// socket: the tests drive its handlers directly and look at the actions
// they return, which are never carried out.
func newTestInvites(t *testing.T, callers, perCaller, callees int, edit func(*Config)) *invitesRun {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Scenario, cfg.Prefix = ScenarioInvites, "t"
	cfg.Callers, cfg.PerCaller, cfg.Callees = callers, perCaller, callees
	if edit != nil {
		edit(&cfg)
	}
	r := newInvitesRun(&cfg)
	users := r.users()
	conns := make([]*Conn, len(users))
	for i, u := range users {
		conns[i] = &Conn{User: u, Index: i}
	}
	if c, e := r.attach(conns); c != callers || e != callees {
		t.Fatalf("attach: %d callers, %d callees", c, e)
	}
	return r
}

// testStart prepares slot i's invite as kick does, without sending it.
func (r *invitesRun) testStart(t *testing.T, i int) invAction {
	t.Helper()
	s := r.slots[i]
	var a invAction
	s.caller.mu.Lock()
	r.prepareLocked(s, time.Now(), &a)
	s.caller.mu.Unlock()
	if a.invite != s {
		t.Fatalf("slot %d: no invite prepared: %+v", i, a)
	}
	return a
}

func TestInvitesConfig(t *testing.T) {
	base := DefaultConfig()
	base.Scenario = ScenarioInvites
	if err := base.Normalize(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if base.Callers != 8 || base.Callees != 2000 || base.PerCaller != 1 || !base.CancelDelivered {
		t.Errorf("defaults: %+v", base)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no callers", func(c *Config) { c.Callers = 0 }, "-callers"},
		{"fewer callees than in flight", func(c *Config) { c.Callers, c.PerCaller, c.Callees = 4, 3, 11 }, "-callees 11 is fewer than the 12"},
		{"no duration", func(c *Config) { c.Duration = 0 }, "-duration"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "-rate"},
		{"short timeout", func(c *Config) { c.InviteTimeout = 1 }, "-invite-timeout"},
		{"two instances", func(c *Config) { c.OtherURL = "ws://127.0.0.1:2/v1/ws" }, "-other-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			err := c.Normalize()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestPickCalleeRoundRobin(t *testing.T) {
	r := newTestInvites(t, 1, 1, 4, nil)
	for want := range int32(4) {
		if got := r.pickCallee(want); got != want {
			t.Fatalf("pick %d: got callee %d", want, got)
		}
	}
	if got := r.pickCallee(9); got != -1 {
		t.Fatalf("every callee taken: got %d, want -1", got)
	}
	// Callee 1 comes back, 2 goes to rest, 3 is gone: the next round
	// takes 1 and skips the rest.
	r.callees[1].owner.Store(calleeFree)
	r.callees[2].owner.Store(calleeResting)
	r.callees[3].owner.Store(calleeDead)
	if got := r.pickCallee(5); got != 1 {
		t.Fatalf("got callee %d, want 1", got)
	}
	if o := r.callees[1].owner.Load(); o != 5 {
		t.Fatalf("callee 1's owner is %d, want slot 5", o)
	}
}

func TestInvitesReplyThenDelivery(t *testing.T) {
	r := newTestInvites(t, 1, 1, 3, nil)
	cl, now := r.callers[0], time.Now()
	a := r.testStart(t, 0)
	if a.invitee != "t-e0" || a.inviteReq == 0 {
		t.Fatalf("first invite: %+v", a)
	}
	if got := r.callerReply(cl, a.inviteReq, 0, []byte("inv-1"), now); got != (invAction{}) {
		t.Fatalf("a reply started something: %+v", got)
	}
	// A delivery of another invitation to that callee is not this one.
	if got := r.delivered(0, []byte("inv-0"), now); got != (invAction{}) || r.stale.Load() != 1 {
		t.Fatalf("a stray delivery was taken: %+v, stale %d", got, r.stale.Load())
	}
	next := r.delivered(0, []byte("inv-1"), now)
	if r.deliveries.Load() != 1 || r.active.Load() != 1 {
		t.Fatalf("deliveries %d, active %d", r.deliveries.Load(), r.active.Load())
	}
	// The next invite goes at once to the next callee; the cancel names the
	// invitation just delivered.
	if next.invite != r.slots[0] || next.invitee != "t-e1" || next.cancelOn != cl || next.cancelID != "inv-1" {
		t.Fatalf("after the delivery: %+v", next)
	}
	if r.callees[0].owner.Load() != calleeFree || r.callees[1].owner.Load() != 0 {
		t.Fatalf("owners %d %d", r.callees[0].owner.Load(), r.callees[1].owner.Load())
	}
	r.callerReply(cl, next.cancelReq, 0, nil, now)
	if r.cancelled.Load() != 1 || r.cancelsOut.Load() != 0 || len(cl.cancels) != 0 || r.errs.Total() != 0 {
		t.Fatalf("cancelled %d, out %d, errors %v", r.cancelled.Load(), r.cancelsOut.Load(), r.errs.Snapshot())
	}
}

func TestInvitesDeliveryBeforeReply(t *testing.T) {
	r := newTestInvites(t, 1, 1, 3, nil)
	cl, now := r.callers[0], time.Now()
	first := r.testStart(t, 0)
	second := r.delivered(0, []byte("inv-1"), now)
	if second.invite == nil || r.lateOut.Load() != 1 {
		t.Fatalf("the delivery did not move the slot on: %+v, late %d", second, r.lateOut.Load())
	}
	third := r.delivered(1, []byte("inv-2"), now)
	if r.lateOut.Load() != 2 {
		t.Fatalf("late %d, want 2", r.lateOut.Load())
	}
	// The replies come after both deliveries: matched, checked, not stale.
	r.callerReply(cl, first.inviteReq, 0, []byte("inv-1"), now)
	r.callerReply(cl, second.inviteReq, 0, []byte("inv-other"), now)
	if r.lateReplies.Load() != 2 || r.lateOut.Load() != 0 || r.stale.Load() != 0 {
		t.Fatalf("late replies %d, out %d, stale %d", r.lateReplies.Load(), r.lateOut.Load(), r.stale.Load())
	}
	if e := r.errs.Snapshot(); len(e) != 1 || e["invite reply and onReceiveNewInvitation name different inviteIDs"] != 1 {
		t.Fatalf("errors %v", e)
	}
	// The third invite's reply is still its slot's own.
	r.callerReply(cl, third.inviteReq, 0, []byte("inv-3"), now)
	if s := r.slots[0]; s.inviteID != "inv-3" || s.inviteReq != 0 {
		t.Fatalf("slot: %+v", s)
	}
	r.callerReply(cl, 12345, 0, nil, now)
	if r.stale.Load() != 1 {
		t.Fatalf("a reply to nothing: stale %d", r.stale.Load())
	}
}

func TestInvitesFailures(t *testing.T) {
	r := newTestInvites(t, 1, 2, 4, nil)
	cl, now := r.callers[0], time.Now()
	a := r.testStart(t, 0)
	b := r.testStart(t, 1)

	// Refused: the invitation does not exist, its callee is free at once
	// and the slot tries again with the next.
	retry := r.callerReply(cl, a.inviteReq, 60018, nil, now)
	if retry.invite != r.slots[0] || retry.invitee != "t-e2" {
		t.Fatalf("after 60018: %+v", retry)
	}
	if r.callees[0].owner.Load() != calleeFree {
		t.Fatalf("callee 0: owner %d", r.callees[0].owner.Load())
	}
	// 90994: it may exist, so its callee rests.
	r.callerReply(cl, b.inviteReq, 90994, nil, now)
	if r.callees[1].owner.Load() != calleeResting {
		t.Fatalf("callee 1: owner %d", r.callees[1].owner.Load())
	}
	// A cancel refused counts as a failed cancel.
	d := r.delivered(2, []byte("inv-x"), now)
	r.callerReply(cl, d.cancelReq, 8010, nil, now)
	want := map[string]int64{"invite: code 60018": 1, "invite: code 90994": 1, "cancel: code 8010": 1}
	if e := r.errs.Snapshot(); !maps.Equal(e, want) {
		t.Fatalf("errors %v, want %v", e, want)
	}
	if r.cancelsFailed.Load() != 1 || r.cancelled.Load() != 0 {
		t.Fatalf("cancels failed %d, cancelled %d", r.cancelsFailed.Load(), r.cancelled.Load())
	}
	// A delivery to a callee nobody waits for is stale.
	if got := r.delivered(1, []byte("inv-late"), now); got != (invAction{}) || r.stale.Load() != 1 {
		t.Fatalf("late delivery: %+v, stale %d", got, r.stale.Load())
	}
}

func TestInvitesWhatFollowsADelivery(t *testing.T) {
	for _, tc := range []struct {
		name       string
		edit       func(*Config)
		stop       bool
		invite     bool
		cancel     bool
		enqueue    bool
		cancelsOut int64
	}{
		{name: "closed loop", invite: true, cancel: true, cancelsOut: 1},
		{name: "paced", edit: func(c *Config) { c.Rate = 100 }, cancel: true, enqueue: true, cancelsOut: 1},
		{name: "load ended", stop: true, cancel: true, cancelsOut: 1},
		{name: "no cancels", edit: func(c *Config) { c.CancelDelivered = false }, invite: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestInvites(t, 1, 1, 2, tc.edit)
			r.testStart(t, 0)
			r.stop.Store(tc.stop)
			a := r.delivered(0, []byte("inv-1"), time.Now())
			if (a.invite != nil) != tc.invite || (a.cancelOn != nil) != tc.cancel || (a.enqueue != nil) != tc.enqueue {
				t.Fatalf("action %+v", a)
			}
			if r.cancelsOut.Load() != tc.cancelsOut {
				t.Fatalf("cancels out %d", r.cancelsOut.Load())
			}
		})
	}
}

func TestInvitesCallerClosed(t *testing.T) {
	r := newTestInvites(t, 1, 1, 2, nil)
	r.testStart(t, 0)
	if d := r.delivered(0, []byte("inv-1"), time.Now()); d.invitee != "t-e1" {
		t.Fatalf("the next invite: %+v", d)
	}
	r.HandleClose(r.callers[0].conn, errTestClosed)
	if r.outstanding() != 0 {
		t.Fatalf("outstanding %d after the caller's end (active %d late %d cancels %d)",
			r.outstanding(), r.active.Load(), r.lateOut.Load(), r.cancelsOut.Load())
	}
	if r.callees[1].owner.Load() != calleeResting {
		t.Fatal("the callee of the invitation under way is not resting")
	}
	var next invAction
	r.callers[0].mu.Lock()
	r.nextLocked(r.slots[0], time.Now(), &next)
	r.callers[0].mu.Unlock()
	if next != (invAction{}) {
		t.Fatalf("a closed caller's slot went on: %+v", next)
	}
}

var errTestClosed = errTest("connection closed")

type errTest string

func (e errTest) Error() string { return string(e) }

func TestPerThousand(t *testing.T) {
	metrics := func(cpu float64) Metrics {
		return Metrics{ByName: map[string]float64{"process_cpu_seconds_total": cpu}}
	}
	before := snapshot{metrics: metrics(10), redis: RedisSnapshot{CPUSeconds: 100, HasCPU: true}}
	after := snapshot{metrics: metrics(13), redis: RedisSnapshot{CPUSeconds: 101.5, HasCPU: true}}
	c := cpuBetween(before, after)
	if !c.hasServer || !c.hasRedis || c.server != 3 || c.redis != 1.5 {
		t.Fatalf("cpu %+v", c)
	}

	const sec = "cpu per 1,000 deliveries"
	withRedis := &probe{rdb: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})} // never used
	defer func() { _ = withRedis.rdb.Close() }()
	r := &Report{}
	withRedis.perThousand(r, c, "deliveries", 30000)
	for key, want := range map[string]float64{"server_cpu_s_per_1k": 0.1, "redis_cpu_s_per_1k": 0.05, "server_redis_cpu_s_per_1k": 0.15} {
		if v, ok := r.Figure(sec, key); !ok || v < want-1e-12 || v > want+1e-12 {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}

	// Without -redis only the server's; without Redis CPU a note.
	r = &Report{}
	(&probe{}).perThousand(r, c, "deliveries", 30000)
	if _, ok := r.Figure(sec, "redis_cpu_s_per_1k"); ok {
		t.Error("a Redis figure without -redis")
	}
	if v, _ := r.Figure(sec, "server_cpu_s_per_1k"); v != 0.1 {
		t.Errorf("server per 1k = %v", v)
	}
	r = &Report{}
	withRedis.perThousand(r, cpuCost{server: 3, hasServer: true}, "deliveries", 30000)
	if _, ok := r.Figure(sec, "server_redis_cpu_s_per_1k"); ok || len(r.Notes) != 1 {
		t.Errorf("no Redis CPU: figures %+v, notes %q", r.Sections, r.Notes)
	}
	// Redis could not be read at all: no Redis CPU.
	if c := cpuBetween(before, snapshot{metrics: metrics(13), redisErr: errTestClosed}); c.hasRedis || !c.hasServer {
		t.Errorf("redis error: %+v", c)
	}
	r = &Report{}
	withRedis.perThousand(r, c, "deliveries", 0)
	if len(r.Sections) != 0 {
		t.Errorf("no deliveries, yet figures: %+v", r.Sections)
	}
}

func TestInvitesAttach(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Prefix, cfg.Callers, cfg.PerCaller, cfg.Callees = "t", 2, 1, 3
	r := newInvitesRun(&cfg)
	users := r.users()
	if want := []string{"t-c0", "t-c1", "t-e0", "t-e1", "t-e2"}; !slices.Equal(users, want) {
		t.Fatalf("users %q, want %q", users, want)
	}
	conns := make([]*Conn, len(users))
	for i, u := range users {
		conns[i] = &Conn{User: u, Index: i}
	}
	// Caller 1 and callee 0 did not connect; callee 2 ended before attach.
	conns[1], conns[2] = nil, nil
	r.HandleClose(conns[4], errTestClosed)
	if callers, callees := r.attach(conns); callers != 1 || callees != 2 {
		t.Fatalf("attach: %d callers, %d callees", callers, callees)
	}
	if !r.callers[1].dead || r.callers[0].dead {
		t.Error("caller liveness wrong")
	}
	if got := r.pickCallee(0); got != 1 {
		t.Fatalf("picked callee %d, want 1, the only one live", got)
	}
	if got := r.pickCallee(1); got != -1 {
		t.Fatalf("picked callee %d, want none", got)
	}
}
