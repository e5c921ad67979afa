package app_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/apptest"
	"github.com/signald/signald/internal/auth"
	"github.com/signald/signald/internal/protocol"
)

func TestLogin(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		c := dm.dial()
		wantCode(t, c, protocol.CodeNotLoggedIn, protocol.OpPing, nil)
		wantCode(t, c, protocol.CodeNotLoggedIn, "dance", nil)
		wantCode(t, c, protocol.CodeNotLoggedIn, protocol.OpInvite, map[string]any{"invitee": "bob", "data": ""})
		before := time.Now().UnixMilli()
		f := mustCall(t, c, protocol.OpLogin, map[string]any{"userID": "alice", "userSig": dm.token("alice")})
		data := decode[map[string]any](t, f.Data)
		if data["userID"] != "alice" || data["lastEventID"] != "" {
			t.Fatalf("login data %s", f.Data)
		}
		if st, _ := data["serverTime"].(float64); int64(st) < before-1000 {
			t.Fatalf("serverTime %v is not now", data["serverTime"])
		}
		if _, ok := data["recovered"]; ok {
			t.Fatalf("recovered present without lastEventID: %s", f.Data)
		}
		wantCode(t, c, protocol.CodeInvalidParams, protocol.OpLogin, map[string]any{"userID": "alice", "userSig": dm.token("alice")})
		mustCall(t, c, protocol.OpPing, nil) // the second login changed nothing

		secret := []byte(app.DevJWTSecret)
		expired, _ := auth.Mint(secret, "alice", time.Minute, time.Now().Add(-time.Hour))
		other, _ := auth.Mint([]byte("another secret"), "alice", time.Hour, time.Now())
		failures := []struct {
			name   string
			params map[string]any
			code   int
		}{
			{"no userSig", map[string]any{"userID": "alice"}, protocol.CodeSigEmpty},
			{"empty userSig", map[string]any{"userID": "alice", "userSig": ""}, protocol.CodeSigEmpty},
			{"garbage userSig", map[string]any{"userID": "alice", "userSig": "not.a.jwt"}, protocol.CodeSigInvalid},
			{"other secret", map[string]any{"userID": "alice", "userSig": other}, protocol.CodeSigInvalid},
			{"expired", map[string]any{"userID": "alice", "userSig": expired}, protocol.CodeSigExpired},
			{"another user's", map[string]any{"userID": "mallory", "userSig": dm.token("alice")}, protocol.CodeSigWrongUser},
			{"no userID", map[string]any{"userSig": dm.token("alice")}, protocol.CodeInvalidParams},
			{"numeric userID", map[string]any{"userID": 7, "userSig": dm.token("alice")}, protocol.CodeInvalidParams},
		}
		for _, tt := range failures {
			t.Run(tt.name, func(t *testing.T) {
				c := dm.dial()
				wantCode(t, c, tt.code, protocol.OpLogin, tt.params)
				expectClosed(t, c, int(websocket.StatusPolicyViolation))
			})
		}
	})
}

func TestLoginDeadline(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "memory")
	// Long enough that alice's own login, on a loaded machine, is never
	// caught by it; expectClosed waits far longer for the idle one.
	o.Server.LoginDeadline = 2 * time.Second
	dm := startDaemon(t, o)
	idle := dm.dial()
	loggedIn := dm.login("alice")
	expectClosed(t, idle, int(websocket.StatusPolicyViolation))
	mustCall(t, loggedIn, protocol.OpPing, nil) // the deadline only applies before login
}

func TestBadInput(t *testing.T) {
	apptest.CheckLeaks(t)
	dm := startDaemon(t, apptest.Options(t, "memory"))
	c := dm.login("alice")
	ctx := context.Background()
	raw := []struct {
		typ   websocket.MessageType
		frame string
	}{
		{websocket.MessageText, `not json`},
		{websocket.MessageText, `[1,2,3]`},
		{websocket.MessageText, `{"op":"ping"}`},
		{websocket.MessageText, `{"id":"7","op":"ping"}`},
		{websocket.MessageText, `{"id":-3,"op":"ping"}`},
		{websocket.MessageText, `{"id":1.5,"op":"ping"}`},
		{websocket.MessageBinary, `{"id":1,"op":"ping"}`},
	}
	for _, r := range raw {
		if err := c.WriteRaw(ctx, r.typ, []byte(r.frame)); err != nil {
			t.Fatal(err)
		}
		f := next(t, c)
		if f.ID != 0 || f.Code != protocol.CodeInvalidParams || f.IsEvent() {
			t.Fatalf("%s: got %+v, want id 0 code 6017", r.frame, f)
		}
	}
	bad := []struct {
		op     string
		params map[string]any
		code   int
	}{
		{"dance", nil, protocol.CodeInvalidParams},
		{"", nil, protocol.CodeInvalidParams},
		{protocol.OpInvite, map[string]any{"invitee": "bob"}, protocol.CodeInvalidParams}, // data is required
		{protocol.OpInvite, map[string]any{"invitee": "bob", "data": 5}, protocol.CodeInvalidParams},
		{protocol.OpInvite, map[string]any{"invitee": 5, "data": ""}, protocol.CodeInvalidParams},
		{protocol.OpInvite, map[string]any{"invitee": "", "data": ""}, protocol.CodeInvalidParams},
		{protocol.OpInvite, map[string]any{"invitee": "alice", "data": ""}, protocol.CodeInvalidParams},
		{protocol.OpInvite, map[string]any{"invitee": "bob", "data": "", "timeout": "30"}, protocol.CodeInvalidParams},
		{protocol.OpInvite, map[string]any{"invitee": "bob", "data": "", "timeout": 1.5}, protocol.CodeInvalidParams},
		{protocol.OpInvite, map[string]any{"invitee": "bob", "data": "", "timeout": -1}, protocol.CodeInvalidParams},
		{protocol.OpInvite, map[string]any{"invitee": "bob", "data": "", "timeout": 86401}, protocol.CodeInvalidParams},
		{protocol.OpInvite, map[string]any{"invitee": "bob", "data": "", "onlineUserOnly": "yes"}, protocol.CodeInvalidParams},
		{protocol.OpInvite, map[string]any{"invitee": "bob", "data": "", "offlinePushInfo": "x"}, protocol.CodeInvalidParams},
		{protocol.OpInvite, map[string]any{"invitee": "bob", "data": strings.Repeat("x", 12*1024+1)}, protocol.CodeDataTooLarge},
		{protocol.OpAccept, map[string]any{}, protocol.CodeInvalidParams},
		{protocol.OpAccept, map[string]any{"inviteID": ""}, protocol.CodeInvalidParams},
		{protocol.OpAccept, map[string]any{"inviteID": 12}, protocol.CodeInvalidParams},
		{protocol.OpAccept, map[string]any{"inviteID": "nope", "data": strings.Repeat("x", 12*1024+1)}, protocol.CodeDataTooLarge},
		{protocol.OpModifyInvitation, map[string]any{"inviteID": "nope"}, protocol.CodeInvalidParams},
		{protocol.OpGetSignalingInfo, map[string]any{}, protocol.CodeInvalidParams},
		{protocol.OpAccept, map[string]any{"inviteID": "nope"}, protocol.CodeInviteEnded},
		{protocol.OpCancel, map[string]any{"inviteID": "nope"}, protocol.CodeInviteEnded},
		{protocol.OpGetSignalingInfo, map[string]any{"inviteID": "nope"}, protocol.CodeInviteEnded},
	}
	for _, b := range bad {
		wantCode(t, c, b.code, b.op, b.params)
	}
	// Exactly 12 KiB is allowed, multi-byte characters counted in bytes.
	invite(t, c, map[string]any{"invitee": "bob", "data": strings.Repeat("x", 12*1024)})
	wantCode(t, c, protocol.CodeDataTooLarge, protocol.OpInvite, map[string]any{"invitee": "bob", "data": strings.Repeat("é", 6*1024+1)})
	expectQuiet(t, c)

	// A frame over the read limit closes the connection with 1009.
	big := fmt.Sprintf(`{"id":1,"op":"ping","pad":%q}`, strings.Repeat("x", 64<<10))
	if err := c.WriteRaw(ctx, websocket.MessageText, []byte(big)); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c, int(websocket.StatusMessageTooBig))
	mustCall(t, dm.login("alice"), protocol.OpPing, nil) // the server is fine
}

func TestOneToOneCall(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		alice, alice2 := dm.login("alice"), dm.login("alice")
		bob, bob2 := dm.login("bob"), dm.login("bob")
		carol := dm.login("carol")

		id := invite(t, alice, map[string]any{"invitee": "bob", "data": `{"cmd":"videoCall"}`, "timeout": 30})
		for _, c := range []*clientT{bob, bob2} {
			f := expectEvent(t, c, "onReceiveNewInvitation", id)
			if f.Inviter != "alice" || f.GroupID != "" || !slices.Equal(f.InviteeList, []string{"bob"}) || f.EventData() != `{"cmd":"videoCall"}` || f.Timeout != 30 {
				t.Fatalf("onReceiveNewInvitation %+v data %s", f, f.Data)
			}
		}
		expectQuiet(t, alice)
		expectQuiet(t, alice2)
		expectQuiet(t, carol)

		info := decode[protocol.SignalingInfo](t, mustCall(t, bob, protocol.OpGetSignalingInfo, map[string]any{"inviteID": id}).Data)
		if info.Inviter != "alice" || info.Timeout != 30 || info.Deadline != info.CreatedAt+30_000 || info.States["bob"] != "pending" || info.OnlineUserOnly {
			t.Fatalf("getSignalingInfo %+v", info)
		}
		wantCode(t, carol, protocol.CodeNoPermission, protocol.OpGetSignalingInfo, map[string]any{"inviteID": id})
		wantCode(t, carol, protocol.CodeNoPermission, protocol.OpAccept, map[string]any{"inviteID": id})
		wantCode(t, alice, protocol.CodeNoPermission, protocol.OpAccept, map[string]any{"inviteID": id})
		wantCode(t, bob, protocol.CodeNoPermission, protocol.OpCancel, map[string]any{"inviteID": id})
		wantCode(t, bob, protocol.CodeNoPermission, protocol.OpModifyInvitation, map[string]any{"inviteID": id, "data": "x"})

		mustCall(t, alice, protocol.OpModifyInvitation, map[string]any{"inviteID": id, "data": "audio"})
		for _, c := range []*clientT{alice2, bob, bob2} {
			if f := expectEvent(t, c, "onInvitationModified", id); f.EventData() != "audio" {
				t.Fatalf("modified data %s", f.Data)
			}
		}
		expectQuiet(t, alice)

		mustCall(t, bob, protocol.OpAccept, map[string]any{"inviteID": id, "data": "ok"})
		for _, c := range []*clientT{alice, alice2, bob2} {
			if f := expectEvent(t, c, "onInviteeAccepted", id); f.Invitee != "bob" || f.EventData() != "ok" {
				t.Fatalf("accepted %+v", f)
			}
		}
		expectQuiet(t, bob)
		expectQuiet(t, carol)

		wantCode(t, bob2, protocol.CodeInviteEnded, protocol.OpAccept, map[string]any{"inviteID": id})
		wantCode(t, bob, protocol.CodeInviteEnded, protocol.OpReject, map[string]any{"inviteID": id})
		wantCode(t, alice, protocol.CodeInviteEnded, protocol.OpCancel, map[string]any{"inviteID": id})
		wantCode(t, alice, protocol.CodeInviteEnded, protocol.OpModifyInvitation, map[string]any{"inviteID": id, "data": "x"})
		wantCode(t, carol, protocol.CodeNoPermission, protocol.OpCancel, map[string]any{"inviteID": id}) // ended, still not carol's
		info = decode[protocol.SignalingInfo](t, mustCall(t, alice, protocol.OpGetSignalingInfo, map[string]any{"inviteID": id}).Data)
		if info.States["bob"] != "accepted" || info.Data != "audio" {
			t.Fatalf("after accept: %+v", info)
		}

		// Reject and cancel.
		id2 := invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
		expectEvent(t, bob, "onReceiveNewInvitation", id2)
		expectEvent(t, bob2, "onReceiveNewInvitation", id2)
		mustCall(t, bob2, protocol.OpReject, map[string]any{"inviteID": id2, "data": "busy"})
		for _, c := range []*clientT{alice, alice2, bob} {
			if f := expectEvent(t, c, "onInviteeRejected", id2); f.Invitee != "bob" || f.EventData() != "busy" {
				t.Fatalf("rejected %+v", f)
			}
		}
		id3 := invite(t, alice2, map[string]any{"invitee": "bob", "data": ""})
		expectEvent(t, bob, "onReceiveNewInvitation", id3)
		expectEvent(t, bob2, "onReceiveNewInvitation", id3)
		mustCall(t, alice2, protocol.OpCancel, map[string]any{"inviteID": id3, "data": "bye"})
		for _, c := range []*clientT{alice, bob, bob2} {
			if f := expectEvent(t, c, "onInvitationCancelled", id3); f.Inviter != "alice" || f.EventData() != "bye" {
				t.Fatalf("cancelled %+v", f)
			}
		}
		info = decode[protocol.SignalingInfo](t, mustCall(t, bob, protocol.OpGetSignalingInfo, map[string]any{"inviteID": id3}).Data)
		if info.States["bob"] != "cancelled" {
			t.Fatalf("after cancel: %+v", info)
		}
		for _, c := range []*clientT{alice, alice2, bob, bob2, carol} {
			expectQuiet(t, c)
		}
	})
}

func TestTimeout(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		mustAdmin(t, dm, "PUT", "/v1/groups/team/members", `{"members":["alice","bob","carol"]}`)
		alice, bob, carol := dm.login("alice"), dm.login("bob"), dm.login("carol")
		// carol must answer before the deadline: 5 s leaves a loaded
		// machine room for the two round trips before her accept.
		f := mustCall(t, alice, protocol.OpInviteInGroup, map[string]any{
			"groupID": "team", "inviteeList": []string{"bob", "carol"}, "data": "", "timeout": 5})
		id := decode[string](t, f.Data)
		expectEvent(t, carol, "onReceiveNewInvitation", id)
		mustCall(t, carol, protocol.OpAccept, map[string]any{"inviteID": id})
		expectEvent(t, bob, "onReceiveNewInvitation", id)
		expectEvent(t, alice, "onInviteeAccepted", id)
		expectEvent(t, bob, "onInviteeAccepted", id)
		// A timeout-0 invitation, made while the other still runs.
		never := invite(t, alice, map[string]any{"invitee": "carol", "data": "", "timeout": 0})
		expectEvent(t, carol, "onReceiveNewInvitation", never)

		// Only bob is still pending: the inviter and bob hear of it, once.
		for _, c := range []*clientT{alice, bob} {
			if f := expectEvent(t, c, "onInvitationTimeout", id); !slices.Equal(f.InviteeList, []string{"bob"}) {
				t.Fatalf("timeout inviteeList %v, want [bob]", f.InviteeList)
			}
		}
		info := decode[protocol.SignalingInfo](t, mustCall(t, alice, protocol.OpGetSignalingInfo, map[string]any{"inviteID": id}).Data)
		if want := map[string]string{"bob": "timeout", "carol": "accepted"}; !maps.Equal(info.States, want) {
			t.Fatalf("states %v, want %v", info.States, want)
		}
		wantCode(t, bob, protocol.CodeInviteEnded, protocol.OpAccept, map[string]any{"inviteID": id})
		expectQuiet(t, carol) // accepted before: no timeout for carol
		// timeout 0 never fires: it is still pending after the other fired.
		info = decode[protocol.SignalingInfo](t, mustCall(t, carol, protocol.OpGetSignalingInfo, map[string]any{"inviteID": never}).Data)
		if info.States["carol"] != "pending" || info.Deadline != 0 {
			t.Fatalf("timeout-0 invitation %+v", info)
		}
		expectQuiet(t, alice)
		expectQuiet(t, bob)
	})
}

func mustAdmin(t *testing.T, dm *daemon, method, path, body string) string {
	t.Helper()
	code, resp := dm.admin(method, path, body)
	if code/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, code, resp)
	}
	return resp
}

func TestInviteInGroup(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		o.Engine.MaxInvitees = 3
		dm := startDaemon(t, o)
		mustAdmin(t, dm, "PUT", "/v1/groups/team/members", `{"members":["alice","bob","carol","dave","erin"]}`)
		mustAdmin(t, dm, "PUT", "/v1/groups/others/members", `{"members":["bob"]}`)
		alice := dm.login("alice")
		big := strings.Repeat("x", 12*1024+1)
		checks := []struct {
			params map[string]any
			code   int
			desc   string
		}{
			{map[string]any{"inviteeList": []string{"bob"}, "data": ""}, protocol.CodeInvalidParams, ""},
			{map[string]any{"groupID": "", "inviteeList": []string{"bob"}, "data": ""}, protocol.CodeInvalidParams, ""},
			{map[string]any{"groupID": "team", "inviteeList": []string{}, "data": ""}, protocol.CodeInvalidParams, ""},
			{map[string]any{"groupID": "team", "inviteeList": "bob", "data": ""}, protocol.CodeInvalidParams, ""},
			{map[string]any{"groupID": "team", "inviteeList": []any{"bob", 1}, "data": ""}, protocol.CodeInvalidParams, ""},
			{map[string]any{"groupID": "team", "inviteeList": []string{"bob", "bob"}, "data": ""}, protocol.CodeInvalidParams, ""},
			{map[string]any{"groupID": "team", "inviteeList": []string{"bob", "alice"}, "data": ""}, protocol.CodeInvalidParams, ""},
			{map[string]any{"groupID": "team", "inviteeList": []string{"bob", ""}, "data": ""}, protocol.CodeInvalidParams, ""},
			{map[string]any{"groupID": "team", "inviteeList": []string{"bob"}}, protocol.CodeInvalidParams, ""},
			// shape before size before count before group before membership
			{map[string]any{"groupID": "nope", "inviteeList": []string{"a", "b", "c", "d", "a"}, "data": big}, protocol.CodeInvalidParams, ""},
			{map[string]any{"groupID": "nope", "inviteeList": []string{"a", "b", "c", "d"}, "data": big}, protocol.CodeDataTooLarge, ""},
			{map[string]any{"groupID": "nope", "inviteeList": []string{"a", "b", "c", "d"}, "data": ""}, protocol.CodeTooManyInvitees, ""},
			{map[string]any{"groupID": "nope", "inviteeList": []string{"zed"}, "data": ""}, protocol.CodeGroupNotFound, ""},
			{map[string]any{"groupID": "others", "inviteeList": []string{"bob"}, "data": ""}, protocol.CodeNotMember, "alice"},
			{map[string]any{"groupID": "team", "inviteeList": []string{"bob", "yan", "zed"}, "data": ""}, protocol.CodeNotMember, "yan"},
		}
		for _, c := range checks {
			f := wantCode(t, alice, c.code, protocol.OpInviteInGroup, c.params)
			if c.desc != "" && !strings.Contains(f.Desc, `"`+c.desc+`"`) {
				t.Fatalf("%v: desc %q does not name %q", c.params, f.Desc, c.desc)
			}
		}
		bob, carol, dave := dm.login("bob"), dm.login("carol"), dm.login("dave")
		f := mustCall(t, alice, protocol.OpInviteInGroup, map[string]any{
			"groupID": "team", "inviteeList": []string{"carol", "bob", "dave"}, "data": "d", "timeout": 60,
			"offlinePushInfo": map[string]any{"title": "Alice", "desc": "calls", "ext": "{}", "disablePush": false, "sound": "ring.caf"}})
		id := decode[string](t, f.Data)
		for _, c := range []*clientT{bob, carol, dave} {
			f := expectEvent(t, c, "onReceiveNewInvitation", id)
			if f.GroupID != "team" || !slices.Equal(f.InviteeList, []string{"carol", "bob", "dave"}) || f.Timeout != 60 {
				t.Fatalf("group invitation %+v", f)
			}
		}
		// Every invitee hears of every answer, whatever its own state.
		mustCall(t, bob, protocol.OpReject, map[string]any{"inviteID": id})
		for _, c := range []*clientT{alice, carol, dave} {
			expectEvent(t, c, "onInviteeRejected", id)
		}
		mustCall(t, carol, protocol.OpAccept, map[string]any{"inviteID": id})
		for _, c := range []*clientT{alice, bob, dave} {
			expectEvent(t, c, "onInviteeAccepted", id)
		}
		mustCall(t, alice, protocol.OpCancel, map[string]any{"inviteID": id})
		for _, c := range []*clientT{bob, carol, dave} {
			expectEvent(t, c, "onInvitationCancelled", id)
		}
		info := decode[protocol.SignalingInfo](t, mustCall(t, dave, protocol.OpGetSignalingInfo, map[string]any{"inviteID": id}).Data)
		if want := map[string]string{"bob": "rejected", "carol": "accepted", "dave": "cancelled"}; !maps.Equal(info.States, want) || info.GroupID != "team" {
			t.Fatalf("states %v, want %v", info.States, want)
		}
		// Membership is checked at invite time: a removed member cannot be rung.
		mustAdmin(t, dm, "DELETE", "/v1/groups/team/members/dave", "")
		wantCode(t, alice, protocol.CodeNotMember, protocol.OpInviteInGroup, map[string]any{"groupID": "team", "inviteeList": []string{"dave"}, "data": ""})
		mustAdmin(t, dm, "DELETE", "/v1/groups/team", "")
		wantCode(t, alice, protocol.CodeGroupNotFound, protocol.OpInviteInGroup, map[string]any{"groupID": "team", "inviteeList": []string{"bob"}, "data": ""})
		for _, c := range []*clientT{alice, bob, carol, dave} {
			expectQuiet(t, c)
		}
	})
}

func TestOfflineDelivery(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		alice := dm.login("alice")
		kept := invite(t, alice, map[string]any{"invitee": "bob", "data": "v1"})
		onlineOnly := invite(t, alice, map[string]any{"invitee": "bob", "data": "", "onlineUserOnly": true})
		answeredElsewhere := invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
		mustCall(t, alice, protocol.OpModifyInvitation, map[string]any{"inviteID": kept, "data": "v2"})
		mustCall(t, alice, protocol.OpCancel, map[string]any{"inviteID": answeredElsewhere})

		// bob logs in later, on two devices: each is rung for what is still
		// pending, with its current data, and nothing else.
		for range 2 {
			bob := dm.login("bob")
			f := expectEvent(t, bob, "onReceiveNewInvitation", kept)
			if f.EventData() != "v2" || f.Inviter != "alice" {
				t.Fatalf("pending invitation %+v data %s", f, f.Data)
			}
			expectQuiet(t, bob)
		}
		// The onlineUserOnly invitation still counts bob as pending.
		info := decode[protocol.SignalingInfo](t, mustCall(t, alice, protocol.OpGetSignalingInfo, map[string]any{"inviteID": onlineOnly}).Data)
		if info.States["bob"] != "pending" || !info.OnlineUserOnly {
			t.Fatalf("onlineUserOnly invitation %+v", info)
		}
		// A login that asks to resume gets recovered:false and the pending set.
		bob := dm.dial()
		f := mustCall(t, bob, protocol.OpLogin, map[string]any{"userID": "bob", "userSig": dm.token("bob"), "lastEventID": "00000001"})
		if d := decode[map[string]any](t, f.Data); d["recovered"] != false {
			t.Fatalf("login with lastEventID: %s", f.Data)
		}
		expectEvent(t, bob, "onReceiveNewInvitation", kept)
		mustCall(t, bob, protocol.OpAccept, map[string]any{"inviteID": kept})
		expectEvent(t, alice, "onInviteeAccepted", kept)
		expectQuiet(t, dm.login("bob"))
	})
}

// TestRaces: accept, reject and cancel of one invitation sent at once by
// three connections; exactly one wins, the others get 8010, and everyone
// hears exactly the winner's event.
func TestRaces(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		alice, bob, bob2 := dm.login("alice"), dm.login("bob"), dm.login("bob")
		wins := map[string]int{}
		for range 50 {
			id := invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
			expectEvent(t, bob, "onReceiveNewInvitation", id)
			expectEvent(t, bob2, "onReceiveNewInvitation", id)
			racers := []struct {
				c  *clientT
				op string
			}{{bob, protocol.OpAccept}, {bob2, protocol.OpReject}, {alice, protocol.OpCancel}}
			codes := make([]int, len(racers))
			var wg sync.WaitGroup
			for i, r := range racers {
				wg.Go(func() {
					f, err := r.c.Call(context.Background(), r.op, map[string]any{"inviteID": id})
					if err == nil {
						codes[i] = f.Code
					}
				})
			}
			wg.Wait()
			winner := ""
			for i, code := range codes {
				switch code {
				case 0:
					if winner != "" {
						t.Fatalf("both %s and %s succeeded", winner, racers[i].op)
					}
					winner = racers[i].op
				case protocol.CodeInviteEnded:
				default:
					t.Fatalf("%s: code %d", racers[i].op, code)
				}
			}
			if winner == "" {
				t.Fatal("nobody won")
			}
			wins[winner]++
			event := map[string]string{protocol.OpAccept: "onInviteeAccepted", protocol.OpReject: "onInviteeRejected", protocol.OpCancel: "onInvitationCancelled"}[winner]
			for i, r := range racers {
				if r.op != winner {
					expectEvent(t, racers[i].c, event, id)
				}
			}
			for _, r := range racers {
				expectQuiet(t, r.c)
			}
		}
		t.Logf("winners over 50 races: %v", wins)
	})
}
