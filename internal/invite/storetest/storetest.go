// Package storetest is the contract suite every store must pass: the memory
// store and the Redis store run the same tests, so that signald behaves the
// same on one node and on many.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signald/signald/internal/group"
	"github.com/signald/signald/internal/invite"
)

// Backend is what a store under test implements.
type Backend interface {
	invite.Store
	invite.Quotas
	invite.AdmittingStore
	group.Store
}

// NewFunc returns a fresh, empty store for one test.
type NewFunc func(t *testing.T) Backend

const retention = int64(60_000)

// Run runs the whole contract suite against the stores made by newStore.
func Run(t *testing.T, newStore NewFunc) {
	t.Run("CreateGet", func(t *testing.T) { testCreateGet(t, newStore(t)) })
	t.Run("MatchesApply", func(t *testing.T) { testMatchesApply(t, newStore(t)) })
	t.Run("Dropped", func(t *testing.T) { testDropped(t, newStore(t)) })
	t.Run("PendingFor", func(t *testing.T) { testPendingFor(t, newStore(t)) })
	t.Run("ClaimDue", func(t *testing.T) { testClaimDue(t, newStore(t)) })
	t.Run("Races", func(t *testing.T) { testRaces(t, newStore(t)) })
	t.Run("Groups", func(t *testing.T) { testGroups(t, newStore(t)) })
	t.Run("Announcements", func(t *testing.T) { testAnnouncements(t, newStore(t)) })
	t.Run("Quotas", func(t *testing.T) { testQuotas(t, newStore(t)) })
	t.Run("CreateAdmitted", func(t *testing.T) { testCreateAdmitted(t, newStore(t)) })
}

var idSeq atomic.Int64

// NewInvitation returns an active invitation created at now, as the engine
// would build it, with a fresh ID and its creation in its outbox under the
// token CreationToken(inv): for the suite and for store-specific tests.
func NewInvitation(now int64, inviter string, timeoutSec int, onlineOnly bool, invitees ...string) *invite.Invitation {
	n := idSeq.Add(1)
	inv := &invite.Invitation{
		ID:             fmt.Sprintf("inv-%d-%d", now, n),
		Inviter:        inviter,
		Invitees:       invitees,
		Data:           `{"cmd":"videoCall"}`,
		Timeout:        timeoutSec,
		OnlineUserOnly: onlineOnly,
		CreatedAt:      now,
		States:         make(map[string]invite.State),
		Seq:            1,
	}
	inv.Unannounced = map[string]invite.Announcement{CreationToken(inv): {
		Seq: 1, Action: invite.ActInvite, Actor: inviter, Origin: invite.Origin{Node: "n1", Session: uint64(n)},
	}}
	if n%2 == 0 {
		inv.Push = invite.PushInfo{Title: "Call from " + inviter, Desc: "d,:\n", Ext: `{"k":1}`, DisablePush: n%4 == 0}
	}
	if len(invitees) > 1 {
		inv.GroupID = "g1"
	}
	for _, u := range invitees {
		inv.States[u] = invite.StatePending
	}
	if timeoutSec > 0 {
		inv.Deadline = now + int64(timeoutSec)*1000
		inv.Expires = inv.Deadline + retention
	} else {
		inv.Expires = now + 24*3600*1000
	}
	return inv
}

// CreationToken is the token of the outbox entry of NewInvitation's inv.
func CreationToken(inv *invite.Invitation) string { return "c-" + inv.ID }

// announceDelay is when, after its creation, the outbox entry of an
// invitation created by mustCreate may be claimed.
const announceDelay = 1000

func mustCreate(t *testing.T, s Backend, inv *invite.Invitation) {
	t.Helper()
	if err := s.Create(context.Background(), inv, inv.CreatedAt+announceDelay); err != nil {
		t.Fatalf("Create(%s): %v", inv.ID, err)
	}
}

// nowMs is close to the real clock because Redis expires keys on its own
// clock: times far in the past would make it drop them at once.
func nowMs() int64 { return time.Now().UnixMilli() }

func testCreateGet(t *testing.T, s Backend) {
	ctx := context.Background()
	now := nowMs()
	inv := NewInvitation(now, "alice", 30, false, "bob", "carol")
	inv.Data = "with \"quotes\", unicode ✓ and \x00 bytes"
	mustCreate(t, s, inv)
	got, err := s.Get(ctx, inv.ID, now+1)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(got, inv) {
		t.Fatalf("Get returned\n%+v\nwant\n%+v", got, inv)
	}
	// The same Create again (its answer lost): it succeeds, and changes
	// nothing. Another invitation under the same ID does not.
	if err := s.Create(ctx, inv, now+announceDelay); err != nil {
		t.Fatalf("Create tried again: %v", err)
	}
	other := NewInvitation(now, "mallory", 30, false, "bob")
	other.ID = inv.ID
	if err := s.Create(ctx, other, now+announceDelay); !errors.Is(err, invite.ErrExists) {
		t.Fatalf("another Create under a taken ID: got %v, want ErrExists", err)
	}
	if _, err := s.Get(ctx, "no-such-id", now); !errors.Is(err, invite.ErrNotFound) {
		t.Fatalf("Get unknown: got %v, want ErrNotFound", err)
	}
	if _, err := s.Apply(ctx, "no-such-id", invite.Change{Action: invite.ActAccept, Actor: "bob", Now: now}); !errors.Is(err, invite.ErrNotFound) {
		t.Fatalf("Apply unknown: got %v, want ErrNotFound", err)
	}
}

// testMatchesApply drives a store and the pure transition function with the
// same random sequences of changes and requires identical results at every
// step: the store is Apply, made durable and atomic.
func testMatchesApply(t *testing.T, s Backend) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	users := []string{"alice", "bob", "carol", "dave", "mallory"}
	actions := []invite.Action{invite.ActAccept, invite.ActReject, invite.ActCancel, invite.ActModify, invite.ActTimeout}
	for round := range 60 {
		base := nowMs()
		timeout := []int{0, 5, 30}[round%3]
		invitees := []string{"bob"}
		if round%2 == 1 {
			invitees = []string{"bob", "carol", "dave"}
		}
		model := NewInvitation(base, "alice", timeout, round%4 == 0, invitees...)
		mustCreate(t, s, model)
		now := base
		for step := range 8 {
			now += int64(rng.IntN(4000))
			ch := invite.Change{
				Action:    actions[rng.IntN(len(actions))],
				Actor:     users[rng.IntN(len(users))],
				Data:      fmt.Sprintf("d%d.%d", round, step),
				Now:       now,
				Retention: retention,
			}
			if ch.Action == invite.ActTimeout {
				ch.Actor, ch.Data = "", ""
			}
			if rng.IntN(2) == 0 {
				ch.Token, ch.AnnounceBy = fmt.Sprintf("tok%d.%d", round, step), now+1000
				ch.Origin = invite.Origin{Node: "n" + strconv.Itoa(step), Session: uint64(rng.IntN(1000)), Device: "d,:\n" + strconv.Itoa(step)}
			}
			want, wantErr := invite.Apply(model, ch)
			got, gotErr := s.Apply(ctx, model.ID, ch)
			if ch.Token != "" && gotErr == nil && rng.IntN(3) == 0 {
				// Tried again with the same token, as a client that lost
				// the answer does: the same success, nothing applied twice.
				again, err := s.Apply(ctx, model.ID, ch)
				if err != nil || !reflect.DeepEqual(again.Invitation, got.Invitation) || again.Ended != got.Ended || !slices.Equal(again.Changed, got.Changed) {
					t.Fatalf("round %d step %d: %+v tried again: %+v %v, first %+v", round, step, ch, again, err, got)
				}
			}
			if !sameErr(gotErr, wantErr) {
				t.Fatalf("round %d step %d %+v on %+v: store error %v, Apply error %v", round, step, ch, model, gotErr, wantErr)
			}
			if wantErr != nil {
				continue
			}
			if !reflect.DeepEqual(got.Invitation, want.Invitation) || !slices.Equal(got.Changed, want.Changed) || got.Ended != want.Ended {
				t.Fatalf("round %d step %d %+v: store outcome\n%+v %v %v\nApply outcome\n%+v %v %v",
					round, step, ch, got.Invitation, got.Changed, got.Ended, want.Invitation, want.Changed, want.Ended)
			}
			model = want.Invitation
			stored, err := s.Get(ctx, model.ID, now)
			if invite.Dropped(model, now) {
				if !errors.Is(err, invite.ErrNotFound) {
					t.Fatalf("Get of a dropped invitation: %v", err)
				}
				continue
			}
			if err != nil || !reflect.DeepEqual(stored, model) {
				t.Fatalf("round %d step %d: Get after Apply = %+v, %v; want %+v", round, step, stored, err, model)
			}
		}
	}
}

func sameErr(got, want error) bool {
	if want == nil || got == nil {
		return want == nil && got == nil
	}
	return errors.Is(got, want)
}

func testDropped(t *testing.T, s Backend) {
	ctx := context.Background()
	now := nowMs()
	// Never ends, no deadline: dropped at its maximum lifetime, no event.
	forever := NewInvitation(now, "alice", 0, false, "bob")
	forever.Expires = now + 10_000
	mustCreate(t, s, forever)
	if _, err := s.Get(ctx, forever.ID, now+9_999); err != nil {
		t.Fatalf("Get before lifetime: %v", err)
	}
	if _, err := s.Get(ctx, forever.ID, now+10_000); !errors.Is(err, invite.ErrNotFound) {
		t.Fatalf("Get at lifetime: got %v, want ErrNotFound", err)
	}
	if _, err := s.Apply(ctx, forever.ID, invite.Change{Action: invite.ActAccept, Actor: "bob", Now: now + 10_000}); !errors.Is(err, invite.ErrNotFound) {
		t.Fatalf("accept at lifetime: got %v, want ErrNotFound", err)
	}
	if got, _ := s.PendingFor(ctx, "bob", now+10_000); len(got) != 0 {
		t.Fatalf("PendingFor lists an invitation past its lifetime: %+v", got)
	}

	// Ended: readable for the retention, then gone.
	inv := NewInvitation(now, "alice", 30, false, "bob")
	mustCreate(t, s, inv)
	out, err := s.Apply(ctx, inv.ID, invite.Change{Action: invite.ActReject, Actor: "bob", Now: now + 100, Retention: retention})
	if err != nil || !out.Ended {
		t.Fatalf("reject: %+v, %v", out, err)
	}
	if _, err := s.Get(ctx, inv.ID, now+100+retention-1); err != nil {
		t.Fatalf("Get within retention: %v", err)
	}
	if _, err := s.Get(ctx, inv.ID, now+100+retention); !errors.Is(err, invite.ErrNotFound) {
		t.Fatalf("Get after retention: got %v, want ErrNotFound", err)
	}
}

func testPendingFor(t *testing.T, s Backend) {
	ctx := context.Background()
	now := nowMs()
	first := NewInvitation(now, "alice", 30, false, "bob")
	second := NewInvitation(now+1, "carol", 0, false, "bob", "dave")
	online := NewInvitation(now+2, "alice", 30, true, "bob")
	answered := NewInvitation(now+3, "alice", 30, false, "bob")
	for _, inv := range []*invite.Invitation{second, first, online, answered} {
		mustCreate(t, s, inv)
	}
	if _, err := s.Apply(ctx, answered.ID, invite.Change{Action: invite.ActAccept, Actor: "bob", Now: now + 4, Retention: retention}); err != nil {
		t.Fatal(err)
	}
	ids := func(user string, at int64) []string {
		t.Helper()
		invs, err := s.PendingFor(ctx, user, at)
		if err != nil {
			t.Fatalf("PendingFor(%s): %v", user, err)
		}
		var out []string
		for _, inv := range invs {
			out = append(out, inv.ID)
		}
		return out
	}
	if got, want := ids("bob", now+5), []string{first.ID, second.ID}; !slices.Equal(got, want) {
		t.Fatalf("PendingFor(bob) = %v, want %v (oldest first, no onlineUserOnly, no answered)", got, want)
	}
	if got := ids("alice", now+5); len(got) != 0 {
		t.Fatalf("an inviter has nothing pending, got %v", got)
	}
	// Past the first one's deadline it is no longer to be rung.
	if got, want := ids("bob", first.Deadline), []string{second.ID}; !slices.Equal(got, want) {
		t.Fatalf("PendingFor(bob) at the deadline = %v, want %v", got, want)
	}
	// Modified data is what a late login sees.
	if _, err := s.Apply(ctx, second.ID, invite.Change{Action: invite.ActModify, Actor: "carol", Data: "new", Now: now + 6}); err != nil {
		t.Fatal(err)
	}
	invs, err := s.PendingFor(ctx, "dave", now+7)
	if err != nil || len(invs) != 1 || invs[0].Data != "new" {
		t.Fatalf("PendingFor(dave) after modify = %+v, %v", invs, err)
	}
	if _, err := s.Apply(ctx, second.ID, invite.Change{Action: invite.ActCancel, Actor: "carol", Now: now + 8, Retention: retention}); err != nil {
		t.Fatal(err)
	}
	if got := ids("dave", now+9); len(got) != 0 {
		t.Fatalf("PendingFor(dave) after cancel = %v", got)
	}
}

func testClaimDue(t *testing.T, s Backend) {
	ctx := context.Background()
	now := nowMs()
	lease := 5 * time.Second
	inv := NewInvitation(now, "alice", 2, false, "bob")
	never := NewInvitation(now, "alice", 0, false, "bob")
	mustCreate(t, s, inv)
	mustCreate(t, s, never)
	var next int64
	claim := func(at int64) []string {
		t.Helper()
		ids, n, err := s.ClaimDue(ctx, at, lease, 100)
		if err != nil {
			t.Fatalf("ClaimDue: %v", err)
		}
		next = n
		return ids
	}
	if got := claim(inv.Deadline - 1); len(got) != 0 {
		t.Fatalf("claimed before the deadline: %v", got)
	}
	// The earliest deadline tells the claimer how long it may sleep; a
	// store may name an earlier one it has forgotten since, never a later.
	if next == 0 || next > inv.Deadline {
		t.Fatalf("ClaimDue before the deadline names the next at %d, want %d", next, inv.Deadline)
	}
	if got := claim(inv.Deadline); !slices.Equal(got, []string{inv.ID}) {
		t.Fatalf("ClaimDue at the deadline = %v, want [%s]", got, inv.ID)
	}
	if got := claim(inv.Deadline + 1); len(got) != 0 {
		t.Fatalf("claimed again within the lease: %v", got)
	}
	// The claimer died: after the lease someone else gets it.
	after := inv.Deadline + lease.Milliseconds()
	if got := claim(after); !slices.Equal(got, []string{inv.ID}) {
		t.Fatalf("ClaimDue after the lease = %v, want [%s]", got, inv.ID)
	}
	out, err := s.Apply(ctx, inv.ID, invite.Change{Action: invite.ActTimeout, Now: after, Retention: retention})
	if err != nil || !out.Ended || !slices.Equal(out.Changed, []string{"bob"}) || out.Invitation.States["bob"] != invite.StateTimeout {
		t.Fatalf("timeout: %+v, %v", out, err)
	}
	// Fired but not released: the deadline comes back after the lease, so
	// that another instance finishes the job if this one died.
	after += lease.Milliseconds()
	if got := claim(after); !slices.Equal(got, []string{inv.ID}) {
		t.Fatalf("ClaimDue of a fired, unreleased timeout = %v, want [%s]", got, inv.ID)
	}
	if err := s.ReleaseDeadlines(ctx, []string{inv.ID}); err != nil {
		t.Fatalf("ReleaseDeadlines: %v", err)
	}
	if got := claim(after + 2*lease.Milliseconds()); len(got) != 0 {
		t.Fatalf("claimed after the deadline was released: %v", got)
	}
	if _, err := s.Apply(ctx, inv.ID, invite.Change{Action: invite.ActTimeout, Now: after + 1, Retention: retention}); !errors.Is(err, invite.ErrEnded) {
		t.Fatalf("second timeout: got %v, want ErrEnded", err)
	}

	// An invitation answered, rejected or cancelled before its deadline is
	// never claimed: its deadline went with the change that ended it, so
	// that past calls cost the timeout loop nothing.
	var ended []string
	for i, ch := range []invite.Change{
		{Action: invite.ActAccept, Actor: "bob"}, {Action: invite.ActReject, Actor: "bob"}, {Action: invite.ActCancel, Actor: "alice"},
	} {
		early := NewInvitation(now+int64(i), "alice", 1, false, "bob")
		mustCreate(t, s, early)
		ch.Now, ch.Retention = now+10, retention
		if _, err := s.Apply(ctx, early.ID, ch); err != nil {
			t.Fatal(err)
		}
		ended = append(ended, early.ID)
	}
	for _, id := range claim(now + 10_000) {
		if slices.Contains(ended, id) {
			t.Fatalf("an invitation that ended before its deadline was claimed: %s", id)
		}
	}
	if got := claim(now + 48*3600*1000); slices.Contains(got, never.ID) {
		t.Fatalf("an invitation with timeout 0 was claimed: %v", got)
	}
}

// testRaces runs accept, reject, cancel and timeout against one invitation
// at once, many times: every invitee must change state exactly once.
func testRaces(t *testing.T, s Backend) {
	ctx := context.Background()
	for range 100 {
		now := nowMs()
		inv := NewInvitation(now, "alice", 1, false, "bob", "carol")
		mustCreate(t, s, inv)
		at := inv.Deadline - 1 + int64(rand.IntN(2)) // before or at the deadline
		changes := []invite.Change{
			{Action: invite.ActAccept, Actor: "bob"}, {Action: invite.ActReject, Actor: "bob"},
			{Action: invite.ActAccept, Actor: "carol"}, {Action: invite.ActReject, Actor: "carol"},
			{Action: invite.ActCancel, Actor: "alice"}, {Action: invite.ActTimeout},
			{Action: invite.ActAccept, Actor: "bob"}, {Action: invite.ActCancel, Actor: "alice"},
		}
		var mu sync.Mutex
		changedBy := map[string]int{}
		ended := 0
		var wg sync.WaitGroup
		for _, ch := range changes {
			ch.Now, ch.Retention = at, retention
			wg.Go(func() {
				out, err := s.Apply(ctx, inv.ID, ch)
				if err != nil {
					if !errors.Is(err, invite.ErrEnded) && !errors.Is(err, invite.ErrNotDue) {
						t.Errorf("%+v: unexpected error %v", ch, err)
					}
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, u := range out.Changed {
					changedBy[u]++
				}
				if out.Ended {
					ended++
				}
			})
		}
		wg.Wait()
		if changedBy["bob"] != 1 || changedBy["carol"] != 1 || ended != 1 {
			t.Fatalf("invitation %s: changes per invitee %v, ended %d times; want each once", inv.ID, changedBy, ended)
		}
		got, err := s.Get(ctx, inv.ID, at)
		if err != nil || got.Active() {
			t.Fatalf("after the race: %+v, %v", got, err)
		}
	}
}

// testAnnouncements: a change applied with a token stays recorded until
// Announced, and is claimable by another instance once its AnnounceBy has
// passed, with a lease, as deadlines are.
func testAnnouncements(t *testing.T, s Backend) {
	ctx := context.Background()
	now := nowMs()
	lease := 5 * time.Second
	inv := NewInvitation(now, "alice", 30, false, "bob", "carol")
	mustCreate(t, s, inv)
	created := CreationToken(inv)
	by := now + 2000
	origin := invite.Origin{Node: "node-b", Session: 42, Device: "bob's phone"}
	if _, err := s.Apply(ctx, inv.ID, invite.Change{Action: invite.ActAccept, Actor: "bob", Data: "yes\n,:{}", Now: now + 1, Token: "t1", AnnounceBy: by, Origin: origin}); err != nil {
		t.Fatal(err)
	}
	// A refused change: its entry is claimable, its token recorded nowhere.
	if _, err := s.Apply(ctx, inv.ID, invite.Change{Action: invite.ActAccept, Actor: "mallory", Now: now + 1, Token: "t2", AnnounceBy: by}); !errors.Is(err, invite.ErrForbidden) {
		t.Fatalf("stranger's accept: %v", err)
	}
	out, err := s.Apply(ctx, inv.ID, invite.Change{Action: invite.ActTimeout, Now: inv.Deadline, Retention: retention, Token: "t3", AnnounceBy: by})
	if err != nil {
		t.Fatal(err)
	}
	// The outbox in the order of the changes: creation, accept, timeout.
	want := map[string]invite.Announcement{
		created: inv.Unannounced[created],
		"t1":    {Seq: 2, Action: invite.ActAccept, Actor: "bob", Data: "yes\n,:{}", Origin: origin},
		"t3":    {Seq: 3, Action: invite.ActTimeout},
	}
	if !reflect.DeepEqual(out.Invitation.Unannounced, want) || out.Invitation.Seq != 3 {
		t.Fatalf("outcome's Unannounced = %+v (seq %d); want %+v", out.Invitation.Unannounced, out.Invitation.Seq, want)
	}
	got, err := s.Get(ctx, inv.ID, inv.Deadline)
	if err != nil || !reflect.DeepEqual(got.Unannounced, want) {
		t.Fatalf("Unannounced = %+v, %v; want %+v", got.Unannounced, err, want)
	}
	claim := func(at int64) []invite.Unannounced {
		t.Helper()
		c, err := s.ClaimUnannounced(ctx, at, lease, 10)
		if err != nil {
			t.Fatalf("ClaimUnannounced: %v", err)
		}
		slices.SortFunc(c, func(a, b invite.Unannounced) int { return strings.Compare(a.Token, b.Token) })
		return c
	}
	if c := claim(inv.CreatedAt + announceDelay - 1); len(c) != 0 {
		t.Fatalf("claimed before AnnounceBy: %v", c)
	}
	if c := claim(inv.CreatedAt + announceDelay); !slices.Equal(c, []invite.Unannounced{{ID: inv.ID, Token: created}}) {
		t.Fatalf("ClaimUnannounced at the creation's AnnounceBy = %v, want its entry", c)
	}
	all := []invite.Unannounced{{ID: inv.ID, Token: created}, {ID: inv.ID, Token: "t1"}, {ID: inv.ID, Token: "t2"}, {ID: inv.ID, Token: "t3"}}
	slices.SortFunc(all, func(a, b invite.Unannounced) int { return strings.Compare(a.Token, b.Token) })
	changes := slices.DeleteFunc(slices.Clone(all), func(u invite.Unannounced) bool { return u.Token == created })
	if c := claim(by); !slices.Equal(c, changes) {
		t.Fatalf("ClaimUnannounced at AnnounceBy = %v, want t1, t2, t3", c)
	}
	if c := claim(by + 1); len(c) != 0 {
		t.Fatalf("claimed again within the lease: %v", c)
	}
	if c := claim(by + 2*lease.Milliseconds()); !slices.Equal(c, all) {
		t.Fatalf("ClaimUnannounced after the lease = %v, want %v", c, all)
	}
	if err := s.Announced(ctx, all); err != nil {
		t.Fatalf("Announced: %v", err)
	}
	if got, err := s.Get(ctx, inv.ID, inv.Deadline); err != nil || got.Unannounced != nil {
		t.Fatalf("after Announced: Unannounced = %+v, %v; want none", got.Unannounced, err)
	}
	if c := claim(by + 10*lease.Milliseconds()); len(c) != 0 {
		t.Fatalf("claimed after Announced: %v", c)
	}
}

func testGroups(t *testing.T, s Backend) {
	ctx := context.Background()
	if _, err := s.Members(ctx, "nope"); !errors.Is(err, group.ErrNotFound) {
		t.Fatalf("Members of a missing group: got %v, want ErrNotFound", err)
	}
	if _, err := s.FirstNonMember(ctx, "nope", []string{"a"}); !errors.Is(err, group.ErrNotFound) {
		t.Fatalf("FirstNonMember of a missing group: got %v, want ErrNotFound", err)
	}
	if err := s.RemoveMember(ctx, "nope", "a"); !errors.Is(err, group.ErrNotFound) {
		t.Fatalf("RemoveMember of a missing group: got %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "nope"); !errors.Is(err, group.ErrNotFound) {
		t.Fatalf("Delete of a missing group: got %v, want ErrNotFound", err)
	}
	empty, err := s.AddMembers(ctx, "empty", nil)
	if err != nil || len(empty) != 0 {
		t.Fatalf("AddMembers(empty) = %v, %v", empty, err)
	}
	if m, err := s.Members(ctx, "empty"); err != nil || len(m) != 0 {
		t.Fatalf("an empty group must exist: %v, %v", m, err)
	}
	if u, err := s.FirstNonMember(ctx, "empty", []string{"a"}); err != nil || u != "a" {
		t.Fatalf("FirstNonMember(empty group) = %q, %v", u, err)
	}
	got, err := s.AddMembers(ctx, "g", []string{"carol", "alice"})
	if err != nil || !slices.Equal(got, []string{"alice", "carol"}) {
		t.Fatalf("AddMembers = %v, %v", got, err)
	}
	got, err = s.AddMembers(ctx, "g", []string{"bob", "alice"})
	if err != nil || !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("AddMembers again = %v, %v", got, err)
	}
	if u, err := s.FirstNonMember(ctx, "g", []string{"alice", "zed", "bob", "yan"}); err != nil || u != "zed" {
		t.Fatalf("FirstNonMember = %q, %v; want zed", u, err)
	}
	if u, err := s.FirstNonMember(ctx, "g", []string{"carol", "bob"}); err != nil || u != "" {
		t.Fatalf("FirstNonMember of members = %q, %v", u, err)
	}
	if err := s.RemoveMember(ctx, "g", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveMember(ctx, "g", "not-a-member"); err != nil {
		t.Fatalf("removing a non-member: %v", err)
	}
	if m, _ := s.Members(ctx, "g"); !slices.Equal(m, []string{"alice", "carol"}) {
		t.Fatalf("Members after remove = %v", m)
	}
	// Removing the last member leaves an empty group, not a missing one.
	for _, u := range []string{"alice", "carol"} {
		if err := s.RemoveMember(ctx, "g", u); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := s.Members(ctx, "g"); err != nil || len(m) != 0 {
		t.Fatalf("group emptied by removals: %v, %v", m, err)
	}
	if err := s.Delete(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Members(ctx, "g"); !errors.Is(err, group.ErrNotFound) {
		t.Fatalf("Members after Delete: %v", err)
	}
}

// testQuotas: an inviter's budget is spent per invitee and comes back with
// time; an inviter at its active invitations, or an invitee at its pending
// ones, is refused until one of them ends.
//
// The rate is slow (one invitee per 10 s) because Redis expires a budget's
// key by its own clock when the budget would be whole again: at a fast
// rate a stall of the test would hand the budget back.
func testQuotas(t *testing.T, s Backend) {
	ctx := context.Background()
	now := nowMs()
	l := invite.Limits{Rate: 0.1, Burst: 20, MaxActive: 2, MaxPending: 2}
	admit := func(at int64, inviter string, invitees ...string) error {
		t.Helper()
		err := s.Admit(ctx, inviter, invitees, at, l)
		if err != nil && !errors.Is(err, invite.ErrRateLimited) && !errors.Is(err, invite.ErrTooManyActive) && !errors.Is(err, invite.ErrTooManyPending) {
			t.Fatalf("Admit: %v", err)
		}
		return err
	}
	many := make([]string, 20)
	for i := range many {
		many[i] = fmt.Sprintf("u%d", i)
	}
	if err := admit(now, "rater", many...); err != nil {
		t.Fatalf("a whole burst: %v", err)
	}
	if err := admit(now, "rater", "one"); !errors.Is(err, invite.ErrRateLimited) {
		t.Fatalf("past the burst: %v, want ErrRateLimited", err)
	}
	if err := admit(now+1, "other", "one"); err != nil {
		t.Fatalf("another inviter's budget: %v", err)
	}
	if err := admit(now+30_000, "rater", "a", "b", "c"); err != nil {
		t.Fatalf("30 s later (3 invitees' worth at 0.1/s): %v", err)
	}

	// Two active invitations: the third is refused until one ends.
	first := NewInvitation(now, "alice", 30, false, "bob")
	second := NewInvitation(now, "alice", 30, false, "carol")
	mustCreate(t, s, first)
	mustCreate(t, s, second)
	if err := admit(now+10, "alice", "dave"); !errors.Is(err, invite.ErrTooManyActive) {
		t.Fatalf("a third active invitation: %v, want ErrTooManyActive", err)
	}
	if _, err := s.Apply(ctx, first.ID, invite.Change{Action: invite.ActAccept, Actor: "bob", Now: now + 20, Retention: retention}); err != nil {
		t.Fatal(err)
	}
	if err := admit(now+30, "alice", "dave"); err != nil {
		t.Fatalf("after one ended: %v", err)
	}

	// Two pending for erin: a third inviter is refused until she answers.
	for _, inviter := range []string{"x", "y"} {
		mustCreate(t, s, NewInvitation(now, inviter, 30, false, "erin"))
	}
	inv := NewInvitation(now, "z", 30, false, "erin", "frank")
	if err := admit(now+40, "z", "frank", "erin"); !errors.Is(err, invite.ErrTooManyPending) || !strings.Contains(err.Error(), `"erin"`) {
		t.Fatalf("a third invitation for erin: %v, want ErrTooManyPending naming her", err)
	}
	pending, err := s.PendingFor(ctx, "erin", now+50)
	if err != nil || len(pending) != 2 {
		t.Fatalf("PendingFor(erin) = %d, %v", len(pending), err)
	}
	if _, err := s.Apply(ctx, pending[0].ID, invite.Change{Action: invite.ActReject, Actor: "erin", Now: now + 60, Retention: retention}); err != nil {
		t.Fatal(err)
	}
	if err := admit(now+70, "z", "frank", "erin"); err != nil {
		t.Fatalf("after erin answered one: %v", err)
	}
	mustCreate(t, s, inv)
}

// testCreateAdmitted: CreateAdmitted stores what Create stores, with the
// same entries (pending index, deadline, outbox), when Admit would admit;
// what Admit refuses is not stored; and one tried again after its answer
// was lost succeeds. The rate is slow for the reason testQuotas gives.
func testCreateAdmitted(t *testing.T, s Backend) {
	ctx := context.Background()
	now := nowMs()
	l := invite.Limits{Rate: 0.1, Burst: 4, MaxActive: 2, MaxPending: 2}
	create := func(inv *invite.Invitation) error {
		t.Helper()
		err := s.CreateAdmitted(ctx, inv, inv.CreatedAt+announceDelay, l)
		if err != nil && !errors.Is(err, invite.ErrRateLimited) && !errors.Is(err, invite.ErrTooManyActive) && !errors.Is(err, invite.ErrTooManyPending) {
			t.Fatalf("CreateAdmitted(%s): %v", inv.ID, err)
		}
		return err
	}
	notStored := func(inv *invite.Invitation, what string) {
		t.Helper()
		if _, err := s.Get(ctx, inv.ID, inv.CreatedAt); !errors.Is(err, invite.ErrNotFound) {
			t.Fatalf("%s: Get = %v, want ErrNotFound", what, err)
		}
		for _, u := range inv.Invitees {
			if p, err := s.PendingFor(ctx, u, inv.CreatedAt); err != nil || slices.ContainsFunc(p, func(p *invite.Invitation) bool { return p.ID == inv.ID }) {
				t.Fatalf("%s: PendingFor(%s) = %d, %v; lists the refused invitation", what, u, len(p), err)
			}
		}
	}

	first := NewInvitation(now, "alice", 30, false, "bob")
	if err := create(first); err != nil {
		t.Fatalf("first: %v", err)
	}
	if got, err := s.Get(ctx, first.ID, now+1); err != nil || !reflect.DeepEqual(got, first) {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, first)
	}
	if p, err := s.PendingFor(ctx, "bob", now+1); err != nil || len(p) != 1 || p[0].ID != first.ID {
		t.Fatalf("PendingFor(bob) = %d, %v; want the invitation", len(p), err)
	}
	// Tried again: stored already, not refused as a third invitation.
	if err := create(first); err != nil {
		t.Fatalf("first, tried again: %v", err)
	}
	second := NewInvitation(now, "alice", 0, true, "carol", "dave")
	if err := create(second); err != nil {
		t.Fatalf("second, the rest of the burst: %v", err)
	}
	if p, err := s.PendingFor(ctx, "carol", now+1); err != nil || len(p) != 0 {
		t.Fatalf("PendingFor(carol) = %d, %v; want none (online users only)", len(p), err)
	}
	third := NewInvitation(now, "alice", 30, false, "erin", "gina")
	if err := create(third); !errors.Is(err, invite.ErrRateLimited) {
		t.Fatalf("past the burst: %v, want ErrRateLimited", err)
	}
	notStored(third, "rate limited")

	// 20 s later the budget is back, but alice has two active.
	fourth := NewInvitation(now+20_000, "alice", 30, false, "erin")
	if err := create(fourth); !errors.Is(err, invite.ErrTooManyActive) {
		t.Fatalf("a third active invitation: %v, want ErrTooManyActive", err)
	}
	notStored(fourth, "too many active")
	// bob answers: one active left, although the index still lists both.
	if _, err := s.Apply(ctx, first.ID, invite.Change{Action: invite.ActAccept, Actor: "bob", Now: now + 21_000, Retention: retention}); err != nil {
		t.Fatal(err)
	}
	fifth := NewInvitation(now+30_000, "alice", 30, false, "erin")
	if err := create(fifth); err != nil {
		t.Fatalf("after one ended: %v", err)
	}
	if got, err := s.Get(ctx, fifth.ID, now+30_001); err != nil || !reflect.DeepEqual(got, fifth) {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, fifth)
	}

	// erin is pending in two: a third invitation to her is refused.
	if err := create(NewInvitation(now+30_000, "x", 30, false, "erin")); err != nil {
		t.Fatal(err)
	}
	toErin := NewInvitation(now+30_000, "y", 30, false, "frank", "erin")
	if err := create(toErin); !errors.Is(err, invite.ErrTooManyPending) || !strings.Contains(err.Error(), `"erin"`) {
		t.Fatalf("a third invitation for erin: %v, want ErrTooManyPending naming her", err)
	}
	notStored(toErin, "too many pending")

	// What was created is entered for its timeout and its announcement.
	due, _, err := s.ClaimDue(ctx, fifth.Deadline, time.Minute, 100)
	if err != nil || !slices.Contains(due, fifth.ID) || slices.Contains(due, fourth.ID) {
		t.Fatalf("ClaimDue at the fifth's deadline = %v, %v; want it, and not the refused", due, err)
	}
	entries, err := s.ClaimUnannounced(ctx, fifth.CreatedAt+announceDelay, time.Minute, 100)
	if err != nil || !slices.Contains(entries, invite.Unannounced{ID: fifth.ID, Token: CreationToken(fifth)}) ||
		slices.Contains(entries, invite.Unannounced{ID: fourth.ID, Token: CreationToken(fourth)}) {
		t.Fatalf("ClaimUnannounced = %v, %v; want the fifth's creation, and not the refused", entries, err)
	}
}
