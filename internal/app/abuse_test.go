package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/apptest"
	invitepkg "github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/protocol"
)

// Each test here is an attack by someone allowed to connect, or by anyone,
// and checks that the victim, or the server, is unharmed.

// rawDial opens a WebSocket without the test client, for frames it would
// never send.
func rawDial(t *testing.T, dm *daemon) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, _, err := websocket.Dial(ctx, dm.ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// closeStatus reads c until it closes and returns the close status.
func closeStatus(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("the connection was not closed")
			}
			return websocket.CloseStatus(err)
		}
	}
}

// TestAttackInvalidUTF8 sends a text frame that is not UTF-8: RFC 6455 says
// the connection fails (1007); the server goes on serving others.
func TestAttackInvalidUTF8(t *testing.T) {
	apptest.CheckLeaks(t)
	dm := startDaemon(t, apptest.Options(t, "memory"))
	c := rawDial(t, dm)
	if err := c.Write(context.Background(), websocket.MessageText, []byte("{\"id\":1,\"op\":\"ping\",\"x\":\"\xff\"}")); err != nil {
		t.Fatal(err)
	}
	if st := closeStatus(t, c); st != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("closed with %d, want 1007", st)
	}
	mustCall(t, dm.login("alice"), protocol.OpPing, nil)
}

// TestAttackStrangerFlood: a connection that never logs in sends frame
// after frame. It gets a few answers and is closed (1008): it cannot keep
// the server parsing. A frame larger than the small pre-login limit is
// 1009 at once.
func TestAttackStrangerFlood(t *testing.T) {
	apptest.CheckLeaks(t)
	dm := startDaemon(t, apptest.Options(t, "memory"))
	c := rawDial(t, dm)
	ctx := context.Background()
	answered := 0
	for i := range 1000 {
		if err := c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"id":%d,"op":"ping"}`, i+1))); err != nil {
			break // closed
		}
	}
	// It reads a few answers, then its close frame or a reset (it was
	// still writing).
	rctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	for {
		_, frame, err := c.Read(rctx)
		if err != nil {
			if rctx.Err() != nil {
				t.Fatal("the stranger was not closed")
			}
			break
		}
		if !strings.Contains(string(frame), `"code":6014`) {
			t.Fatalf("answer %s", frame)
		}
		answered++
	}
	if answered > 4 {
		t.Fatalf("a stranger got %d answers, want at most 4", answered)
	}
	if n := dm.metric("signald_connections_closed_by_server_total", `reason="no_login"`); n != 1 {
		t.Fatalf("closed for not logging in %v times, want once", n)
	}
	// A frame larger than the small pre-login limit ends it at once (1009).
	big := rawDial(t, dm)
	if err := big.Write(ctx, websocket.MessageText, []byte(`{"id":1,"op":"login","userID":"`+strings.Repeat("a", 5000)+`"}`)); err == nil {
		closeStatus(t, big)
	}
	eventually(t, "the 1009 close counted as too_big", func() error {
		if n := dm.metric("signald_connections_closed_by_server_total", `reason="too_big"`); n != 1 {
			return fmt.Errorf("too_big is %v", n)
		}
		return nil
	})
	mustCall(t, dm.login("alice"), protocol.OpPing, nil)
}

// TestAttackGarbageAfterLogin: a logged-in client floods malformed and
// binary frames. They count against its rate limit like requests do; past
// it, and past a burst of refusals, it is closed. Its victim-to-be is
// untouched.
func TestAttackGarbageAfterLogin(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "memory")
	o.Server.RateLimit, o.Server.RateBurst = 10, 20
	dm := startDaemon(t, o)
	c := rawDial(t, dm)
	ctx := context.Background()
	if err := c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"id":1,"op":"login","userID":"mallory","userSig":%q}`, dm.token("mallory")))); err != nil {
		t.Fatal(err)
	}
	if _, f, err := c.Read(ctx); err != nil || !strings.Contains(string(f), `"code":0`) {
		t.Fatalf("login: %s %v", f, err)
	}
	for i := range 2000 {
		typ, frame := websocket.MessageText, []byte("not json at all")
		if i%2 == 1 {
			typ = websocket.MessageBinary
		}
		if c.Write(ctx, typ, frame) != nil {
			break
		}
	}
	// It may see its close frame, or a reset: it was still writing.
	rctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	for {
		if _, _, err := c.Read(rctx); err != nil {
			if rctx.Err() != nil {
				t.Fatal("the flooding connection was not closed")
			}
			break
		}
	}
	if n := dm.metric("signald_requests_total", `code="60018"`); n == 0 {
		t.Fatal("no frame was refused for the rate limit")
	}
	if n := dm.metric("signald_connections_closed_by_server_total", `reason="rate_limit"`); n != 1 {
		t.Fatalf("closed for the rate limit %v times, want once", n)
	}
	bob := dm.login("bob")
	mustCall(t, bob, protocol.OpPing, nil)
}

// TestAttackTooManyStrangers: at SIGNALD_MAX_UNAUTHENTICATED connections
// waiting to log in, the next is answered 503 before the upgrade; a
// logged-in user is not counted, and once strangers leave others get in.
func TestAttackTooManyStrangers(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "memory")
	o.Server.MaxUnauthenticated = 5
	dm := startDaemon(t, o)
	alice := dm.login("alice") // counted only until her login
	var strangers []*websocket.Conn
	for range 5 {
		strangers = append(strangers, rawDial(t, dm))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, dm.ws, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("the sixth stranger: %v (response %v), want 503", err, resp)
	}
	if n := dm.metric("signald_connections_refused_total", `reason="unauthenticated"`); n != 1 {
		t.Fatalf("refusals counted %v, want 1", n)
	}
	if n := dm.metric("signald_unauthenticated_connections", ""); n != 5 {
		t.Fatalf("%v connections counted as waiting to log in, want the 5 strangers", n)
	}
	mustCall(t, alice, protocol.OpPing, nil)
	_ = strangers[0].CloseNow()
	eventually(t, "a connection once a stranger left", func() error {
		c, _, err := websocket.Dial(ctx, dm.ws, nil)
		if err != nil {
			return err
		}
		return c.CloseNow()
	})
}

// TestAttackSlowBody: an admin request whose body trickles in, with or
// without a token, is cut off at the HTTP read timeout; idle keep-alive
// connections are closed too. A WebSocket outlives both.
func TestAttackSlowBody(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "memory")
	o.HTTPReadTimeout, o.HTTPIdleTimeout = 300*time.Millisecond, 300*time.Millisecond
	dm := startDaemon(t, o)
	ws := dm.login("alice")
	addr := strings.TrimPrefix(dm.http, "http://")
	trickle := func(auth string) time.Duration {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		fmt.Fprintf(conn, "PUT /v1/groups/g/members HTTP/1.1\r\nHost: x\r\n%sContent-Length: 100\r\n\r\n{", auth)
		// A byte every 200 ms: the whole body would take 20 s.
		for range 100 {
			if _, err := conn.Write([]byte(" ")); err != nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		_, _ = bufio.NewReader(conn).ReadString('\n') // the answer, or the close
		return time.Since(start)
	}
	for _, auth := range []string{"", "Authorization: Bearer " + app.DevAdminToken + "\r\n"} {
		if took := trickle(auth); took > 10*time.Second {
			t.Fatalf("a trickling body (token %v) was held %v; the read timeout is 300ms", auth != "", took)
		}
	}
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	r := bufio.NewReader(idle)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = idle.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("the server sent more on an idle keep-alive connection")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("an idle keep-alive connection stayed open")
	}
	mustCall(t, ws, protocol.OpPing, nil) // past both timeouts
}

// TestAttackBurstOnAReader: 2,000 pipelined pings and 1,000 timeouts firing
// at once for a user's second device, which reads all the time: it is never
// closed as slow (the queue counts bytes, not frames).
func TestAttackBurstOnAReader(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "memory")
	o.Server.RateLimit, o.Server.RateBurst = 1e9, 1e9
	o.Engine.Limits = invitepkg.Limits{Rate: 1e6, Burst: 1e6, MaxActive: 2000, MaxPending: 2000} // not what this test is about
	dm := startDaemon(t, o)
	c := rawDial(t, dm)
	ctx := context.Background()
	_ = c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"id":1,"op":"login","userID":"bob","userSig":%q}`, dm.token("bob"))))
	_, _, _ = c.Read(ctx)
	for i := range 2000 {
		if err := c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"id":%d,"op":"ping"}`, i+2))); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
	for i := range 2000 {
		if _, f, err := c.Read(ctx); err != nil || !strings.Contains(string(f), `"code":0`) {
			t.Fatalf("reply %d: %s %v", i, f, err)
		}
	}
	alice := dm.login("alice")
	phone := dm.login("bob")
	for range 1000 {
		invite(t, alice, map[string]any{"invitee": "bob", "data": "", "timeout": 1})
	}
	got := 0
	for got < 2000 { // each invitation rings and times out
		if f := next(t, phone); f.Event != "" {
			got++
		}
	}
	mustCall(t, phone, protocol.OpPing, nil)
}

// TestAttackLockOut: an attacker rings a victim with as many invitations
// as it can, each with 12 KiB of data, to keep her from logging in. The
// invitations stop at the victim's cap (8012), and she logs in on a fresh
// device, and on one resuming from before the flood, and gets every one
// of them, on any backend.
func TestAttackLockOut(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		data := strings.Repeat("x", 12*1024)
		anchor := decode[protocol.LoginData](t, call(t, dm.dial(), protocol.OpLogin, map[string]any{"userID": "victim", "userSig": dm.token("victim")}).Data).LastEventID
		attackers := []*clientT{dm.login("mallory"), dm.login("trudy")}
		sent := 0
		for i := 0; ; i++ {
			f := call(t, attackers[i%2], protocol.OpInvite, map[string]any{"invitee": "victim", "data": data, "timeout": 0})
			if f.Code == protocol.CodeTooManyPending {
				break
			}
			if f.Code != 0 || i > 1000 {
				t.Fatalf("invite %d: code %d %s", i, f.Code, f.Desc)
			}
			sent++
		}
		if sent != 100 {
			t.Fatalf("%d invitations reached the victim before 8012, want the cap, 100", sent)
		}
		for _, params := range []map[string]any{
			{"userID": "victim", "userSig": dm.token("victim")},
			{"userID": "victim", "userSig": dm.token("victim"), "lastEventID": anchor},
		} {
			c := dm.dial()
			if f := call(t, c, protocol.OpLogin, params); f.Code != 0 {
				t.Fatalf("login: code %d", f.Code)
			}
			for i := range sent {
				if f := next(t, c); f.Event != "onReceiveNewInvitation" {
					t.Fatalf("the victim's frame %d: %+v", i, f)
				}
			}
			mustCall(t, c, protocol.OpPing, nil)
		}
	})
}

// TestAttackInviteFlood: one user on five connections sends invitations
// with 1 KiB of data and no timeout as fast as it can. Its budget is the
// user's, not the connection's, and it can keep at most 100 active.
func TestAttackInviteFlood(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		data := strings.Repeat("x", 1024)
		var conns []*clientT
		for range 5 {
			conns = append(conns, dm.login("mallory"))
		}
		codes := map[int]int{}
		for i := range 600 {
			f := call(t, conns[i%5], protocol.OpInvite, map[string]any{"invitee": fmt.Sprint("v", i), "data": data, "timeout": 0})
			codes[f.Code]++
		}
		if codes[0] != 100 || codes[protocol.CodeTooManyActive]+codes[protocol.CodeRateLimited] != 500 {
			t.Fatalf("answers %v: want 100 invitations, then 8013 or 60018", codes)
		}
		// A group call costs its size: two of 200 fit the budget's burst,
		// not a third right after.
		mustAdmin(t, dm, "PUT", "/v1/groups/big/members", fmt.Sprintf(`{"members":[%s]}`, quoted(201)))
		leader := dm.login("m0")
		members := strings.Split(strings.ReplaceAll(quoted(201), `"`, ""), ",")[1:]
		for i := range 3 {
			f := call(t, leader, protocol.OpInviteInGroup, map[string]any{"groupID": "big", "inviteeList": members, "data": "", "timeout": 0})
			if want := map[bool]int{true: protocol.CodeRateLimited, false: 0}[i == 2]; f.Code != want {
				t.Fatalf("group call %d to 200: code %d %s, want %d", i, f.Code, f.Desc, want)
			}
		}
	})
}

// quoted lists "m0", …, "m<n-1>" as JSON strings.
func quoted(n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`"m%d"`, i)
	}
	return strings.Join(out, ",")
}

// TestAttackLookAlikeIDs: IDs with control or bidirectional formatting
// characters are refused, so that nobody passes for someone else in logs.
func TestAttackLookAlikeIDs(t *testing.T) {
	apptest.CheckLeaks(t)
	dm := startDaemon(t, apptest.Options(t, "memory"))
	for _, id := range []string{"alice\u202eecila", "bob\nadmin", "carol\u2066", "nul\x00"} {
		c := dm.dial()
		if f := call(t, c, protocol.OpLogin, map[string]any{"userID": id, "userSig": dm.token("x")}); f.Code != protocol.CodeInvalidParams {
			t.Fatalf("login as %q: code %d, want 6017", id, f.Code)
		}
	}
	alice := dm.login("alice")
	wantCode(t, alice, protocol.CodeInvalidParams, protocol.OpInvite, map[string]any{"invitee": "bob\u200f", "data": ""})
	if code, _ := dm.admin("PUT", "/v1/groups/g%E2%80%AE/members", `{"members":["a"]}`); code != http.StatusBadRequest {
		t.Fatalf("a group ID with an override: %d, want 400", code)
	}
}
