package app_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	sig "github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/redistest"
)

// lossyProxy forwards TCP to Redis; when armed with a trigger, the first
// request containing it is forwarded (and so executed), but its reply is
// dropped and the connection closed: a reply lost on the way back, which
// go-redis answers by sending the command again on a new connection.
type lossyProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	trigger string // guarded by mu
	fired   atomic.Int32
	onDrop  func() // run once a reply is dropped, before the client sees the break
}

func newLossyProxy(t *testing.T, target string) *lossyProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *lossyProxy) arm(s string) {
	p.mu.Lock()
	p.trigger = s
	p.mu.Unlock()
}

func (p *lossyProxy) serve(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	var drop atomic.Bool
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				p.mu.Lock()
				if p.trigger != "" && strings.Contains(string(buf[:n]), p.trigger) {
					p.trigger = ""
					drop.Store(true)
				}
				p.mu.Unlock()
				if _, werr := s.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		s.Close()
		c.Close()
	}()
	buf := make([]byte, 1<<16)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if drop.Load() {
				p.fired.Add(1)
				if p.onDrop != nil {
					p.onDrop()
				}
				break // the reply is lost
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	s.Close()
	c.Close()
}

type nopPusher struct{}

func (nopPusher) Ring(context.Context, *sig.Invitation, [][]string) error { return nil }
func (nopPusher) End(context.Context, *sig.Invitation, []string, string, string) error {
	return nil
}

// TestLostReplyResent: a reply lost after the joined script ran; go-redis
// sends it again. The request must still succeed, as it does with the
// outbox entry kept (a pusher) and as transition.lua/create.lua promise.
func TestLostReplyResent(t *testing.T) {
	eachPusher(t, func(t *testing.T, pusher sig.OfflinePusher) {
		ctx := context.Background()
		_, prefix := redistest.NewClient(t)
		proxy := newLossyProxy(t, redistest.Addr(t))
		c := redis.NewClient(&redis.Options{Addr: proxy.ln.Addr().String()})
		t.Cleanup(func() { _ = c.Close() }) // after the bus stops: cleanups run last first
		re := newRedisEngine(t, c, prefix, redisEngineOptions{pusher: pusher, runBus: true})
		eng, store := re.eng, re.store
		alice := sig.Caller{User: "alice", Session: 1}
		bob := sig.Caller{User: "bob", Session: 2}
		// Warm: load both joined scripts.
		w, err := eng.Invite(ctx, alice, sig.InviteRequest{Invitees: []string{"bob"}, Timeout: 30})
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Accept(ctx, bob, w, ""); err != nil {
			t.Fatal(err)
		}

		// Invite, its reply lost.
		proxy.arm("{zed}")
		id, err := eng.Invite(ctx, alice, sig.InviteRequest{Invitees: []string{"zed"}, Timeout: 30})
		if proxy.fired.Load() == 0 {
			t.Fatal("the proxy did not drop a reply")
		}
		if err != nil {
			pend, _ := store.PendingFor(ctx, "zed", sig.Millis(time.Now()))
			t.Errorf("invite, reply lost and retried: %v (errors.Is ErrExists: %v); yet zed has %d pending invitation(s) stored and rung",
				err, errors.Is(err, sig.ErrExists), len(pend))
			if id, err = eng.Invite(ctx, alice, sig.InviteRequest{Invitees: []string{"zed"}, Timeout: 30}); err != nil {
				t.Fatal(err)
			}
		}
		// Accept, its reply lost.
		zed := sig.Caller{User: "zed", Session: 3}
		proxy.arm(id)
		err = eng.Accept(ctx, zed, id, "")
		if proxy.fired.Load() < 2 {
			t.Fatal("the proxy did not drop the accept's reply")
		}
		if err != nil {
			inv, _ := store.Get(ctx, id, sig.Millis(time.Now()))
			st := sig.State("")
			if inv != nil {
				st = inv.States["zed"]
			}
			t.Errorf("accept, reply lost and retried: %v (ErrEnded: %v); stored state of zed: %q", err, errors.Is(err, sig.ErrEnded), st)
		}
	})
}

// TestLostModifyReplyNotReapplied: a modify whose reply is lost, while the
// inviter's other device modifies on another instance, is applied a second
// time by go-redis's retry once the step forgot its token: the stored data
// goes back to the older value, and nobody hears of it (Once).
func TestLostModifyReplyNotReapplied(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	direct, prefix := redistest.NewClient(t)
	proxy := newLossyProxy(t, redistest.Addr(t))
	c := redis.NewClient(&redis.Options{Addr: proxy.ln.Addr().String()})
	defer c.Close()
	a := newRedisEngine(t, c, prefix, redisEngineOptions{node: "a"})
	engA, store, bsA := a.eng, a.store, a.bus
	engB := newRedisEngine(t, direct, prefix, redisEngineOptions{node: "b"}).eng
	alice := sig.Caller{User: "alice", Session: 1}
	alice2 := sig.Caller{User: "alice", Session: 9}
	id, err := engA.Invite(ctx, alice, sig.InviteRequest{Invitees: []string{"bob"}, Timeout: 60})
	if err != nil {
		t.Fatal(err)
	}
	if err := engA.Modify(ctx, alice, id, "warm"); err != nil { // loads the joined script
		t.Fatal(err)
	}
	proxy.onDrop = func() {
		if err := engB.Modify(ctx, alice2, id, "y"); err != nil {
			t.Errorf("modify y: %v", err)
		}
	}
	proxy.arm(id)
	err = engA.Modify(ctx, alice, id, "x")
	if proxy.fired.Load() == 0 {
		t.Fatal("no reply dropped")
	}
	if err != nil {
		t.Errorf("modify x, its reply lost and the script sent again: %v, want success", err)
	}
	inv, err := store.Get(ctx, id, sig.Millis(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	evs, _, _ := bsA.Replay(ctx, "bob", "")
	var heard []string
	for _, e := range evs {
		if strings.Contains(string(e.Frame), "onInvitationModified") {
			heard = append(heard, string(e.Frame))
		}
	}
	if inv.Data != "y" || len(heard) != 3 || !strings.Contains(heard[2], `"data":"y"`) {
		t.Errorf("stored data %q after x then y, bob heard %d modifications (%v); want y, 3 (warm, x, y), the last y", inv.Data, len(heard), heard)
	}
}
