package invite_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signald/signald/internal/group"
	"github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/memstore"
)

// recorder keeps every published event and push request. While failing,
// Publish fails as a bus whose backend is down does, and records the
// attempt in failed instead.
type recorder struct {
	mu         sync.Mutex
	events     []invite.Event
	at         []time.Time // when each of events was published
	failed     []invite.Event
	failing    bool
	pushes     []string            // Ring: "ring <user> <foreground devices>"; End: "end <users> <reason> <spared device>"
	foreground map[string][]string // by user, what Publish reports
}

var errBusDown = errors.New("bus down")

func (r *recorder) Publish(_ context.Context, ev invite.Event) ([][]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing {
		r.failed = append(r.failed, ev)
		return nil, errBusDown
	}
	r.events = append(r.events, ev)
	r.at = append(r.at, time.Now())
	if !ev.Presence {
		return nil, nil
	}
	fg := make([][]string, len(ev.To))
	for i, u := range ev.To {
		fg[i] = r.foreground[u]
	}
	return fg, nil
}

func (r *recorder) setFailing(b bool) {
	r.mu.Lock()
	r.failing = b
	r.mu.Unlock()
}

func (r *recorder) Ring(_ context.Context, inv *invite.Invitation, foreground [][]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, u := range inv.Invitees {
		r.pushes = append(r.pushes, fmt.Sprintf("ring %s %v", u, foreground[i]))
	}
	return nil
}

func (r *recorder) End(_ context.Context, _ *invite.Invitation, users []string, reason, spare string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pushes = append(r.pushes, fmt.Sprintf("end %v %s %q", users, reason, spare))
	return nil
}

func (r *recorder) kinds() []invite.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var k []invite.EventKind
	for _, e := range r.events {
		k = append(k, e.Kind)
	}
	return k
}

func (r *recorder) last() invite.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[len(r.events)-1]
}

type fixture struct {
	e     *invite.Engine
	rec   *recorder
	store *memstore.Store
}

func newEngine(t *testing.T) fixture {
	t.Helper()
	return newEngineWith(t, invite.DefaultConfig())
}

func newEngineWith(t *testing.T, cfg invite.Config) fixture {
	t.Helper()
	store := memstore.New()
	rec := &recorder{foreground: map[string][]string{}}
	e, err := invite.NewEngine(cfg, invite.Deps{
		Store: store, Groups: store, Publisher: rec, Pusher: rec,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry(), Node: "n1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{e, rec, store}
}

// runLoop runs the timeout loop for the rest of the bubble's test.
func runLoop(t *testing.T, e *invite.Engine) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

var alice = invite.Caller{User: "alice", Session: 1}
var bob = invite.Caller{User: "bob", Session: 2}

func TestTimeoutFiresOnceAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEngine(t)
		runLoop(t, f.e)
		ctx := context.Background()
		id, err := f.e.Invite(ctx, alice, invite.InviteRequest{Invitees: []string{"bob"}, Timeout: 30})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(30*time.Second - time.Millisecond)
		synctest.Wait()
		if k := f.rec.kinds(); !slices.Equal(k, []invite.EventKind{invite.EvNewInvitation}) {
			t.Fatalf("before the deadline: events %v", k)
		}
		time.Sleep(100 * time.Millisecond) // at most one poll interval late
		synctest.Wait()
		if k := f.rec.kinds(); !slices.Equal(k, []invite.EventKind{invite.EvNewInvitation, invite.EvTimeout}) {
			t.Fatalf("after the deadline: events %v", k)
		}
		ev := f.rec.last()
		if ev.InviteID != id || !slices.Equal(ev.InviteeList, []string{"bob"}) || !slices.Equal(ev.To, []string{"alice", "bob"}) {
			t.Fatalf("timeout event %+v", ev)
		}
		if want := []string{"ring bob []", `end [bob] timeout ""`}; !slices.Equal(f.rec.pushes, want) {
			t.Fatalf("pushes %q, want %q", f.rec.pushes, want)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := len(f.rec.kinds()); n != 2 {
			t.Fatalf("the timeout fired again: %v", f.rec.kinds())
		}
		if err := f.e.Accept(ctx, bob, id, ""); !errors.Is(err, invite.ErrNotFound) {
			t.Fatalf("accept an hour later: %v, want ErrNotFound (past retention)", err)
		}
	})
}

func TestAnswerJustBeforeTheDeadlineWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEngine(t)
		runLoop(t, f.e)
		ctx := context.Background()
		id, _ := f.e.Invite(ctx, alice, invite.InviteRequest{Invitees: []string{"bob"}, Timeout: 5})
		time.Sleep(5*time.Second - time.Millisecond)
		if err := f.e.Accept(ctx, bob, id, "yes"); err != nil {
			t.Fatalf("accept 1 ms before the deadline: %v", err)
		}
		time.Sleep(59 * time.Second) // well past the deadline, within the retention
		synctest.Wait()
		if k := f.rec.kinds(); !slices.Equal(k, []invite.EventKind{invite.EvNewInvitation, invite.EvAccepted}) {
			t.Fatalf("events %v", k)
		}
		// Still readable within the retention (60 s after it ended).
		if _, err := f.e.Get(ctx, alice, id); err != nil {
			t.Fatalf("get within retention: %v", err)
		}
		time.Sleep(time.Second)
		if _, err := f.e.Get(ctx, alice, id); !errors.Is(err, invite.ErrNotFound) {
			t.Fatalf("get past retention: %v", err)
		}
	})
}

func TestTimeoutZeroNeverFiresAndIsDroppedAtMaxLifetime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEngine(t)
		runLoop(t, f.e)
		ctx := context.Background()
		id, _ := f.e.Invite(ctx, alice, invite.InviteRequest{Invitees: []string{"bob"}, Timeout: 0})
		time.Sleep(24*time.Hour - time.Second)
		synctest.Wait()
		inv, err := f.e.Get(ctx, bob, id)
		if err != nil || inv.States["bob"] != invite.StatePending || inv.Deadline != 0 {
			t.Fatalf("after 24 h less a second: %+v, %v", inv, err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if _, err := f.e.Get(ctx, bob, id); !errors.Is(err, invite.ErrNotFound) {
			t.Fatalf("after the maximum lifetime: %v, want ErrNotFound", err)
		}
		if k := f.rec.kinds(); !slices.Equal(k, []invite.EventKind{invite.EvNewInvitation}) {
			t.Fatalf("dropped with events %v, want none", k)
		}
	})
}

func TestEventAudiences(t *testing.T) {
	f := newEngine(t)
	ctx := context.Background()
	if _, err := f.store.AddMembers(ctx, "g", []string{"alice", "bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	id, err := f.e.Invite(ctx, alice, invite.InviteRequest{GroupID: "g", Invitees: []string{"bob", "carol"}, Data: "d", Timeout: 30})
	if err != nil {
		t.Fatal(err)
	}
	ev := f.rec.last()
	if ev.Kind != invite.EvNewInvitation || !slices.Equal(ev.To, []string{"bob", "carol"}) || ev.GroupID != "g" {
		t.Fatalf("new invitation %+v", ev)
	}
	if err := f.e.Reject(ctx, bob, id, "no"); err != nil {
		t.Fatal(err)
	}
	ev = f.rec.last()
	if ev.Kind != invite.EvRejected || ev.Invitee != "bob" || !slices.Equal(ev.To, []string{"alice", "bob", "carol"}) || ev.Except != (invite.Origin{Node: "n1", Session: bob.Session}) {
		t.Fatalf("rejected %+v", ev)
	}
	if err := f.e.Cancel(ctx, alice, id, "bye"); err != nil {
		t.Fatal(err)
	}
	ev = f.rec.last()
	if ev.Kind != invite.EvCancelled || ev.Inviter != "alice" || !slices.Equal(ev.To, []string{"alice", "bob", "carol"}) || ev.Except != (invite.Origin{Node: "n1", Session: alice.Session}) {
		t.Fatalf("cancelled %+v", ev)
	}
}

// TestPushes: a ring is pushed for the invitees of an invitation neither
// sent onlineUserOnly nor with disablePush, sparing the devices in the
// foreground; the end of each invitee's part is pushed with its reason,
// sparing the device that answered.
func TestPushes(t *testing.T) {
	f := newEngine(t)
	ctx := context.Background()
	f.rec.foreground["bob"] = []string{"bob-phone"}
	if _, err := f.store.AddMembers(ctx, "g", []string{"alice", "bob", "carol", "dave"}); err != nil {
		t.Fatal(err)
	}
	mustInvite := func(req invite.InviteRequest) string {
		t.Helper()
		id, err := f.e.Invite(ctx, alice, req)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	group := mustInvite(invite.InviteRequest{GroupID: "g", Invitees: []string{"bob", "carol", "dave"}, Timeout: 30})
	online := mustInvite(invite.InviteRequest{Invitees: []string{"carol"}, OnlineUserOnly: true})
	quiet := mustInvite(invite.InviteRequest{Invitees: []string{"carol"}, Push: invite.PushInfo{DisablePush: true}})
	carol := invite.Caller{User: "carol", Session: 3, Device: "carol-tablet"}
	if err := f.e.Accept(ctx, carol, group, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Cancel(ctx, alice, group, ""); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{online, quiet} {
		if err := f.e.Accept(ctx, carol, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"ring bob [bob-phone]", "ring carol []", "ring dave []",
		`end [carol] accepted "carol-tablet"`,
		`end [bob dave] cancelled ""`,
	}
	if !slices.Equal(f.rec.pushes, want) {
		t.Fatalf("pushes\n%q\nwant\n%q", f.rec.pushes, want)
	}
}

func TestInviteChecksInOrder(t *testing.T) {
	f := newEngine(t)
	ctx := context.Background()
	if _, err := f.store.AddMembers(ctx, "g", []string{"alice", "bob"}); err != nil {
		t.Fatal(err)
	}
	big := string(make([]byte, invite.MaxDataBytes+1))
	many := make([]string, 201)
	for i := range many {
		many[i] = string(rune('a'+i%26)) + string(rune('A'+i/26))
	}
	tests := []struct {
		req  invite.InviteRequest
		want error
	}{
		{invite.InviteRequest{Invitees: nil}, invite.ErrInvalid},
		{invite.InviteRequest{Invitees: []string{"alice"}}, invite.ErrInvalid},
		{invite.InviteRequest{Invitees: []string{"bob"}, Timeout: -1}, invite.ErrInvalid},
		{invite.InviteRequest{Invitees: []string{"bob"}, Timeout: 86401}, invite.ErrInvalid},
		{invite.InviteRequest{Invitees: []string{string([]byte{0xff})}}, invite.ErrInvalid},
		{invite.InviteRequest{Invitees: []string{"bob"}, Data: big}, invite.ErrDataTooLarge},
		{invite.InviteRequest{GroupID: "none", Invitees: many, Data: big}, invite.ErrDataTooLarge},
		{invite.InviteRequest{GroupID: "none", Invitees: many}, invite.ErrTooManyInvitees},
		{invite.InviteRequest{GroupID: "none", Invitees: []string{"bob"}}, group.ErrNotFound},
		{invite.InviteRequest{GroupID: "g", Invitees: []string{"carol"}}, invite.ErrNotMember},
		{invite.InviteRequest{Invitees: []string{"bob"}, Timeout: 86400}, nil},
	}
	for _, tt := range tests {
		_, err := f.e.Invite(ctx, alice, tt.req)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("Invite(%d invitees, group %q, timeout %d): %v, want %v", len(tt.req.Invitees), tt.req.GroupID, tt.req.Timeout, err, tt.want)
		}
	}
}

// TestTimeoutOfADeadInstanceIsAnnounced: an instance claimed a deadline and
// timed the invitation out, then died before announcing it. After the
// lease another instance announces it, with the key that keeps users from
// hearing it twice.
func TestTimeoutOfADeadInstanceIsAnnounced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEngine(t)
		ctx := context.Background()
		id, _ := f.e.Invite(ctx, alice, invite.InviteRequest{Invitees: []string{"bob"}, Timeout: 5})
		time.Sleep(5 * time.Second)
		// The instance that died: it claims and fires, and that is all.
		now := time.Now().UnixMilli()
		lease := invite.DefaultConfig().ClaimLease
		if ids, _, _ := f.store.ClaimDue(ctx, now, lease, 10); !slices.Equal(ids, []string{id}) {
			t.Fatalf("claim %v", ids)
		}
		if _, err := f.store.Apply(ctx, id, invite.Change{Action: invite.ActTimeout, Now: now, Retention: 60_000,
			Token: "tok", AnnounceBy: now + lease.Milliseconds()}); err != nil {
			t.Fatal(err)
		}
		ev := announcedOnceAfterLease(t, f)
		if ev.Kind != invite.EvTimeout || ev.InviteID != id || !slices.Equal(ev.InviteeList, []string{"bob"}) || ev.Once != "ann:tok" {
			t.Fatalf("after the lease: %+v", ev)
		}
	})
}

// announcedOnceAfterLease runs the timeout loop of f's engine, as the
// instance that survived one which died mid-way, and requires that it
// announces nothing within the claim lease, one event just after it, and
// nothing more in the hour that follows. It returns that event.
func announcedOnceAfterLease(t *testing.T, f fixture) invite.Event {
	t.Helper()
	runLoop(t, f.e)
	time.Sleep(invite.DefaultConfig().ClaimLease - time.Millisecond)
	synctest.Wait()
	if k := f.rec.kinds(); len(k) != 1 {
		t.Fatalf("announced within the lease: %v", k)
	}
	time.Sleep(time.Second)
	synctest.Wait()
	ev := f.rec.last()
	time.Sleep(time.Hour)
	synctest.Wait()
	if n := len(f.rec.kinds()); n != 2 {
		t.Fatalf("announced %d times in all, want once", n-1)
	}
	return ev
}

// TestChangeOfADeadInstanceIsAnnounced: an instance applied an accept and
// died before publishing its event. After the lease another instance
// announces it, once.
func TestChangeOfADeadInstanceIsAnnounced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEngine(t)
		ctx := context.Background()
		id, _ := f.e.Invite(ctx, alice, invite.InviteRequest{Invitees: []string{"bob"}, Timeout: 60})
		now := time.Now().UnixMilli()
		lease := invite.DefaultConfig().ClaimLease
		// The instance that died: it recorded and applied the accept, and
		// that is all.
		if _, err := f.store.Apply(ctx, id, invite.Change{Action: invite.ActAccept, Actor: "bob", Data: "yes", Now: now,
			Retention: 60_000, Token: "tok", AnnounceBy: now + lease.Milliseconds()}); err != nil {
			t.Fatal(err)
		}
		ev := announcedOnceAfterLease(t, f)
		if ev.Kind != invite.EvAccepted || ev.Invitee != "bob" || ev.Data != "yes" || ev.Once != "ann:tok" ||
			!slices.Equal(ev.To, []string{"alice", "bob"}) || ev.Except != (invite.Origin{}) {
			t.Fatalf("after the lease: %+v", ev)
		}
	})
}

// TestAnnouncedChangesAreForgotten: a change announced by the instance that
// made it is not announced again after the lease.
func TestAnnouncedChangesAreForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEngine(t)
		runLoop(t, f.e)
		ctx := context.Background()
		id, _ := f.e.Invite(ctx, alice, invite.InviteRequest{Invitees: []string{"bob"}, Timeout: 0})
		if err := f.e.Modify(ctx, alice, id, "v2"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if k := f.rec.kinds(); !slices.Equal(k, []invite.EventKind{invite.EvNewInvitation, invite.EvModified}) {
			t.Fatalf("events %v", k)
		}
		if inv, err := f.store.Get(ctx, id, time.Now().UnixMilli()); err != nil || inv.Unannounced != nil {
			t.Fatalf("after an hour: %+v, %v", inv, err)
		}
	})
}

// TestFailedAnnouncementsAreRetriedInOrder: while the bus fails, an
// invitation is created and accepted. Both changes are committed; once the
// bus answers again both are announced, the ring before the accept, each
// under the same Once key as in its failed tries, and neither again after.
func TestFailedAnnouncementsAreRetriedInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEngine(t)
		runLoop(t, f.e)
		ctx := context.Background()
		f.rec.setFailing(true)
		id, err := f.e.Invite(ctx, alice, invite.InviteRequest{Invitees: []string{"bob"}, Data: "ring", Timeout: 60})
		if err != nil {
			t.Fatalf("invite while the bus fails: %v (the invitation is stored: it must succeed)", err)
		}
		if err := f.e.Accept(ctx, bob, id, "yes"); err != nil {
			t.Fatalf("accept while the bus fails: %v", err)
		}
		time.Sleep(3 * time.Second) // several retries, all failing
		synctest.Wait()
		f.rec.mu.Lock()
		tries := slices.Clone(f.rec.failed)
		f.rec.mu.Unlock()
		if len(tries) < 3 || len(f.rec.kinds()) != 0 {
			t.Fatalf("while failing: %d tries, %d published", len(tries), len(f.rec.kinds()))
		}
		for _, ev := range tries {
			// Never the accept before the ring it follows.
			if ev.Kind != invite.EvNewInvitation || ev.Once != tries[0].Once {
				t.Fatalf("tried %s (%s) while the ring (%s) was not announced", ev.Kind, ev.Once, tries[0].Once)
			}
		}
		f.rec.setFailing(false)
		time.Sleep(3 * time.Second) // the backoff is at most 2 s
		synctest.Wait()
		if k := f.rec.kinds(); !slices.Equal(k, []invite.EventKind{invite.EvNewInvitation, invite.EvAccepted}) {
			t.Fatalf("once the bus is back: %v, want the ring, then the accept", k)
		}
		ring, accepted := f.rec.events[0], f.rec.events[1]
		if ring.Once != tries[0].Once || ring.Data != "ring" || accepted.Invitee != "bob" || accepted.Data != "yes" ||
			accepted.Except != (invite.Origin{Node: "n1", Session: bob.Session}) || accepted.Once == ring.Once {
			t.Fatalf("announced %+v then %+v", ring, accepted)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := len(f.rec.kinds()); n != 2 {
			t.Fatalf("announced again later: %v", f.rec.kinds())
		}
	})
}

// TestTimeoutWhileTheBusFailsReachesEveryone: the timeout fires while the bus
// is down; it is announced once the bus is back, to the inviter and the
// invitee, and the deadline is never fired twice.
func TestTimeoutWhileTheBusFailsReachesEveryone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEngine(t)
		runLoop(t, f.e)
		ctx := context.Background()
		id, _ := f.e.Invite(ctx, alice, invite.InviteRequest{Invitees: []string{"bob"}, Timeout: 5})
		f.rec.setFailing(true)
		time.Sleep(7 * time.Second)
		synctest.Wait()
		f.rec.setFailing(false)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if k := f.rec.kinds(); !slices.Equal(k, []invite.EventKind{invite.EvNewInvitation, invite.EvTimeout}) {
			t.Fatalf("events %v", k)
		}
		if ev := f.rec.last(); ev.InviteID != id || !slices.Equal(ev.To, []string{"alice", "bob"}) {
			t.Fatalf("timeout %+v", ev)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := len(f.rec.kinds()); n != 2 {
			t.Fatalf("announced again later: %v", f.rec.kinds())
		}
	})
}

// TestTimeoutsFireOnTimeWithALongPoll: the loop sleeps until the next
// deadline it knows of, not a whole poll interval: one created here wakes
// it, and one it learns from the store (created by another instance) is
// fired at its time too.
func TestTimeoutsFireOnTimeWithALongPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := invite.DefaultConfig()
		cfg.PollInterval = time.Minute
		f := newEngineWith(t, cfg)
		runLoop(t, f.e)
		ctx := context.Background()
		time.Sleep(time.Second) // the loop is asleep for a minute
		start := time.Now()
		// Another instance's invitation, due in 3 s: only the store knows it.
		other := &invite.Invitation{ID: "other", Inviter: "carol", Invitees: []string{"dave"},
			States: map[string]invite.State{"dave": invite.StatePending}, Timeout: 3,
			CreatedAt: start.UnixMilli(), Deadline: start.Add(3 * time.Second).UnixMilli(), Expires: start.Add(time.Hour).UnixMilli()}
		if err := f.store.Create(ctx, other, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.e.Invite(ctx, alice, invite.InviteRequest{Invitees: []string{"bob"}, Timeout: 1}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		synctest.Wait()
		f.rec.mu.Lock()
		defer f.rec.mu.Unlock()
		var fired []time.Duration
		for i, ev := range f.rec.events {
			if ev.Kind == invite.EvTimeout {
				fired = append(fired, f.rec.at[i].Sub(start))
			}
		}
		if !slices.Equal(fired, []time.Duration{time.Second, 3 * time.Second}) {
			t.Fatalf("timeouts fired after %v, want [1s 3s]", fired)
		}
	})
}

// TestTimeoutsFireOnTimeUnderAStreamOfInvites: invitations arriving every
// 100 µs, each with a later deadline, must not keep the loop from waking
// for an earlier one (resetting its timer on every invite did, under load).
func TestTimeoutsFireOnTimeUnderAStreamOfInvites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEngine(t)
		runLoop(t, f.e)
		ctx := context.Background()
		start := time.Now()
		if _, err := f.e.Invite(ctx, alice, invite.InviteRequest{Invitees: []string{"bob"}, Timeout: 1}); err != nil {
			t.Fatal(err)
		}
		for range 20_000 { // two seconds of them
			time.Sleep(100 * time.Microsecond)
			if _, err := f.e.Invite(ctx, alice, invite.InviteRequest{Invitees: []string{"carol"}, Timeout: 30}); err != nil {
				t.Fatal(err)
			}
		}
		f.rec.mu.Lock()
		defer f.rec.mu.Unlock()
		for i, ev := range f.rec.events {
			if ev.Kind == invite.EvTimeout {
				if late := f.rec.at[i].Sub(start) - time.Second; late > time.Millisecond {
					t.Fatalf("the timeout fired %v late", late)
				}
				return
			}
		}
		t.Fatal("the timeout never fired while invitations kept coming")
	})
}
