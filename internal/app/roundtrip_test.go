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

	"github.com/signald/signald/internal/hub"
	sig "github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/redisbus"
	"github.com/signald/signald/internal/redisstore"
	"github.com/signald/signald/internal/redistest"
	"github.com/signald/signald/internal/server"
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
// for every invitee (issue #11); the offline pushes get the foreground
// devices that round trip read. When the publishing part fails (here, an
// invitee's stream of the wrong type), the invitation stands and its ring
// is announced again until it is kept, once.
func TestInviteIsOneRoundTrip(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
	busDone := make(chan error, 1)
	go func() { busDone <- bs.Run(ctx) }()
	defer func() { cancel(); <-busDone }()
	pub, err := server.NewPublisher(bs, reg)
	if err != nil {
		t.Fatal(err)
	}
	rings := &ringLog{rings: map[string][][]string{}}
	eng, err := sig.NewEngine(sig.DefaultConfig(), sig.Deps{
		Store: store, Quotas: store, Groups: store, Publisher: pub, Pusher: rings, Logger: logger, Registry: reg, Node: "n1",
	})
	if err != nil {
		t.Fatal(err)
	}
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
	if _, err := eng.Invite(ctx, alice, sig.InviteRequest{Invitees: []string{"dave"}, Timeout: 30}); err != nil {
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
	if err := c.Del(ctx, streamKey).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "carol's ring kept after her stream is back", func() error {
		if n := kept("carol", id); n != 1 {
			return fmt.Errorf("carol has %d kept rings of it", n)
		}
		return nil
	})
	if n := kept("bob", id); n != 1 {
		t.Errorf("bob has %d kept rings of the invitation announced again, want 1", n)
	}
}
