package app_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signald/signald/internal/bus"
	sig "github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/protocol"
	"github.com/signald/signald/internal/redistest"
)

// TestTimeoutIsOneRoundTrip: on a single Redis a timeout is one round trip
// (beside the claim and the release, one each for a whole batch), which
// times the pending invitees out and keeps and publishes the event for the
// inviter and them: its frame, listing who timed out, written by the
// script byte for byte as the server's encoder writes it, IDs that JSON
// must escape included. With and without offline pushes.
func TestTimeoutIsOneRoundTrip(t *testing.T) {
	eachPusher(t, func(t *testing.T, pusher sig.OfflinePusher) {
		ctx := context.Background()
		c, prefix := redistest.NewClient(t)
		trips := &tripLog{}
		c.AddHook(trips)
		var (
			mu  sync.Mutex
			now = time.Now()
		)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		re := newRedisEngine(t, c, prefix, redisEngineOptions{pusher: pusher, now: clock})
		eng, store, bs := re.eng, re.store, re.bus
		alice := sig.Caller{User: "alice", Session: 1}
		// Quotes, a backslash, HTML characters and a line separator:
		// encoding/json escapes each.
		odd := []string{`c"a\r<o>l&`, "d\u2028a\u2029ve", "émile 📞"}
		invitees := append([]string{"bob"}, odd...)
		if _, err := store.AddMembers(ctx, "team", append([]string{"alice"}, invitees...)); err != nil {
			t.Fatal(err)
		}
		// The first timeout on a server loads the script.
		if _, err := eng.Invite(ctx, alice, sig.InviteRequest{Invitees: []string{"warm"}, Timeout: 30}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		now = now.Add(31 * time.Second)
		mu.Unlock()
		eng.FireDue(ctx)

		id, err := eng.Invite(ctx, alice, sig.InviteRequest{GroupID: "team", Invitees: invitees, Timeout: 30})
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Accept(ctx, sig.Caller{User: "bob", Session: 2}, id, ""); err != nil {
			t.Fatal(err)
		}
		// With offline pushes the engine tells the store, later and in
		// batches, which announcements are done (announced.lua): the
		// accept's here, before the count.
		eng.FireDue(ctx)
		mu.Lock()
		now = now.Add(31 * time.Second)
		mu.Unlock()
		trips.reset()
		eng.FireDue(ctx)
		if n := trips.scriptsNaming(id); n != 1 {
			t.Errorf("timeout: %d script round trips naming the invitation, want 1", n)
		}

		want := protocol.Event{Event: "onInvitationTimeout", InviteID: id, InviteeList: odd}.Encode()
		for _, u := range append([]string{"alice", "bob"}, odd...) {
			evs, _, err := bs.Replay(ctx, u, "")
			if err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			for _, e := range evs {
				if strings.Contains(string(e.Frame), "onInvitationTimeout") && strings.Contains(string(e.Frame), id) {
					got = append(got, e.Frame)
				}
			}
			if u == "bob" {
				if len(got) != 0 {
					t.Errorf("bob, who accepted, has %d kept timeouts of it, want none", len(got))
				}
				continue
			}
			if len(got) != 1 {
				t.Errorf("%q has %d kept timeouts of it, want 1", u, len(got))
				continue
			}
			if w := bus.WithEventID(want, bus.EventIDOf(got[0])); string(got[0]) != string(w) {
				t.Errorf("%q's timeout frame\n%s\nwant\n%s", u, got[0], w)
			}
		}
		inv, err := store.Get(ctx, id, sig.Millis(clock()))
		if err != nil {
			t.Fatal(err)
		}
		if pusher != nil {
			return // the pushes are recorded, then the engine tells the store
		}
		for token := range inv.Unannounced {
			t.Errorf("the timeout's outbox entry %s is left, want it forgotten in the step", token)
		}
	})
}
