package systemtest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/signald/signald/internal/protocol"
)

// TestOpenFileLimit: signald runs under a limit of 256 open files. Clients
// connect until it is full: the ones over its connection cap (the limit
// less a reserve, 192 here) are answered 503 at once, it never runs out of
// descriptors (no accept(2) error), and the connections it holds keep
// working, Redis included. Once some leave, new ones get in again.
func TestOpenFileLimit(t *testing.T) {
	requireBinary(t)
	prlimit := requireTool(t, "prlimit", "apt-get install util-linux")
	rs := startRedis(t, "redis")
	dep := newDeployment(t, "redis://"+rs.addr, "single", nil)
	dep.wrap = []string{prlimit, "--nofile=256:256"}
	n := dep.start("node1")
	if !strings.Contains(n.out.String(), "maxConnections=192") {
		t.Fatalf("signald did not derive its cap from the file limit:\n%s", n.out.String())
	}

	var held []*device
	refused := 0
	for i := range 220 {
		user := "u" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		c, resp, err := websocket.Dial(ctx, n.ws(), nil)
		cancel()
		if err != nil {
			if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("connection %d: %v (response %v), want a 503 at the cap", i, err, resp)
			}
			refused++
			continue
		}
		_ = c.CloseNow()
		held = append(held, login(t, n.ws(), user))
	}
	if refused == 0 || len(held) > 192 {
		t.Fatalf("%d connections held and %d refused; want at most 192 held and the rest refused", len(held), refused)
	}
	t.Logf("held %d connections, refused %d", len(held), refused)

	// The connections it holds work, Redis included.
	first, last := held[0], held[len(held)-1]
	f := first.must(protocol.OpInvite, map[string]any{"invitee": last.user, "data": "full house"})
	id := strings.Trim(string(f.Data), `"`)
	if ev := last.next(); ev.Event != "onReceiveNewInvitation" || ev.InviteID != id {
		t.Fatalf("the invitee got %+v", ev)
	}
	last.must(protocol.OpAccept, map[string]any{"inviteID": id})
	if ev := first.next(); ev.Event != "onInviteeAccepted" {
		t.Fatalf("the inviter got %+v", ev)
	}

	// Some leave: others get in.
	for _, d := range held[1:11] {
		_ = d.c.Close()
	}
	eventually(t, "a new connection once some left", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, n.ws(), nil)
		if err != nil {
			return err
		}
		_ = c.CloseNow()
		return nil
	})
	login(t, n.ws(), "newcomer").must(protocol.OpPing, nil)
	if out := n.out.String(); strings.Contains(out, "too many open files") {
		t.Fatalf("signald ran out of descriptors:\n%s", out)
	}
	if !n.running() {
		t.Fatal(errors.New("signald exited"))
	}
}

// TestRedisOutageAsAnOperatorSeesIt: two instances logging JSON. Every
// Redis connection they hold is named after its instance (CLIENT SETNAME
// signald-<node>), their Pub/Sub connections included, so that CLIENT LIST
// tells them apart. When Redis goes away each logs it once, and once when
// it is back, and every line they write meanwhile, go-redis's own
// included, is JSON.
func TestRedisOutageAsAnOperatorSeesIt(t *testing.T) {
	requireBinary(t)
	rs := startRedis(t, "redis")
	dep := newDeployment(t, "redis://"+rs.addr, "single", map[string]string{"SIGNALD_LOG_FORMAT": "json"})
	ins := dep.startN(2)
	for _, in := range ins {
		login(t, in.ws(), "user-"+in.node) // a Pub/Sub subscription on each
	}
	v, err := rs.do("CLIENT", "LIST")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	subs := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(v.(string)), "\n") {
		f := clientFields(l)
		if f["cmd"] == "client|list" {
			continue // this test's own
		}
		byName[f["name"]]++
		if f["ssub"] != "0" && f["ssub"] != "" {
			subs[f["name"]]++
		}
	}
	for name, n := range byName {
		if name != "signald-node1" && name != "signald-node2" {
			t.Fatalf("%d Redis connection(s) named %q; CLIENT LIST:\n%s", n, name, v)
		}
	}
	if subs["signald-node1"] != 1 || subs["signald-node2"] != 1 {
		t.Fatalf("Pub/Sub connections by name %v, want one per instance; CLIENT LIST:\n%s", subs, v)
	}

	rs.stop()
	allReadyz(t, http.StatusServiceUnavailable, ins...)
	// A login meanwhile fails, and go-redis logs its failed dials.
	c := dial(t, ins[0].ws())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	f, err := c.Call(ctx, protocol.OpLogin, map[string]any{"userID": "tester", "userSig": token(t, "tester")})
	cancel()
	if err != nil || f.Code != protocol.CodeInternal {
		t.Fatalf("login while Redis is down: %+v, %v; want code %d", f, err, protocol.CodeInternal)
	}
	rs.restart()
	allReadyz(t, http.StatusOK, ins...)
	for _, in := range ins {
		eventually(t, in.node+" logs Redis back", func() error {
			if !strings.Contains(in.out.String(), "store reachable again") {
				return errors.New("not yet")
			}
			return nil
		})
		out := in.out.String()
		if lost, back := strings.Count(out, "store unreachable"), strings.Count(out, "store reachable again"); lost != 1 || back != 1 {
			t.Fatalf("%s logged Redis lost %d times and back %d times, want once each:\n%s", in.node, lost, back, out)
		}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%s wrote a line that is not JSON: %q", in.node, l)
			}
		}
		if !strings.Contains(out, `"component":"go-redis"`) {
			t.Logf("%s: go-redis logged nothing during the outage", in.node)
		}
	}
}

// clientFields splits a CLIENT LIST line into its key=value fields.
func clientFields(line string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Fields(line) {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}
