package client_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/signald/signald/client"
	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/apptest"
	"github.com/signald/signald/internal/redistest"
)

// viaProxy returns the WebSocket URL of a TCP proxy to dm, which a test
// can cut, restore, or point at another daemon.
func viaProxy(t testing.TB, dm *daemon) (*redistest.Proxy, string) {
	p := redistest.StartProxy(t, dm.addr)
	return p, "ws://" + p.Addr + "/v1/ws"
}

// TestResumeAfterKilledConnection: bob's connection is killed; what
// happened meanwhile is replayed after the reconnect, once, in order, and
// the session goes on.
func TestResumeAfterKilledConnection(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		proxy, url := viaProxy(t, dm)
		alice := login(t, dm.ws, "alice", testOptions())
		bob := login(t, url, "bob", testOptions())
		ctx := ctxT(t)
		id := must[string](t)(alice.Invite(ctx, "bob", "v1", client.InviteOptions{}))
		ring := expect[client.ReceiveNewInvitationEvent](bob.rec)

		proxy.Cut() // the network goes: no close frame, and no way back for now
		lost := bob.rec.waitState(client.StateReconnecting)
		if lost.CloseCode != -1 || lost.Err == nil || lost.Attempt != 1 {
			t.Fatalf("connection lost: %+v", lost)
		}
		ok(t, alice.ModifyInvitation(ctx, id, "v2"))
		ok(t, alice.Cancel(ctx, id, "bye"))
		id2 := must[string](t)(alice.Invite(ctx, "bob", "again", client.InviteOptions{}))
		proxy.Restore()

		back := bob.rec.waitState(client.StateConnected)
		if !back.Resumed || !back.Recovered {
			t.Fatalf("reconnected: %+v", back)
		}
		if ev := expect[client.InvitationModifiedEvent](bob.rec); ev.InviteID != id || ev.Data != "v2" || ev.EventID <= ring.EventID {
			t.Fatalf("replayed %#v", ev)
		}
		if ev := expect[client.InvitationCancelledEvent](bob.rec); ev.InviteID != id || ev.Data != "bye" {
			t.Fatalf("replayed %#v", ev)
		}
		if ev := expect[client.ReceiveNewInvitationEvent](bob.rec); ev.InviteID != id2 {
			t.Fatalf("replayed %#v", ev)
		}
		ok(t, bob.Accept(ctx, id2, ""))
		expect[client.InviteeAcceptedEvent](alice.rec)
		barrier(t, alice, bob)
	})
}

// TestDuplicatesDropped: events received but not yet processed when the
// connection drops are replayed by the server after the reconnect (the
// login resumes from the last one processed), and the Client hands each
// to the listener once.
func TestDuplicatesDropped(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		proxy, url := viaProxy(t, dm)
		alice := login(t, dm.ws, "alice", testOptions())
		bob := login(t, url, "bob", testOptions())
		ctx := ctxT(t)
		id := must[string](t)(alice.Invite(ctx, "bob", "v1", client.InviteOptions{}))
		ring := expect[client.ReceiveNewInvitationEvent](bob.rec)

		release, entered := bob.rec.holdNextModified() // the listener will be busy with v2
		ok(t, alice.ModifyInvitation(ctx, id, "v2"))
		ok(t, alice.ModifyInvitation(ctx, id, "v3"))
		select {
		case <-entered:
		case <-time.After(waitFor):
			t.Fatal("v2 did not reach the listener")
		}
		if bob.LastEventID() != ring.EventID { // the ring is done with, v2 is not
			t.Fatalf("last eventID %q, want the ring's %q", bob.LastEventID(), ring.EventID)
		}
		// v3 waits for the listener once the reply to this ping is there
		// (replies and events come in order).
		must[time.Time](t)(bob.Ping(ctx))
		proxy.CloseAll()
		// The re-login resumes after the ring: v2 and v3 come again,
		// before the reply to a ping that goes out after it.
		pingThrough(t, bob)
		close(release)

		for _, want := range []string{"v2", "v3"} {
			if ev := expect[client.InvitationModifiedEvent](bob.rec); ev.Data != want {
				t.Fatalf("modified %#v, want %s", ev, want)
			}
		}
		barrier(t, alice, bob) // and nothing in between: no duplicate
		ok(t, alice.Cancel(ctx, id, ""))
		expect[client.InvitationCancelledEvent](bob.rec)
	})
}

// TestServerRestart: the instance shuts down (1012); the Client comes back
// through the load balancer (a proxy here) on a new instance sharing the
// Redis, resumes, and gets what happened while it was away; a request
// made meanwhile waits and goes out after the login.
func TestServerRestart(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "redis")
	first := startDaemon(t, o)
	proxy, url := viaProxy(t, first)
	alice := login(t, url, "alice", testOptions())
	bob := login(t, url, "bob", testOptions())
	ctx := ctxT(t)
	// alice has a kept event to resume from: a user without one cannot
	// resume, and would log in afresh (api/README.md §11).
	barrier(t, bob, alice)
	id := must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{Timeout: time.Hour}))
	expect[client.ReceiveNewInvitationEvent](bob.rec)

	first.stop()
	for _, u := range []*user{alice, bob} {
		if ch := u.rec.waitState(client.StateReconnecting); ch.CloseCode != 1012 {
			t.Fatalf("%s: %+v, want close code 1012", u.id, ch)
		}
	}
	accepted := make(chan error, 1)
	go func() { accepted <- bob.Accept(ctx, id, "from the queue") }()

	next := startDaemon(t, o)
	carol := login(t, next.ws, "carol", testOptions())
	id2 := must[string](t)(carol.Invite(ctx, "bob", "while away", client.InviteOptions{}))
	proxy.MoveTo(next.addr)

	for _, u := range []*user{alice, bob} {
		if ch := u.rec.waitState(client.StateConnected); !ch.Resumed || !ch.Recovered {
			t.Fatalf("%s: %+v", u.id, ch)
		}
	}
	if ev := expect[client.ReceiveNewInvitationEvent](bob.rec); ev.InviteID != id2 || ev.Inviter != "carol" {
		t.Fatalf("missed ring %#v", ev)
	}
	select {
	case err := <-accepted:
		ok(t, err)
	case <-time.After(waitFor):
		t.Fatal("the accept made while reconnecting did not complete")
	}
	if ev := expect[client.InviteeAcceptedEvent](alice.rec); ev.InviteID != id || ev.Data != "from the queue" {
		t.Fatalf("accepted %#v", ev)
	}
	ok(t, bob.Reject(ctx, id2, ""))
	expect[client.InviteeRejectedEvent](carol.rec)
	barrier(t, alice, bob)
	barrier(t, bob, alice)
}

// TestRequestWhileReconnecting: between two connections a request waits
// for the next login within its ctx, or fails at once with
// FailWhileReconnecting; either way it was not sent.
func TestRequestWhileReconnecting(t *testing.T) {
	apptest.CheckLeaks(t)
	dm := startDaemon(t, apptest.Options(t, "memory"))
	proxy, url := viaProxy(t, dm)
	alice := login(t, dm.ws, "alice", testOptions())
	bob := login(t, url, "bob", testOptions())
	failFast := testOptions()
	failFast.FailWhileReconnecting = true
	carol := login(t, url, "carol", failFast)

	proxy.Cut()
	bob.rec.waitState(client.StateReconnecting)
	carol.rec.waitState(client.StateReconnecting)

	if err := second(carol.Invite(ctxT(t), "alice", "", client.InviteOptions{})); !errors.Is(err, client.ErrReconnecting) {
		t.Fatalf("fail-fast while reconnecting: %v", err)
	}
	// A deadline that passes while reconnecting: both errors at once.
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := second(bob.Invite(short, "alice", "", client.InviteOptions{})); !errors.Is(err, client.ErrReconnecting) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued past its deadline: %v", err)
	}
	// One that waits long enough goes out after the login.
	type result struct {
		id  string
		err error
	}
	queued := make(chan result, 1)
	go func() {
		id, err := bob.Invite(ctxT(t), "alice", "queued", client.InviteOptions{})
		queued <- result{id, err}
	}()
	proxy.Restore()
	var r result
	select {
	case r = <-queued:
	case <-time.After(waitFor):
		t.Fatal("the queued invite did not complete")
	}
	ok(t, r.err)
	if ev := expect[client.ReceiveNewInvitationEvent](alice.rec); ev.InviteID != r.id || ev.Data != "queued" {
		t.Fatalf("alice got %#v", ev)
	}
	// Nothing else reached alice: the timed-out invite was never sent.
	barrier(t, bob, alice)
	carol.rec.waitState(client.StateConnected)
	must[string](t)(carol.Invite(ctxT(t), "alice", "", client.InviteOptions{}))
}

// TestConnectionLostAfterSend: a request whose connection ends after it
// was written fails with ErrConnectionLost and is not sent again.
func TestConnectionLostAfterSend(t *testing.T) {
	apptest.CheckLeaks(t)
	dm := startDaemon(t, apptest.Options(t, "memory"))
	proxy, url := viaProxy(t, dm)
	alice := login(t, dm.ws, "alice", testOptions())
	o := testOptions()
	o.PingInterval = -1 // no WebSocket pings: the only write is the request
	w, d := newWriteWatcher()
	o.Dialer = d
	bob := login(t, url, "bob", o)

	proxy.Silence() // what bob writes goes nowhere, and nothing comes back
	w.drain()
	done := make(chan error, 1)
	go func() { done <- bob.Accept(ctxT(t), "SOMEINVITATION", "") }()
	w.wait(t)
	proxy.CloseAll()
	select {
	case err := <-done:
		if !errors.Is(err, client.ErrConnectionLost) {
			t.Fatalf("accept on a connection lost before the reply: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("the accept did not return")
	}
	bob.rec.waitState(client.StateConnected)
	barrier(t, alice, bob)
}

// TestPolicyClose: a connection closed with 1008 (here: requests past the
// rate limit) is not hammered: the reconnect waits at least about
// Backoff.Policy, and the state change carries the code and the reason.
func TestPolicyClose(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "memory")
	// Burst 2, then a token per 100 s: none comes back during the test.
	o.Server.RateLimit, o.Server.RateBurst = 0.01, 2
	dm := startDaemon(t, o)
	bob := login(t, dm.ws, "bob", testOptions())
	// Two pings pass (the burst), two are refused, the fifth closes the
	// connection. One at a time, so that the client is not writing when
	// the close comes.
	limited := 0
	for range 5 {
		_, err := bob.Ping(ctxT(t))
		if errors.Is(err, client.ErrRateLimited) {
			limited++
		}
	}
	ch := bob.rec.waitState(client.StateReconnecting)
	if ch.CloseCode != 1008 || ch.CloseReason == "" || ch.RetryIn < 225*time.Millisecond {
		t.Fatalf("closed for the rate limit: %+v; want 1008, a reason, and a wait of at least 3/4 of 300ms", ch)
	}
	if limited != 2 {
		t.Fatalf("%d pings refused with 60018, want 2", limited)
	}
	bob.rec.waitState(client.StateConnected)
}

// TestHeartbeat: a connection that stops answering (a half-open TCP
// connection) is noticed by the WebSocket ping and replaced.
func TestHeartbeat(t *testing.T) {
	apptest.CheckLeaks(t)
	dm := startDaemon(t, apptest.Options(t, "memory"))
	proxy, url := viaProxy(t, dm)
	o := testOptions()
	o.PingInterval = 100 * time.Millisecond
	o.RequestTimeout = 2 * time.Second
	alice := login(t, dm.ws, "alice", testOptions())
	bob := login(t, url, "bob", o)
	proxy.Silence()
	if ch := bob.rec.waitState(client.StateReconnecting); ch.CloseCode != -1 {
		t.Fatalf("%+v", ch)
	}
	bob.rec.waitState(client.StateConnected)
	barrier(t, alice, bob)
}

// TestReloginRefused: a re-login refused for the userSig ends the session,
// unless RefreshUserSig gives a good one.
func TestReloginRefused(t *testing.T) {
	apptest.CheckLeaks(t)
	dm := startDaemon(t, apptest.Options(t, "memory"))
	proxy, url := viaProxy(t, dm)
	var mu sync.Mutex
	refreshed := 0
	good := login(t, url, "bob", testOptions(), func(lo *client.LoginOptions) {
		lo.RefreshUserSig = func(_ context.Context, userID string) (string, error) {
			mu.Lock()
			refreshed++
			mu.Unlock()
			return token(t, userID), nil
		}
	})
	bad := login(t, url, "carol", testOptions(), func(lo *client.LoginOptions) {
		lo.RefreshUserSig = func(context.Context, string) (string, error) { return token(t, "mallory"), nil }
	})
	proxy.CloseAll()
	good.rec.waitState(client.StateConnected)
	mu.Lock()
	if refreshed == 0 {
		t.Error("RefreshUserSig not called before the re-login")
	}
	mu.Unlock()
	ch := bad.rec.waitState(client.StateDisconnected)
	if !errors.Is(ch.Err, client.ErrSigWrongUser) || bad.State() != client.StateDisconnected {
		t.Fatalf("refused re-login: %+v, state %v", ch, bad.State())
	}
	if err := second(bad.Ping(ctxT(t))); !errors.Is(err, client.ErrNotLoggedIn) {
		t.Fatalf("after the session ended: %v", err)
	}
	must[time.Time](t)(good.Ping(ctxT(t)))
}

// TestStoreAcrossClients: a Store shared by two Clients (as a persistent
// one is by two runs of a process) lets the second resume where the first
// stopped; a Client that logs out and in again resumes from its own.
func TestStoreAcrossClients(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		alice := login(t, dm.ws, "alice", testOptions())
		store := client.NewMemoryStore()
		so := testOptions()
		so.Store = store
		phone := func(lo *client.LoginOptions) { lo.DeviceID = "bob-phone" }
		bob := login(t, dm.ws, "bob", so, phone)
		ctx := ctxT(t)
		id := must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{}))
		ring := expect[client.ReceiveNewInvitationEvent](bob.rec)
		ok(t, bob.Close())
		if saved, _ := store.Load(ctx, "bob", "bob-phone"); saved != ring.EventID {
			t.Fatalf("saved %q, want %q", saved, ring.EventID)
		}
		ok(t, alice.ModifyInvitation(ctx, id, "v2"))

		bob = login(t, dm.ws, "bob", so, phone)
		if ev := expect[client.InvitationModifiedEvent](bob.rec); ev.Data != "v2" {
			t.Fatalf("replayed %#v", ev)
		}
		// Logout and Login again on the same Client: it resumes too.
		ok(t, bob.Logout(ctx))
		bob.rec.waitState(client.StateDisconnected)
		ok(t, alice.Cancel(ctx, id, ""))
		res := must[*client.LoginResult](t)(bob.Login(ctx, client.LoginOptions{UserID: "bob", UserSig: token(t, "bob"), DeviceID: "bob-phone"}))
		if !res.Resumed || !res.Recovered {
			t.Fatalf("login after logout: %+v", res)
		}
		if ev := expect[client.InvitationCancelledEvent](bob.rec); ev.InviteID != id {
			t.Fatalf("replayed %#v", ev)
		}
		barrier(t, alice, bob)
	})
}

// TestFreshLoginRingsPending: a fresh login is rung for the invitations
// waiting for the user; once those are processed, the login's anchor (the
// newest event kept for the user) is what the next login resumes from.
func TestFreshLoginRingsPending(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		proxy, url := viaProxy(t, dm)
		alice := login(t, dm.ws, "alice", testOptions())
		ctx := ctxT(t)
		id := must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{}))
		old := must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{}))
		ok(t, alice.Cancel(ctx, old, "")) // bob's newest kept event, not rung on login
		bob := login(t, url, "bob", testOptions())
		ring := expect[client.ReceiveNewInvitationEvent](bob.rec)
		if ring.InviteID != id || ring.EventID == "" || bob.res.Resumed || ring.EventID >= bob.res.LastEventID {
			t.Fatalf("pending ring %#v after login %+v", ring, bob.res)
		}
		waitLastEventID(t, bob, bob.res.LastEventID)
		proxy.CloseAll()
		if ch := bob.rec.waitState(client.StateConnected); !ch.Resumed || !ch.Recovered {
			t.Fatalf("%+v", ch)
		}
		ok(t, alice.Cancel(ctx, id, ""))
		expect[client.InvitationCancelledEvent](bob.rec) // and no ring again before it
		barrier(t, alice, bob)
	})
}

// TestNotRecovered: when what was missed is no longer kept, the login says
// so (Recovered false) and the server rings again what is still pending;
// an invitation the listener already had is not told twice.
func TestNotRecovered(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		o.EventsKept = 3
		dm := startDaemon(t, o)
		proxy, url := viaProxy(t, dm)
		alice := login(t, dm.ws, "alice", testOptions())
		bob := login(t, url, "bob", testOptions())
		ctx := ctxT(t)
		id := must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{}))
		expect[client.ReceiveNewInvitationEvent](bob.rec)
		proxy.Cut()
		bob.rec.waitState(client.StateReconnecting)
		gone := must[string](t)(alice.Invite(ctx, "bob", "", client.InviteOptions{}))
		ok(t, alice.Cancel(ctx, gone, ""))
		fresh := must[string](t)(alice.Invite(ctx, "bob", "new", client.InviteOptions{}))
		for range 3 { // three more kept events: those after bob's last are gone
			ok(t, alice.ModifyInvitation(ctx, fresh, "new"))
		}
		proxy.Restore()
		if ch := bob.rec.waitState(client.StateConnected); !ch.Resumed || ch.Recovered {
			t.Fatalf("%+v, want resumed and not recovered", ch)
		}
		// Rung again: id (already told: dropped) and fresh, in eventID order.
		if ev := expect[client.ReceiveNewInvitationEvent](bob.rec); ev.InviteID != fresh || ev.Data != "new" {
			t.Fatalf("after an unrecovered resume %#v", ev)
		}
		barrier(t, alice, bob)
		// The anchor moved past what was lost: the next resume recovers.
		proxy.CloseAll()
		if ch := bob.rec.waitState(client.StateConnected); !ch.Recovered {
			t.Fatalf("%+v", ch)
		}
		ok(t, alice.Cancel(ctx, id, ""))
		expect[client.InvitationCancelledEvent](bob.rec)
		ok(t, alice.Cancel(ctx, fresh, ""))
		expect[client.InvitationCancelledEvent](bob.rec)
	})
}
