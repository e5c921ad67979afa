package app_test

import (
	"testing"

	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/apptest"
	"github.com/signald/signald/internal/protocol"
)

// loginResume logs user in on a new connection, resuming after lastEventID,
// and returns the connection and the reply's data.
func (dm *daemon) loginResume(user, lastEventID string) (*clientT, map[string]any) {
	dm.t.Helper()
	c := dm.dial()
	f := mustCall(dm.t, c, protocol.OpLogin, map[string]any{"userID": user, "userSig": dm.token(user), "lastEventID": lastEventID})
	return c, decode[map[string]any](dm.t, f.Data)
}

func TestResume(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		alice, bob := dm.login("alice"), dm.login("bob")
		id := invite(t, alice, map[string]any{"invitee": "bob", "data": "v1"})
		rung := expectEvent(t, bob, "onReceiveNewInvitation", id)
		if rung.EventID == "" {
			t.Fatal("a kept event without eventID")
		}
		if err := bob.Close(); err != nil { // the phone loses its connection
			t.Fatal(err)
		}
		mustCall(t, alice, protocol.OpModifyInvitation, map[string]any{"inviteID": id, "data": "v2"})
		mustCall(t, alice, protocol.OpCancel, map[string]any{"inviteID": id, "data": "bye"})

		bob, data := dm.loginResume("bob", rung.EventID)
		if data["recovered"] != true {
			t.Fatalf("resume: %v", data)
		}
		modified := expectEvent(t, bob, "onInvitationModified", id)
		cancelled := expectEvent(t, bob, "onInvitationCancelled", id)
		if modified.EventData() != "v2" || cancelled.EventData() != "bye" {
			t.Fatalf("replayed %+v %+v", modified, cancelled)
		}
		if !(rung.EventID < modified.EventID && modified.EventID < cancelled.EventID) {
			t.Fatalf("eventIDs not increasing: %s %s %s", rung.EventID, modified.EventID, cancelled.EventID)
		}
		if data["lastEventID"] != cancelled.EventID {
			t.Fatalf("login lastEventID %v, want the newest kept %s", data["lastEventID"], cancelled.EventID)
		}
		expectQuiet(t, bob)
		// Live events follow, in order.
		id2 := invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
		if f := expectEvent(t, bob, "onReceiveNewInvitation", id2); f.EventID <= cancelled.EventID {
			t.Fatalf("live eventID %s not after %s", f.EventID, cancelled.EventID)
		}
		// Nothing missed: recovered, and nothing replayed.
		bob2, data := dm.loginResume("bob", data["lastEventID"].(string))
		if data["recovered"] != true {
			t.Fatalf("resume at the newest: %v", data)
		}
		expectEvent(t, bob2, "onReceiveNewInvitation", id2) // the one that came after
		expectQuiet(t, bob2)
	})
}

// TestResumeKeepsOwnActions: an event about a user's own action is kept, and
// a device that was away when the user answered elsewhere learns of it.
func TestResumeKeepsOwnActions(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		alice, phone := dm.login("alice"), dm.login("bob")
		id := invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
		rung := expectEvent(t, phone, "onReceiveNewInvitation", id)
		mustCall(t, phone, protocol.OpAccept, map[string]any{"inviteID": id})
		laptop, data := dm.loginResume("bob", rung.EventID)
		if data["recovered"] != true {
			t.Fatalf("resume: %v", data)
		}
		if f := expectEvent(t, laptop, "onInviteeAccepted", id); f.Invitee != "bob" || f.EventID <= rung.EventID {
			t.Fatalf("replayed %+v", f)
		}
		expectQuiet(t, laptop)
		expectQuiet(t, phone) // the accepting connection got a reply, not the event
	})
}

// TestFreshLoginCarriesFirstRingEventID: a pending invitation delivered on a
// fresh login carries the eventID under which it was first kept.
func TestFreshLoginCarriesFirstRingEventID(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		alice := dm.login("alice")
		id := invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
		online := invite(t, alice, map[string]any{"invitee": "carol", "data": "", "onlineUserOnly": true})
		bob := dm.dial()
		f := mustCall(t, bob, protocol.OpLogin, map[string]any{"userID": "bob", "userSig": dm.token("bob")})
		last := decode[map[string]any](t, f.Data)["lastEventID"]
		ev := expectEvent(t, bob, "onReceiveNewInvitation", id)
		if ev.EventID == "" || ev.EventID != last {
			t.Fatalf("pending invitation eventID %q, login lastEventID %v: want the same, non-empty", ev.EventID, last)
		}
		// Events of onlineUserOnly invitations are not kept: no eventID.
		carol := dm.login("carol")
		mustCall(t, alice, protocol.OpModifyInvitation, map[string]any{"inviteID": online, "data": "x"})
		if ev := expectEvent(t, carol, "onInvitationModified", online); ev.EventID != "" {
			t.Fatalf("an onlineUserOnly event carries eventID %q", ev.EventID)
		}
	})
}

// TestResumeTooOld: when events after lastEventID were dropped, login says
// recovered false and rings the user for what is pending instead.
func TestResumeTooOld(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		o.EventsKept = 3
		dm := startDaemon(t, o)
		alice, bob := dm.login("alice"), dm.login("bob")
		first := invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
		old := expectEvent(t, bob, "onReceiveNewInvitation", first)
		_ = bob.Close()
		for range 4 { // four more kept events for bob: the one after old is dropped
			mustCall(t, alice, protocol.OpModifyInvitation, map[string]any{"inviteID": first, "data": "x"})
		}
		bob, data := dm.loginResume("bob", old.EventID)
		if data["recovered"] != false {
			t.Fatalf("resume past what is kept: %v", data)
		}
		if f := expectEvent(t, bob, "onReceiveNewInvitation", first); f.EventData() != "x" || f.EventID != old.EventID {
			t.Fatalf("pending after a failed resume: %+v", f)
		}
		expectQuiet(t, bob)
	})
}
