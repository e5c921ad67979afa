package app_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/apptest"
	"github.com/signald/signald/internal/protocol"
	"github.com/signald/signald/internal/redistest"
)

// startInstances starts n daemons sharing one Redis and key prefix, as
// instances behind a load balancer.
func startInstances(t *testing.T, o app.Options, n int) []*daemon {
	t.Helper()
	var ds []*daemon
	for i := range n {
		oi := o
		oi.NodeID = fmt.Sprintf("node%d", i+1)
		ds = append(ds, startDaemon(t, oi))
	}
	return ds
}

func redisOptions(t *testing.T) app.Options {
	t.Helper()
	apptest.CheckLeaks(t)
	return apptest.Options(t, "redis")
}

// TestCrossInstanceDelivery: every event reaches every connection of its
// users whichever instance each is on, once, except the acting connection.
func TestCrossInstanceDelivery(t *testing.T) {
	ds := startInstances(t, redisOptions(t), 3)
	a, b, c := ds[0], ds[1], ds[2]
	mustAdmin(t, a, "PUT", "/v1/groups/team/members", `{"members":["alice","bob","carol"]}`)
	alice, alice2 := a.login("alice"), c.login("alice")
	phone, laptop := b.login("bob"), c.login("bob")
	carol := a.login("carol")
	all := []*clientT{alice, alice2, phone, laptop, carol}

	id := decode[string](t, mustCall(t, alice, protocol.OpInviteInGroup, map[string]any{
		"groupID": "team", "inviteeList": []string{"bob", "carol"}, "data": "d", "timeout": 30}).Data)
	for _, cl := range []*clientT{phone, laptop, carol} {
		expectEvent(t, cl, "onReceiveNewInvitation", id)
	}
	mustCall(t, alice2, protocol.OpModifyInvitation, map[string]any{"inviteID": id, "data": "d2"})
	for _, cl := range []*clientT{alice, phone, laptop, carol} {
		if f := expectEvent(t, cl, "onInvitationModified", id); f.EventData() != "d2" {
			t.Fatalf("modified %+v", f)
		}
	}
	mustCall(t, laptop, protocol.OpAccept, map[string]any{"inviteID": id})
	for _, cl := range []*clientT{alice, alice2, phone, carol} {
		expectEvent(t, cl, "onInviteeAccepted", id)
	}
	mustCall(t, carol, protocol.OpReject, map[string]any{"inviteID": id})
	for _, cl := range []*clientT{alice, alice2, phone, laptop} {
		expectEvent(t, cl, "onInviteeRejected", id)
	}
	id2 := invite(t, alice2, map[string]any{"invitee": "bob", "data": ""})
	expectEvent(t, phone, "onReceiveNewInvitation", id2)
	expectEvent(t, laptop, "onReceiveNewInvitation", id2)
	mustCall(t, alice2, protocol.OpCancel, map[string]any{"inviteID": id2})
	for _, cl := range []*clientT{alice, phone, laptop} {
		expectEvent(t, cl, "onInvitationCancelled", id2)
	}
	id3 := invite(t, carol, map[string]any{"invitee": "bob", "data": "", "timeout": 1})
	expectEvent(t, phone, "onReceiveNewInvitation", id3)
	expectEvent(t, laptop, "onReceiveNewInvitation", id3)
	for _, cl := range []*clientT{carol, phone, laptop} {
		expectEvent(t, cl, "onInvitationTimeout", id3)
	}
	for _, cl := range all {
		expectQuiet(t, cl)
	}
}

// TestPresenceAcrossInstances: onlineUserOnly reaches a user connected to
// another instance, and a device in the foreground on another instance is
// not pushed, until it goes to the background.
func TestPresenceAcrossInstances(t *testing.T) {
	o, f := withPush(t, redisOptions(t))
	ds := startInstances(t, o, 2)
	alice, bob := ds[0].login("alice"), ds[1].loginDevice("bob", "bob-phone")
	register(t, bob, "bob-phone", "fcm", "tok-bob")
	id := invite(t, alice, map[string]any{"invitee": "bob", "data": "", "onlineUserOnly": true})
	if f := expectEvent(t, bob, "onReceiveNewInvitation", id); f.EventID != "" {
		t.Fatalf("onlineUserOnly event with eventID %q", f.EventID)
	}
	invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
	if n := ds[0].jobs("invite"); n != 0 {
		t.Fatalf("%d ring pushes for a device in the foreground on another instance", n)
	}
	mustCall(t, bob, protocol.OpDoBackground, nil)
	invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
	if n := ds[0].jobs("invite"); n != 1 {
		t.Fatalf("%d ring pushes for a device gone to the background, want 1", n)
	}
	f.waitPushes(t, 1)
}

// TestResumeOnAnotherInstance: a phone that loses its connection to one
// instance and comes back through another gets what it missed.
func TestResumeOnAnotherInstance(t *testing.T) {
	ds := startInstances(t, redisOptions(t), 3)
	alice := ds[0].login("alice")
	bob := ds[1].login("bob")
	id := invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
	rung := expectEvent(t, bob, "onReceiveNewInvitation", id)
	_ = bob.Close()
	mustCall(t, alice, protocol.OpCancel, map[string]any{"inviteID": id, "data": "gone"})
	bob, data := ds[2].loginResume("bob", rung.EventID)
	if data["recovered"] != true {
		t.Fatalf("resume on another instance: %v", data)
	}
	if f := expectEvent(t, bob, "onInvitationCancelled", id); f.EventData() != "gone" {
		t.Fatalf("replayed %+v", f)
	}
	expectQuiet(t, bob)
}

// TestTimeoutsOnceAcrossInstances: many invitations time out while three
// instances poll for deadlines; each recipient connection hears of each
// timeout exactly once.
func TestTimeoutsOnceAcrossInstances(t *testing.T) {
	ds := startInstances(t, redisOptions(t), 3)
	callers := []*clientT{ds[0].login("alice"), ds[1].login("carol"), ds[2].login("dave")}
	bob := ds[1].login("bob")
	bob2 := ds[2].login("bob")
	const n = 30
	want := map[string]bool{}
	for i := range n {
		id := invite(t, callers[i%3], map[string]any{"invitee": "bob", "data": "", "timeout": 1})
		want[id] = true
	}
	for _, c := range []*clientT{bob, bob2} {
		rung, timedOut := map[string]int{}, map[string]int{}
		for range 2 * n {
			f := next(t, c)
			switch f.Event {
			case "onReceiveNewInvitation":
				rung[f.InviteID]++
			case "onInvitationTimeout":
				timedOut[f.InviteID]++
				if !slices.Equal(f.InviteeList, []string{"bob"}) {
					t.Fatalf("timeout %+v", f)
				}
			default:
				t.Fatalf("unexpected %+v", f)
			}
		}
		for id := range want {
			if rung[id] != 1 || timedOut[id] != 1 {
				t.Fatalf("invitation %s: rung %d times, timed out %d times; want once each", id, rung[id], timedOut[id])
			}
		}
		expectQuiet(t, c)
	}
	for i, c := range callers {
		got := 0
		for range n / 3 {
			if f := next(t, c); f.Event == "onInvitationTimeout" {
				got++
			}
		}
		if got != n/3 {
			t.Fatalf("caller %d heard %d timeouts, want %d", i, got, n/3)
		}
		expectQuiet(t, c)
	}
	// A timeout's event can reach its users before the engine has counted
	// it (published in its step): wait for the count.
	eventually(t, "every timeout counted once", func() error {
		fired := 0.0
		for _, d := range ds {
			fired += d.metric("signald_timeouts_fired_total", "")
		}
		if fired != n {
			return fmt.Errorf("timeouts fired %v times over the instances, want %d", fired, n)
		}
		return nil
	})
}

// TestPubSubGapIsCaughtUp: when an instance loses Redis for a while, events
// published meanwhile are kept but cannot reach its connections live. Once
// Redis is back the instance brings them up to date from the users' kept
// events: every connection gets what it missed, in order, once, and none
// is closed. One device gets nothing more after the gap (the instance must
// find it behind by itself); the other gets a later event too (which
// reveals the gap on arrival).
func TestPubSubGapIsCaughtUp(t *testing.T) {
	o := redisOptions(t)
	px := redistest.StartProxy(t, redistest.Addr(t))
	a := startDaemon(t, withNode(o, "node1"))
	viaProxy := withNode(o, "node2")
	viaProxy.RedisURL = "redis://" + px.Addr
	b := startDaemon(t, viaProxy)

	alice := a.login("alice")
	phone, laptop := b.login("bob"), b.login("carol")
	quiet := invite(t, alice, map[string]any{"invitee": "bob", "data": "", "timeout": 0})
	expectEvent(t, phone, "onReceiveNewInvitation", quiet)
	busy := invite(t, alice, map[string]any{"invitee": "carol", "data": "", "timeout": 0})
	expectEvent(t, laptop, "onReceiveNewInvitation", busy)

	px.Cut() // node2 loses Redis; node1 keeps it
	for i := range 3 {
		mustCall(t, alice, protocol.OpModifyInvitation, map[string]any{"inviteID": quiet, "data": fmt.Sprint("away ", i)})
		mustCall(t, alice, protocol.OpModifyInvitation, map[string]any{"inviteID": busy, "data": fmt.Sprint("away ", i)})
	}
	waitReady(t, b, http.StatusServiceUnavailable)
	px.Restore()
	waitReady(t, b, http.StatusOK)
	mustCall(t, alice, protocol.OpCancel, map[string]any{"inviteID": busy, "data": "after"})

	for i := range 3 {
		if f := expectEvent(t, phone, "onInvitationModified", quiet); f.EventData() != fmt.Sprint("away ", i) {
			t.Fatalf("bob's %d-th missed event: %+v", i, f)
		}
		if f := expectEvent(t, laptop, "onInvitationModified", busy); f.EventData() != fmt.Sprint("away ", i) {
			t.Fatalf("carol's %d-th missed event: %+v", i, f)
		}
	}
	expectEvent(t, laptop, "onInvitationCancelled", busy)
	expectQuiet(t, phone)
	expectQuiet(t, laptop)
	// Counted once the catch-up has queued the frames: maybe just after
	// they arrived.
	eventually(t, "both connections caught up", func() error {
		if m := b.metric("signald_catchups_total", `result="caught_up"`); m < 2 {
			return fmt.Errorf("catch-ups on node2: %v, want both connections caught up", m)
		}
		return nil
	})
	// None closed, for a resume (missed events no longer kept) or any
	// other reason; the series are there from the start, at 0.
	if _, body := b.get("/metrics"); !strings.Contains(body, `signald_connections_closed_by_server_total{reason="resume"} 0`) {
		t.Fatal(`node2's /metrics lacks signald_connections_closed_by_server_total{reason="resume"} 0`)
	}
	if m := b.metric("signald_connections_closed_by_server_total", ""); m != 0 {
		t.Fatalf("node2 closed %v connections", m)
	}
	if m := b.metric("signald_catchups_total", `result="resume"`); m != 0 {
		t.Fatalf("node2 asked %v connections to resume", m)
	}
}

func withNode(o app.Options, node string) app.Options {
	o.NodeID = node
	return o
}
