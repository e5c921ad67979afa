package app_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signald/signald/internal/bus"
	"github.com/signald/signald/internal/hub"
	sig "github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/protocol"
	"github.com/signald/signald/internal/redisbus"
	"github.com/signald/signald/internal/redisstore"
	"github.com/signald/signald/internal/redistest"
	"github.com/signald/signald/internal/server"
)

// TestTimeoutIsOneRoundTrip: on a single Redis a timeout is one round trip
// (beside the claim and the release, one each for a whole batch), which
// times the pending invitees out and keeps and publishes the event for the
// inviter and them: its frame, listing who timed out, written by the
// script byte for byte as the server's encoder writes it, IDs that JSON
// must escape included. With and without offline pushes.
func TestTimeoutIsOneRoundTrip(t *testing.T) {
	for _, withPusher := range []bool{false, true} {
		name := "complete(no pusher)"
		if withPusher {
			name = "pusher"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c, prefix := redistest.NewClient(t)
			trips := &tripLog{}
			c.AddHook(trips)
			reg := prometheus.NewRegistry()
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			store, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			hb, err := hub.NewHub(reg, sig.EventNames()...)
			if err != nil {
				t.Fatal(err)
			}
			bs, err := redisbus.New(redisbus.Options{Client: c, Prefix: prefix, Node: "n1", Hub: hb, Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			pub, err := server.NewPublisher(bs, reg)
			if err != nil {
				t.Fatal(err)
			}
			var (
				mu  sync.Mutex
				now = time.Now()
			)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			deps := sig.Deps{Store: store, Quotas: store, Groups: store, Publisher: pub, Logger: logger, Registry: reg, Node: "n1", Now: clock}
			if withPusher {
				deps.Pusher = nopPusher{}
			}
			eng, err := sig.NewEngine(sig.DefaultConfig(), deps)
			if err != nil {
				t.Fatal(err)
			}
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
			if withPusher {
				return // the pushes are recorded, then the engine tells the store
			}
			for token := range inv.Unannounced {
				t.Errorf("the timeout's outbox entry %s is left, want it forgotten in the step", token)
			}
		})
	}
}
