package app_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/signald/signald/client"
	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/apptest"
	sig "github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/redistest"
)

// TestEndedAtOnceLeavesNothing: an invitation whose retention has passed by
// the time it ends (--retention 0, or a signald clock behind Redis's by
// more than the retention) is gone once it ends, on a single Redis where
// the step that ends it also forgets its outbox entry. It once left a hash
// holding only the entry's done marker, without expiry: a key kept forever
// per call, and getSignalingInfo answering 90994 instead of 8010.
func TestEndedAtOnceLeavesNothing(t *testing.T) {
	eachPusher(t, func(t *testing.T, pusher sig.OfflinePusher) {
		ctx := context.Background()
		c, prefix := redistest.NewClient(t)
		cfg := sig.DefaultConfig()
		cfg.Retention = 0
		eng := newRedisEngine(t, c, prefix, redisEngineOptions{cfg: &cfg, pusher: pusher, runBus: true}).eng
		alice := sig.Caller{User: "alice", Session: 1}
		for _, end := range []string{"cancel", "reject"} {
			id, err := eng.Invite(ctx, alice, sig.InviteRequest{Invitees: []string{"bob"}, Timeout: 30})
			if err != nil {
				t.Fatal(err)
			}
			if end == "cancel" {
				err = eng.Cancel(ctx, alice, id, "")
			} else {
				err = eng.Reject(ctx, sig.Caller{User: "bob", Session: 2}, id, "")
			}
			if err != nil {
				t.Fatal(err)
			}
			key := prefix + "inv:{" + id + "}"
			if h := c.HGetAll(ctx, key).Val(); len(h) != 0 {
				t.Errorf("%s: the ended invitation left %v (PTTL %v)", end, h, c.PTTL(ctx, key).Val())
			}
			if _, err := eng.Get(ctx, alice, id); !errors.Is(err, sig.ErrNotFound) {
				t.Errorf("%s: getSignalingInfo after the end: %v, want ErrNotFound", end, err)
			}
		}
	})
}

// TestOnlineUserOnlyTimeoutIsNotKept: the timeout of an onlineUserOnly
// invitation reaches the inviter and the invitee live, listing the
// invitee, and is kept for neither (no eventID, nothing to replay), on
// every store: on a single Redis its step writes it with the live
// arguments.
func TestOnlineUserOnlyTimeoutIsNotKept(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		alice, bob := dm.login("alice"), dm.login("bob")
		id := invite(t, alice, map[string]any{"invitee": "bob", "data": "", "timeout": 1, "onlineUserOnly": true})
		if f := expectEvent(t, bob, "onReceiveNewInvitation", id); f.EventID != "" {
			t.Errorf("the ring carries eventID %q, want none", f.EventID)
		}
		for name, c := range map[string]*client.Conn{"alice": alice, "bob": bob} {
			f := expectEvent(t, c, "onInvitationTimeout", id)
			if f.EventID != "" || !slices.Equal(f.InviteeList, []string{"bob"}) {
				t.Errorf("%s's timeout: eventID %q, inviteeList %v; want none and [bob]", name, f.EventID, f.InviteeList)
			}
		}
	})
}
