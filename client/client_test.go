package client_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signald/signald/client"
	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/apptest"
	"github.com/signald/signald/internal/auth"
	"github.com/signald/signald/internal/push"
	"github.com/signald/signald/internal/push/pushtest"
	"github.com/signald/signald/internal/redistest"
)

// TestOpsAndEvents drives every op and every event through the typed
// Client.
func TestOpsAndEvents(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		dm.group("team", "alice", "bob", "carol")
		alice := login(t, dm.ws, "alice", testOptions())
		bob := login(t, dm.ws, "bob", testOptions())
		carol := login(t, dm.ws, "carol", testOptions())
		ctx := ctxT(t)

		// invite → onReceiveNewInvitation; getSignalingInfo.
		before := time.Now()
		id := must[string](t)(alice.Invite(ctx, "bob", `{"cmd":"videoCall"}`, client.InviteOptions{Timeout: 45 * time.Second}))
		ring := expect[client.ReceiveNewInvitationEvent](bob.rec)
		if ring.InviteID != id || ring.Inviter != "alice" || ring.GroupID != "" || !slices.Equal(ring.InviteeList, []string{"bob"}) ||
			ring.Data != `{"cmd":"videoCall"}` || ring.Timeout != 45*time.Second || ring.EventID == "" {
			t.Fatalf("ring %#v", ring)
		}
		info := must[*client.SignalingInfo](t)(bob.GetSignalingInfo(ctx, id))
		if info.InviteID != id || info.Inviter != "alice" || info.States["bob"] != client.InviteePending || info.Timeout != 45*time.Second ||
			info.CreatedAt.Before(before.Add(-time.Minute)) || info.Deadline.Sub(info.CreatedAt) != 45*time.Second || info.OnlineUserOnly {
			t.Fatalf("info %#v", info)
		}

		// modifyInvitation → onInvitationModified; accept → onInviteeAccepted.
		ok(t, alice.ModifyInvitation(ctx, id, "audio"))
		if ev := expect[client.InvitationModifiedEvent](bob.rec); ev.InviteID != id || ev.Data != "audio" || ev.EventID <= ring.EventID {
			t.Fatalf("modified %#v", ev)
		}
		ok(t, bob.Accept(ctx, id, "yes"))
		if ev := expect[client.InviteeAcceptedEvent](alice.rec); ev.InviteID != id || ev.Invitee != "bob" || ev.Data != "yes" || ev.EventID == "" {
			t.Fatalf("accepted %#v", ev)
		}
		if info := must[*client.SignalingInfo](t)(alice.GetSignalingInfo(ctx, id)); info.States["bob"] != client.InviteeAccepted || info.Data != "audio" {
			t.Fatalf("after accept %#v", info)
		}

		// reject → onInviteeRejected.
		id = must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{}))
		if ring := expect[client.ReceiveNewInvitationEvent](bob.rec); ring.Timeout != 30*time.Second {
			t.Fatalf("default timeout: %#v", ring)
		}
		ok(t, bob.Reject(ctx, id, "busy"))
		if ev := expect[client.InviteeRejectedEvent](alice.rec); ev.InviteID != id || ev.Invitee != "bob" || ev.Data != "busy" {
			t.Fatalf("rejected %#v", ev)
		}

		// cancel → onInvitationCancelled.
		id = must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{NoTimeout: true}))
		expect[client.ReceiveNewInvitationEvent](bob.rec)
		if info := must[*client.SignalingInfo](t)(alice.GetSignalingInfo(ctx, id)); info.Timeout != 0 || !info.Deadline.IsZero() {
			t.Fatalf("no deadline: %#v", info)
		}
		ok(t, alice.Cancel(ctx, id, "bye"))
		if ev := expect[client.InvitationCancelledEvent](bob.rec); ev.InviteID != id || ev.Inviter != "alice" || ev.Data != "bye" {
			t.Fatalf("cancelled %#v", ev)
		}

		// timeout → onInvitationTimeout, to the inviter and the invitee;
		// 1.5 s is rounded up to 2.
		id = must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{Timeout: 1500 * time.Millisecond}))
		if ring := expect[client.ReceiveNewInvitationEvent](bob.rec); ring.Timeout != 2*time.Second {
			t.Fatalf("timeout rounded: %#v", ring)
		}
		for _, u := range []*user{alice, bob} {
			if ev := expect[client.InvitationTimeoutEvent](u.rec); ev.InviteID != id || !slices.Equal(ev.InviteeList, []string{"bob"}) {
				t.Fatalf("%s: timeout %#v", u.id, ev)
			}
		}

		// inviteInGroup rings every invitee.
		id = must[string](t)(alice.InviteInGroup(ctx, "team", []string{"bob", "carol"}, "group", client.InviteOptions{}))
		for _, u := range []*user{bob, carol} {
			ev := expect[client.ReceiveNewInvitationEvent](u.rec)
			if ev.InviteID != id || ev.GroupID != "team" || !slices.Equal(ev.InviteeList, []string{"bob", "carol"}) || ev.Data != "group" {
				t.Fatalf("%s: group ring %#v", u.id, ev)
			}
		}
		ok(t, carol.Accept(ctx, id, ""))
		expect[client.InviteeAcceptedEvent](alice.rec)
		if ev := expect[client.InviteeAcceptedEvent](bob.rec); ev.Invitee != "carol" {
			t.Fatalf("bob learns carol joined: %#v", ev)
		}
		ok(t, alice.Cancel(ctx, id, ""))
		expect[client.InvitationCancelledEvent](bob.rec)
		expect[client.InvitationCancelledEvent](carol.rec) // every invitee hears of it

		// onlineUserOnly: events without eventID, delivered all the same.
		id = must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{OnlineUserOnly: true, OfflinePushInfo: &client.OfflinePushInfo{Title: "t"}}))
		if ev := expect[client.ReceiveNewInvitationEvent](bob.rec); ev.InviteID != id || ev.EventID != "" {
			t.Fatalf("online-only ring %#v", ev)
		}
		ok(t, alice.ModifyInvitation(ctx, id, "x"))
		ok(t, alice.ModifyInvitation(ctx, id, "x"))
		for range 2 { // same content twice, no eventID: both delivered
			if ev := expect[client.InvitationModifiedEvent](bob.rec); ev.EventID != "" {
				t.Fatalf("online-only modified %#v", ev)
			}
		}
		ok(t, alice.Cancel(ctx, id, ""))
		expect[client.InvitationCancelledEvent](bob.rec)

		// ping, doBackground, doForeground.
		if now := must[time.Time](t)(alice.Ping(ctx)); time.Until(now).Abs() > time.Minute {
			t.Fatalf("server time %v", now)
		}
		ok(t, bob.DoBackground(ctx))
		ok(t, bob.DoForeground(ctx))

		if alice.UserID() != "alice" || alice.State() != client.StateConnected || bob.LastEventID() == "" {
			t.Fatalf("alice %q %v; bob's last eventID %q", alice.UserID(), alice.State(), bob.LastEventID())
		}
		barrier(t, alice, bob)
		barrier(t, alice, carol)
	})
}

// TestErrors: a refusal is an *Error with the server's code, matched by
// errors.Is against the sentinels; the Client's own errors.
func TestErrors(t *testing.T) {
	apptest.CheckLeaks(t)
	dm := startDaemon(t, apptest.Options(t, "memory"))
	dm.group("team", "alice", "bob")
	alice := login(t, dm.ws, "alice", testOptions())
	bob := login(t, dm.ws, "bob", testOptions())
	ctx := ctxT(t)
	id := must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{}))

	for _, tc := range []struct {
		name string
		err  error
		want *client.Error
	}{
		{"self-invite", second(alice.Invite(ctx, "alice", "", client.InviteOptions{})), client.ErrInvalidParams},
		{"negative timeout", second(alice.Invite(ctx, "bob", "", client.InviteOptions{Timeout: -time.Second})), client.ErrInvalidParams},
		{"data too large", second(alice.Invite(ctx, "bob", strings.Repeat("x", 12289), client.InviteOptions{})), client.ErrDataTooLarge},
		{"unknown inviteID", alice.Accept(ctx, "NOSUCHINVITATION", ""), client.ErrInviteEnded},
		{"inviter accepts", alice.Accept(ctx, id, ""), client.ErrNoPermission},
		{"invitee cancels", bob.Cancel(ctx, id, ""), client.ErrNoPermission},
		{"invitee modifies", bob.ModifyInvitation(ctx, id, "x"), client.ErrNoPermission},
		{"unknown group", second(alice.InviteInGroup(ctx, "nogroup", []string{"bob"}, "", client.InviteOptions{})), client.ErrGroupNotFound},
		{"not a member", second(alice.InviteInGroup(ctx, "team", []string{"carol"}, "", client.InviteOptions{})), client.ErrNotMember},
		{"empty list", second(alice.InviteInGroup(ctx, "team", nil, "", client.InviteOptions{})), client.ErrInvalidParams},
		{"unknown platform", bob.SetOfflinePushConfig(ctx, client.OfflinePushConfig{Platform: "pager", Token: "t", DeviceID: "d"}), client.ErrInvalidParams},
	} {
		var e *client.Error
		if !errors.As(tc.err, &e) || !errors.Is(tc.err, tc.want) || e.Desc == "" || e.Op == "" {
			t.Errorf("%s: %v, want code %d", tc.name, tc.err, tc.want.Code)
		}
	}
	ok(t, bob.Reject(ctx, id, ""))
	if err := bob.Reject(ctx, id, ""); !errors.Is(err, client.ErrInviteEnded) || errors.Is(err, client.ErrNoPermission) {
		t.Errorf("second reject: %v", err)
	}

	// Login refused: the *Error, and no session left.
	c := must[*client.Client](t)(client.New(dm.ws, testOptions()))
	t.Cleanup(func() { _ = c.Close() })
	for _, tc := range []struct {
		sig  string
		want *client.Error
	}{
		{"", client.ErrSigEmpty},
		{"not.a.jwt", client.ErrSigInvalid},
		{token(t, "mallory"), client.ErrSigWrongUser},
		{expiredToken(t, "carol"), client.ErrSigExpired},
	} {
		_, err := c.Login(ctx, client.LoginOptions{UserID: "carol", UserSig: tc.sig})
		if !errors.Is(err, tc.want) || c.State() != client.StateDisconnected || c.UserID() != "" {
			t.Errorf("login with %q: %v (state %v), want code %d", tc.sig, err, c.State(), tc.want.Code)
		}
	}
	if err := second(c.Ping(ctx)); !errors.Is(err, client.ErrNotLoggedIn) {
		t.Errorf("ping without a session: %v", err)
	}
	if _, err := c.Login(ctx, client.LoginOptions{UserID: "carol", UserSig: token(t, "carol")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(ctx, client.LoginOptions{UserID: "carol", UserSig: token(t, "carol")}); !errors.Is(err, client.ErrAlreadyLoggedIn) {
		t.Errorf("second login: %v", err)
	}
	ok(t, c.Logout(ctx))
	if err := second(c.Invite(ctx, "bob", "", client.InviteOptions{})); !errors.Is(err, client.ErrNotLoggedIn) {
		t.Errorf("after logout: %v", err)
	}
	ok(t, c.Close())
	if _, err := c.Login(ctx, client.LoginOptions{UserID: "carol", UserSig: token(t, "carol")}); !errors.Is(err, client.ErrClosed) {
		t.Errorf("login after close: %v", err)
	}
	if err := second(c.Ping(ctx)); !errors.Is(err, client.ErrClosed) {
		t.Errorf("ping after close: %v", err)
	}
	if _, err := client.New("http://"+dm.addr, client.Options{}); err == nil {
		t.Error("New accepted an http:// URL")
	}
	// A connection that cannot be made fails Login.
	dead := must[*client.Client](t)(client.New("ws://127.0.0.1:1/v1/ws", testOptions()))
	t.Cleanup(func() { _ = dead.Close() })
	if _, err := dead.Login(ctx, client.LoginOptions{UserID: "carol", UserSig: token(t, "carol")}); err == nil || dead.State() != client.StateDisconnected {
		t.Errorf("login to nowhere: %v, state %v", err, dead.State())
	}
}

func second[T any](_ T, err error) error { return err }

func expiredToken(t testing.TB, user string) string {
	t.Helper()
	tok, err := auth.Mint([]byte(app.DevJWTSecret), user, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestPushAndBackground: setOfflinePushConfig registers a device; a device
// in the background is pushed, in the foreground it is not; and the
// Client says doBackground again on a new connection.
func TestPushAndBackground(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "memory")
	hook := pushtest.NewWebhook(t)
	o.Push = push.Config{Webhook: hook.Options()}
	o.PushClient = hook.Client()
	o.Scheduler.Poll = 20 * time.Millisecond
	dm := startDaemon(t, o)
	proxy := redistest.StartProxy(t, dm.addr)
	alice := login(t, dm.ws, "alice", testOptions())
	bob := login(t, "ws://"+proxy.Addr+"/v1/ws", "bob", testOptions(), func(lo *client.LoginOptions) { lo.DeviceID = "bob-phone" })
	ctx := ctxT(t)
	ok(t, bob.SetOfflinePushConfig(ctx, client.OfflinePushConfig{Platform: client.PlatformWebhook, Token: "tok-bob"}))

	ok(t, bob.DoBackground(ctx))
	first := must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{}))
	expect[client.ReceiveNewInvitationEvent](bob.rec) // the socket still gets it
	ok(t, bob.DoForeground(ctx))
	skipped := must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{}))
	expect[client.ReceiveNewInvitationEvent](bob.rec)

	// In the background again, then the connection drops: the new one
	// starts in the foreground, and the Client puts it back.
	ok(t, bob.DoBackground(ctx))
	proxy.CloseAll()
	bob.rec.waitState(client.StateReconnecting)
	bob.rec.waitState(client.StateConnected)
	must[time.Time](t)(bob.Ping(ctx)) // after the re-login's doBackground
	third := must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{}))

	got := map[string]bool{}
	for _, r := range hook.Wait(t, 2) {
		if r.Fields["token"] != "tok-bob" || r.Fields["deviceID"] != "bob-phone" || r.Fields["type"] != "invite" {
			t.Fatalf("push %v", r.Fields)
		}
		got[r.Fields["inviteID"]] = true
	}
	if !got[first] || !got[third] || got[skipped] {
		t.Fatalf("pushed %v; want %s and %s, not %s (sent in the foreground)", got, first, third, skipped)
	}
	for _, id := range []string{first, skipped, third} {
		ok(t, alice.Cancel(ctx, id, ""))
	}
}
