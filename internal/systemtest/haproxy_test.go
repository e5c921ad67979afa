package systemtest

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// startHAProxy fills deploy/haproxy/haproxy-test.cfg.tmpl with a free
// frontend port and the instances, runs haproxy in the foreground, and
// waits until a request through it reaches a ready instance. It returns the
// frontend's address.
func startHAProxy(t *testing.T, bin string, ins []*instance) string {
	t.Helper()
	tmpl, err := os.ReadFile(filepath.Join(moduleRoot, "deploy", "haproxy", "haproxy-test.cfg.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 3 {
		t.Fatalf("the template balances three instances, not %d", len(ins))
	}
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		cfg := strings.ReplaceAll(string(tmpl), "{{FRONTEND_PORT}}", strconv.Itoa(port))
		for i, in := range ins {
			cfg = strings.ReplaceAll(cfg, fmt.Sprintf("{{BACKEND%d}}", i+1), in.addr)
		}
		if strings.Contains(cfg, "{{") {
			t.Fatalf("placeholder left in the HAProxy template:\n%s", cfg)
		}
		file := filepath.Join(t.TempDir(), "haproxy.cfg")
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, "haproxy", nil, bin, "-f", file, "-db")
		addr := "127.0.0.1:" + strconv.Itoa(port)
		err := waitHTTP(p, "http://"+addr+"/readyz", http.StatusOK)
		if err == nil {
			return addr
		}
		if attempt < 2 && strings.Contains(p.out.String(), "cannot bind") {
			p.kill()
			continue
		}
		t.Fatalf("haproxy on %s: %v", addr, err)
	}
}

// waitHTTP waits until url answers want, while p runs.
func waitHTTP(p *proc, url string, want int) error {
	deadline := time.Now().Add(waitFor)
	var last error
	for time.Now().Before(deadline) {
		if !p.running() {
			return fmt.Errorf("%w: %s", errExited, p.status())
		}
		code, err := httpStatus(url)
		if err == nil && code == want {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("answered %d", code)
		}
		time.Sleep(pollEvery)
	}
	return fmt.Errorf("%s not %d within %v; last: %v", url, want, waitFor, last)
}

// TestThroughHAProxy: clients reach three instances through HAProxy
// (leastconn, health checks on /readyz). Calls work whichever instance each
// side landed on. Then a rolling restart: SIGTERM to one instance; during
// its drain HAProxy takes it out; its clients are closed with 1012,
// reconnect through HAProxy, resume with lastEventID and miss nothing of
// what happened while they were away.
func TestThroughHAProxy(t *testing.T) {
	requireBinary(t)
	haproxy := requireTool(t, "haproxy", "the Makefile's deps step (make deps, run by make test) installs Debian's haproxy")
	rs := startRedis(t, "redis")
	dep := newDeployment(t, "redis://"+rs.addr, "single", map[string]string{
		// Long enough for the checks made during the drain, on a busy machine.
		"SIGNALD_DRAIN_PERIOD":   "5s",
		"SIGNALD_CLOSE_BATCH":    "1",
		"SIGNALD_CLOSE_INTERVAL": "50ms",
	})
	ins := dep.startN(3)
	lb := "ws://" + startHAProxy(t, haproxy, ins) + "/v1/ws"

	type pair struct{ caller, callee *device }
	var pairs []pair
	var all []*device
	for _, p := range [][2]string{{"alice", "bob"}, {"carol", "dave"}, {"erin", "frank"}} {
		pr := pair{login(t, lb, p[0]), login(t, lb, p[1])}
		pairs = append(pairs, pr)
		all = append(all, pr.caller, pr.callee)
	}
	var spread []string
	for _, in := range ins {
		spread = append(spread, fmt.Sprintf("%s:%v", in.node, in.metric("signald_websocket_connections")))
	}
	t.Logf("connections through HAProxy per instance: %s", strings.Join(spread, " "))
	onNode1 := int(ins[0].metric("signald_websocket_connections"))
	if onNode1 == 0 {
		t.Fatalf("HAProxy (leastconn) sent none of %d connections to node1: %s", len(all), strings.Join(spread, " "))
	}

	// A whole call per pair, wherever its two sides are.
	call := func(p pair) {
		t.Helper()
		id := p.caller.invite(map[string]any{"invitee": p.callee.user, "data": `{"cmd":"videoCall"}`, "timeout": 30})
		if f := p.callee.expectEvent("onReceiveNewInvitation", id); f.Inviter != p.caller.user {
			t.Fatalf("ring %s", describe(f))
		}
		p.callee.must(protocol.OpAccept, map[string]any{"inviteID": id, "data": "ok"})
		if f := p.caller.expectEvent("onInviteeAccepted", id); f.Invitee != p.callee.user || f.EventData() != "ok" {
			t.Fatalf("accepted %s", describe(f))
		}
	}
	for _, p := range pairs {
		call(p)
	}

	// Every user is rung by ops, whose connection goes straight to node2,
	// which stays up.
	ops := login(t, ins[1].ws(), "ops")
	rung := map[*device]string{}
	for _, d := range all {
		id := ops.invite(map[string]any{"invitee": d.user, "data": "ring", "timeout": 0})
		d.expectEvent("onReceiveNewInvitation", id)
		rung[d] = id
	}
	for _, d := range all {
		d.expectQuiet()
	}

	// Rolling restart of node1: SIGTERM; during the drain its /readyz says
	// 503 (HAProxy takes it out) while its clients are still served.
	sigterm := time.Now()
	ins[0].signal(syscall.SIGTERM)
	ins[0].mustReadyz(http.StatusServiceUnavailable)
	for _, d := range all {
		d.must(protocol.OpPing, nil)
	}
	ins[0].waitExit(15 * time.Second)
	t.Logf("node1 drained and exited %v after SIGTERM", time.Since(sigterm).Round(time.Millisecond))
	if c := ins[0].exitCode(); c != 0 {
		t.Fatalf("node1 exited with status %d after SIGTERM", c)
	}
	closed := func() []*device {
		var out []*device
		for _, d := range all {
			if d.isClosed() {
				out = append(out, d)
			}
		}
		return out
	}
	eventually(t, "node1's connections closed", func() error {
		if n := len(closed()); n != onNode1 {
			return fmt.Errorf("%d connections closed, but node1 had %d", n, onNode1)
		}
		return nil
	})
	away := closed()
	var stayed []*device
	for _, d := range all {
		if d.isClosed() {
			if st := d.closedWith(0); st != 1012 {
				t.Fatalf("%s was closed with status %d, want 1012 (service restart)", d.user, st)
			}
		} else {
			stayed = append(stayed, d)
		}
	}

	// While they are away, their invitations change and end.
	for _, d := range all {
		ops.must(protocol.OpModifyInvitation, map[string]any{"inviteID": rung[d], "data": "while away"})
		ops.must(protocol.OpCancel, map[string]any{"inviteID": rung[d], "data": "bye"})
	}
	check := func(d *device) {
		t.Helper()
		if f := d.expectEvent("onInvitationModified", rung[d]); f.EventData() != "while away" {
			t.Fatalf("%s: %s", d.user, describe(f))
		}
		if f := d.expectEvent("onInvitationCancelled", rung[d]); f.EventData() != "bye" {
			t.Fatalf("%s: %s", d.user, describe(f))
		}
		d.expectQuiet()
	}
	for _, d := range stayed {
		check(d)
	}
	for _, d := range away {
		data := d.resume(lb)
		if data["recovered"] != true {
			t.Fatalf("%s resuming through HAProxy: login data %v, want recovered true", d.user, data)
		}
		check(d)
	}
	// After the restart every pair can call again.
	for _, p := range pairs {
		call(p)
	}
	for _, d := range append(all, ops) {
		d.expectQuiet()
	}
}
