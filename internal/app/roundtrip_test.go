package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	sig "github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/redistest"
)

// tripLog is a client hook that records, per round trip to Redis (a
// command or a pipeline), the keys and channels of its commands.
type tripLog struct {
	mu    sync.Mutex
	trips [][]string // guarded by mu
}

func (l *tripLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *tripLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		l.record(cmd)
		return err
	}
}

func (l *tripLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		l.record(cmds...)
		return err
	}
}

// record notes a round trip, once answered.
func (l *tripLog) record(cmds ...redis.Cmder) {
	var words []string
	for _, c := range cmds {
		for _, a := range c.Args() {
			words = append(words, fmt.Sprint(a))
		}
	}
	l.mu.Lock()
	l.trips = append(l.trips, words)
	l.mu.Unlock()
}

// naming counts the round trips since the last reset that name a key of
// user (its hash tag), and resets.
func (l *tripLog) naming(user string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, words := range l.trips {
		for _, w := range words {
			if strings.Contains(w, "{"+user+"}") || strings.Contains(w, "{u:"+user+"}") {
				n++
				break
			}
		}
	}
	l.trips = nil
	return n
}

func (l *tripLog) reset() { l.naming("") }

// scriptsNaming counts the round trips since the last reset that run a
// script and name s anywhere (a key, an argument, a frame), and resets.
func (l *tripLog) scriptsNaming(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, words := range l.trips {
		script, named := false, false
		for _, w := range words {
			script = script || strings.EqualFold(w, "evalsha") || strings.EqualFold(w, "eval")
			named = named || strings.Contains(w, s)
		}
		if script && named {
			n++
		}
	}
	l.trips = nil
	return n
}

// ringLog is the engine's offline pusher, recording the rings asked for.
type ringLog struct {
	mu    sync.Mutex
	rings map[string][][]string // inviteID → foreground; guarded by mu
}

func (r *ringLog) Ring(_ context.Context, inv *sig.Invitation, foreground [][]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rings[inv.ID] = foreground
	return nil
}

func (r *ringLog) End(context.Context, *sig.Invitation, []string, string, string) error { return nil }

func (r *ringLog) get(id string) ([][]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fg, ok := r.rings[id]
	return fg, ok
}

// TestInviteIsOneRoundTrip: on a single Redis an invite, 1:1 or to a group,
// is one round trip, which admits, stores and keeps and publishes the ring
// for every invitee (issue #11), and so is an answer, which also reads its
// audience; the offline pushes get the foreground devices that round trip
// read. When the publishing part fails (here, an invitee's stream of the
// wrong type), the invitation stands and its ring is announced again until
// it is kept, once, and a later answer waits for it. Without offline
// pushes the step also forgets the outbox entry.
func TestInviteIsOneRoundTrip(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, prefix := redistest.NewClient(t)
	trips := &tripLog{}
	c.AddHook(trips)
	rings := &ringLog{rings: map[string][][]string{}}
	re := newRedisEngine(t, c, prefix, redisEngineOptions{pusher: rings, runBus: true})
	eng, store, bs, pub := re.eng, re.store, re.bus, re.pub
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(ctx) }()
	defer func() { cancel(); <-engDone }()

	if _, err := store.AddMembers(ctx, "team", []string{"alice", "bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	if err := bs.SetForeground(ctx, "bob", "phone", true); err != nil {
		t.Fatal(err)
	}
	alice := sig.Caller{User: "alice", Session: 1}
	outbox := func(id string) []string {
		t.Helper()
		fields, err := c.HKeys(ctx, prefix+"inv:{"+id+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range fields {
			if strings.HasPrefix(f, "a:") {
				out = append(out, f)
			}
		}
		return out
	}
	keptKind := func(user, id, kind string) int {
		t.Helper()
		evs, _, err := bs.Replay(ctx, user, "")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs {
			f := string(e.Frame)
			if strings.Contains(f, `"inviteID":"`+id+`"`) && strings.Contains(f, `"event":"`+kind+`"`) {
				n++
			}
		}
		return n
	}
	kept := func(user, id string) int {
		t.Helper()
		evs, _, err := bs.Replay(ctx, user, "")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs {
			if strings.Contains(string(e.Frame), `"inviteID":"`+id+`"`) {
				n++
			}
		}
		return n
	}

	// The first invite on a server loads the script: go-redis sends its
	// hash first, then, refused, the script itself.
	warm, err := eng.Invite(ctx, alice, sig.InviteRequest{Invitees: []string{"dave"}, Timeout: 30})
	if err != nil {
		t.Fatal(err)
	}
	trips.reset()
	id, err := eng.Invite(ctx, alice, sig.InviteRequest{Invitees: []string{"bob"}, Timeout: 30})
	if err != nil {
		t.Fatal(err)
	}
	if n := trips.naming("bob"); n != 1 {
		t.Errorf("invite: %d round trips naming the invitee's keys, want 1", n)
	}
	if n := kept("bob", id); n != 1 {
		t.Errorf("invite: bob has %d kept rings of it, want 1", n)
	}
	if fg, ok := rings.get(id); !ok || len(fg) != 1 || len(fg[0]) != 1 || fg[0][0] != "phone" {
		t.Errorf("invite: ring pushed with foreground %v (asked: %v), want [[phone]]", fg, ok)
	}

	trips.reset()
	// bob accepts: one round trip applies it and tells alice and bob. With
	// offline pushes on, the ring stays in the outbox until the pushes are
	// recorded and the engine tells the store, and an answer waits for it:
	// wait for that. The first answer loads the script (dave's).
	bob := sig.Caller{User: "bob", Session: 2}
	if err := eng.Accept(ctx, sig.Caller{User: "dave", Session: 3}, warm, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ring's outbox entry forgotten", func() error {
		if e := outbox(id); len(e) != 0 {
			return fmt.Errorf("outbox entries %v", e)
		}
		return nil
	})
	trips.reset()
	if err := eng.Accept(ctx, bob, id, "ok"); err != nil {
		t.Fatal(err)
	}
	if n := trips.scriptsNaming(id); n != 1 {
		t.Errorf("accept: %d script round trips naming the invitation, want 1", n)
	}
	for _, u := range []string{"alice", "bob"} {
		if n := keptKind(u, id, "onInviteeAccepted"); n != 1 {
			t.Errorf("accept: %s has %d kept onInviteeAccepted of it, want 1", u, n)
		}
	}

	trips.reset()
	id, err = eng.Invite(ctx, alice, sig.InviteRequest{GroupID: "team", Invitees: []string{"bob", "carol"}, Timeout: 30})
	if err != nil {
		t.Fatal(err)
	}
	// FirstNonMember reads the group, a round trip of its own that names
	// no user's keys; the rest is one.
	if n := trips.naming("carol"); n != 1 {
		t.Errorf("inviteInGroup: %d round trips naming an invitee's keys, want 1", n)
	}
	for _, u := range []string{"bob", "carol"} {
		if n := kept(u, id); n != 1 {
			t.Errorf("inviteInGroup: %s has %d kept rings of it, want 1", u, n)
		}
	}

	// carol's stream cannot take an entry: the invite is stored all the
	// same, answered, and rung once her stream is back.
	streamKey := prefix + "ev:{u:carol}"
	if err := c.Del(ctx, streamKey).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, streamKey, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	id, err = eng.Invite(ctx, alice, sig.InviteRequest{GroupID: "team", Invitees: []string{"bob", "carol"}, Timeout: 30})
	if err != nil {
		t.Fatalf("invite with a failing publish: %v, want success (stored; rung later)", err)
	}
	if _, err := store.Get(ctx, id, sig.Millis(time.Now())); err != nil {
		t.Fatalf("the invitation is not stored: %v", err)
	}
	// bob rejects while the ring is still in the outbox: the rejection is
	// not published before the ring, in the step or after it.
	if err := eng.Reject(ctx, bob, id, ""); err != nil {
		t.Fatal(err)
	}
	if n := keptKind("alice", id, "onInviteeRejected"); n != 0 {
		t.Errorf("the rejection reached alice before the ring was kept for carol (%d kept)", n)
	}
	if err := c.Del(ctx, streamKey).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "carol's ring and bob's rejection kept after her stream is back", func() error {
		if n, m := keptKind("carol", id, "onReceiveNewInvitation"), keptKind("carol", id, "onInviteeRejected"); n != 1 || m != 1 {
			return fmt.Errorf("carol has %d kept rings and %d rejections of it", n, m)
		}
		return nil
	})
	if evs, _, err := bs.Replay(ctx, "carol", ""); err != nil || len(evs) < 2 ||
		!strings.Contains(string(evs[len(evs)-2].Frame), "onReceiveNewInvitation") || !strings.Contains(string(evs[len(evs)-1].Frame), "onInviteeRejected") {
		t.Errorf("carol's last two events are not the ring, then the rejection (%v)", err)
	}
	if n := kept("bob", id); n != 2 {
		t.Errorf("bob has %d kept events of the invitation announced again, want 2 (ring, rejection)", n)
	}

	// With no offline pushes nothing is left to do once the event is
	// published: the step forgets the outbox entry too.
	quiet, err := sig.NewEngine(sig.DefaultConfig(), sig.Deps{
		Store: store, Quotas: store, Groups: store, Publisher: pub, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: prometheus.NewRegistry(), Node: "n2",
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err = quiet.Invite(ctx, alice, sig.InviteRequest{Invitees: []string{"erin"}, Timeout: 30})
	if err != nil {
		t.Fatal(err)
	}
	if e := outbox(id); len(e) != 0 || kept("erin", id) != 1 {
		t.Errorf("invite without pushes: outbox entries %v left, erin has %d rings; want none, 1", e, kept("erin", id))
	}
	if err := quiet.Cancel(ctx, alice, id, ""); err != nil {
		t.Fatal(err)
	}
	if e := outbox(id); len(e) != 0 || keptKind("erin", id, "onInvitationCancelled") != 1 {
		t.Errorf("cancel without pushes: outbox entries %v left; want none, and erin told", e)
	}
}
