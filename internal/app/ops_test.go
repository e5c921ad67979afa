package app_test

import (
	"context"
	"errors"
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
	"github.com/signald/signald/internal/redistest"
)

func TestHTTPSurface(t *testing.T) {
	apptest.CheckLeaks(t)
	dm := startDaemon(t, apptest.Options(t, "memory"))
	if code, body := dm.get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, body := dm.get("/readyz"); code != 200 {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	alice := dm.login("alice")
	invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
	wantCode(t, alice, protocol.CodeInvalidParams, "dance", nil)
	code, body := dm.get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`signald_connections 1`,
		`signald_websocket_connections 1`,
		`signald_logins_total{code="0"} 1`,
		`signald_requests_total{code="0",op="invite"} 1`,
		`signald_requests_total{code="6017",op="unknown"} 1`,
		`signald_request_duration_seconds_bucket{op="invite",le="+Inf"} 1`,
		`signald_active_invitations 1`,
		`signald_store_up 1`,
		`signald_timeouts_fired_total 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "# HELP signald") || !strings.HasPrefix(line, "# HELP ") {
			continue
		}
		name := strings.Fields(line)[2]
		if !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("metric %s is not named signald_…", name)
		}
	}

	// The admin API through the daemon's router.
	req, _ := http.NewRequest("GET", dm.http+"/v1/groups/g/members", nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin without a token: %d, want 401", resp.StatusCode)
	}
	if code, body := dm.admin("PUT", "/v1/groups/g/members", `{"members":["b","a"]}`); code != 200 || !strings.Contains(body, `"members":["a","b"]`) {
		t.Fatalf("PUT members: %d %s", code, body)
	}
	if code, body := dm.admin("PUT", "/v1/groups/g/members", `{"members":[""]}`); code != 400 || !strings.Contains(body, `"error"`) {
		t.Fatalf("PUT an empty userID: %d %s", code, body)
	}
	if code, _ := dm.admin("GET", "/v1/groups/none/members", ""); code != 404 {
		t.Fatalf("GET a missing group: %d", code)
	}
}

func TestGracefulShutdown(t *testing.T) {
	apptest.ForEachBackend(t, func(t *testing.T, o app.Options) {
		dm := startDaemon(t, o)
		alice, bob := dm.login("alice"), dm.login("bob")
		pending := dm.dial() // not logged in: closed the same way
		id := invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
		expectEvent(t, bob, "onReceiveNewInvitation", id)

		dm.cancel() // what SIGTERM does in main
		for _, c := range []*clientT{alice, bob, pending} {
			expectClosed(t, c, int(websocket.StatusServiceRestart))
		}
		// From the moment connections are closed the instance is never
		// ready again: /readyz answers 503 or nothing at all.
		if resp, err := httpClient.Get(dm.http + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("/readyz during shutdown: %d", resp.StatusCode)
			}
		}
		if err := dm.d.Wait(); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		dm.cancel = nil
		if c, _, err := websocket.Dial(context.Background(), dm.ws, nil); err == nil {
			c.CloseNow()
			t.Fatal("a new connection was accepted after shutdown")
		}
	})
}

// TestSlowClientIsClosed: a receiver that stops reading is disconnected and
// costs the inviter and the other receivers nothing.
func TestSlowClientIsClosed(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "memory")
	o.Server.SendQueueBytes = 256 << 10
	o.EventsKept = 8
	// Long enough never to close the slow client before its queue does,
	// however slowly this machine runs the loop below.
	o.Server.WriteTimeout = waitFor
	o.Server.RateLimit, o.Server.RateBurst = 1e9, 1e9
	o.Engine.Limits = invitepkg.Limits{Rate: 1e6, Burst: 1e6, MaxActive: 2000, MaxPending: 2000} // not what this test is about
	dm := startDaemon(t, o)
	mustAdmin(t, dm, "PUT", "/v1/groups/g/members", `{"members":["alice","slow","fast"]}`)

	// The slow client logs in and then never reads again.
	ctx := context.Background()
	slow, _, err := websocket.Dial(ctx, dm.ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	slow.SetReadLimit(1 << 20)
	if err := slow.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"id":1,"op":"login","userID":"slow","userSig":%q}`, dm.token("slow")))); err != nil {
		t.Fatal(err)
	}
	if _, reply, err := slow.Read(ctx); err != nil || !strings.Contains(string(reply), `"code":0`) {
		t.Fatalf("slow login: %s %v", reply, err)
	}
	fast, alice := dm.login("fast"), dm.login("alice")

	// 1,500 invitations of 12 KiB: far more than socket buffers hold.
	const n = 1500
	data := strings.Repeat("x", 12*1024)
	// alice sends the next invitation once fast has the previous one, so
	// fast's queue never holds more than a frame or two: only slow falls
	// behind, and alice is never held up by it.
	for i := range n {
		// Timeout 0: however long the loop takes, none times out meanwhile.
		id := decode[string](t, mustCall(t, alice, protocol.OpInviteInGroup, map[string]any{"groupID": "g", "inviteeList": []string{"slow", "fast"}, "data": data, "timeout": 0}).Data)
		if f := next(t, fast); f.Event != "onReceiveNewInvitation" || f.InviteID != id {
			t.Fatalf("fast client, invitation %d: %+v", i, f)
		}
	}
	// The slow client now reads what reached it: fewer than all, then the end.
	got := 0
	rctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	for {
		if _, _, err := slow.Read(rctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("the slow client was never disconnected")
			}
			break
		}
		got++
	}
	if got >= n {
		t.Fatalf("the slow client received all %d events", got)
	}
	t.Logf("slow client got %d of %d events before it was closed", got, n)
	if _, body := dm.get("/metrics"); !strings.Contains(body, "signald_slow_clients_closed_total 1") {
		t.Error("signald_slow_clients_closed_total is not 1")
	}
	// Counted once, under the reason it was closed for.
	slowly := dm.metric("signald_connections_closed_by_server_total", `reason="too_slow"`) + dm.metric("signald_connections_closed_by_server_total", `reason="write_timeout"`)
	if all := dm.metric("signald_connections_closed_by_server_total", ""); slowly != 1 || all != 1 {
		t.Errorf("closed by the server: %v for being slow, %v in all; want 1 and 1", slowly, all)
	}
}

// TestRestartOnRedis: invitations and their deadlines live in Redis, so a
// restarted signald serves them: accept after the restart, and the timeout
// still fires.
func TestRestartOnRedis(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "redis")
	first := startDaemon(t, o)
	alice := first.login("alice")
	toAccept := invite(t, alice, map[string]any{"invitee": "bob", "data": "a", "timeout": 60})
	// Due after the restart on any but a stalled machine; what is checked
	// below holds whenever it fires.
	toTimeOut := invite(t, alice, map[string]any{"invitee": "bob", "data": "b", "timeout": 3})
	first.stop()
	expectClosed(t, alice, int(websocket.StatusServiceRestart))

	second := startDaemon(t, o)
	alice = second.dial()
	login := decode[protocol.LoginData](t, mustCall(t, alice, protocol.OpLogin, map[string]any{"userID": "alice", "userSig": second.token("alice")}).Data)
	bob := second.login("bob")
	// bob is rung on login for what is still pending: toAccept, and
	// toTimeOut unless it is over already; its timeout may come too.
	seen := map[string]bool{}
	for !seen[toAccept+" onReceiveNewInvitation"] {
		f := next(t, bob)
		key := f.InviteID + " " + f.Event
		ok := key == toAccept+" onReceiveNewInvitation" || key == toTimeOut+" onReceiveNewInvitation" || key == toTimeOut+" onInvitationTimeout"
		if !ok || seen[key] {
			t.Fatalf("bob got %+v after %v", f, seen)
		}
		seen[key] = true
	}
	mustCall(t, bob, protocol.OpAccept, map[string]any{"inviteID": toAccept})
	// alice hears the accept and, if she was logged in before the deadline
	// (her login's serverTime is taken once she receives live events), the
	// timeout, in whichever order they happen.
	info := decode[protocol.SignalingInfo](t, mustCall(t, alice, protocol.OpGetSignalingInfo, map[string]any{"inviteID": toTimeOut}).Data)
	hearsTimeout := login.ServerTime < info.Deadline
	got := map[string]bool{}
	for !got["onInviteeAccepted "+toAccept] || (hearsTimeout && !got["onInvitationTimeout "+toTimeOut]) {
		f := next(t, alice)
		key := f.Event + " " + f.InviteID
		if (key != "onInviteeAccepted "+toAccept && key != "onInvitationTimeout "+toTimeOut) || got[key] {
			t.Fatalf("alice got %+v after %v", f, got)
		}
		got[key] = true
	}
	eventually(t, "the timeout fired", func() error {
		info := decode[protocol.SignalingInfo](t, mustCall(t, alice, protocol.OpGetSignalingInfo, map[string]any{"inviteID": toTimeOut}).Data)
		if info.States["bob"] != "timeout" {
			return fmt.Errorf("after restart: %+v", info)
		}
		return nil
	})
	info = decode[protocol.SignalingInfo](t, mustCall(t, alice, protocol.OpGetSignalingInfo, map[string]any{"inviteID": toAccept}).Data)
	if info.States["bob"] != "accepted" {
		t.Fatalf("the invitation accepted after the restart: %+v", info)
	}
}

// TestRedisUnavailable: without Redis, requests fail with 90994, /readyz
// says 503, /healthz stays 200 and connections stay open.
func TestRedisUnavailable(t *testing.T) {
	apptest.CheckLeaks(t)
	addr, stopRedis := redistest.StartServer(t)
	o := apptest.Options(t, "memory")
	o.RedisURL = "redis://" + addr + "?dial_timeout=200ms&read_timeout=200ms&write_timeout=200ms&max_retries=0"
	o.Server.RequestTimeout = time.Second
	dm := startDaemon(t, o)
	alice := dm.login("alice")
	invite(t, alice, map[string]any{"invitee": "bob", "data": ""})
	stopRedis()
	wantCode(t, alice, protocol.CodeInternal, protocol.OpInvite, map[string]any{"invitee": "bob", "data": ""})
	wantCode(t, alice, protocol.CodeInternal, protocol.OpGetSignalingInfo, map[string]any{"inviteID": "x"})
	mustCall(t, alice, protocol.OpPing, nil)
	waitReady(t, dm, http.StatusServiceUnavailable)
	if code, _ := dm.get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz without Redis: %d, want 200", code)
	}
	// A login needs the store (pending invitations): it fails cleanly.
	c := dm.dial()
	wantCode(t, c, protocol.CodeInternal, protocol.OpLogin, map[string]any{"userID": "bob", "userSig": dm.token("bob")})
	expectClosed(t, c, int(websocket.StatusPolicyViolation))
}

// TestDaemonRefusesToStartWithoutSecrets checks the message names what to set.
func TestDaemonRefusesToStartWithoutSecrets(t *testing.T) {
	var out strings.Builder
	err := app.Main(context.Background(), []string{"serve", "--addr", "127.0.0.1:0"}, func(string) string { return "" }, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "SIGNALD_JWT_SECRET") || !strings.Contains(err.Error(), "SIGNALD_ADMIN_TOKEN") || !strings.Contains(err.Error(), "--dev") {
		t.Fatalf("start without secrets: %v", err)
	}
	env := map[string]string{"SIGNALD_JWT_SECRET": "s", "SIGNALD_ADMIN_TOKEN": "t", "SIGNALD_LOGIN_DEADLINE": "soon"}
	err = app.Main(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "SIGNALD_LOGIN_DEADLINE") {
		t.Fatalf("bad duration in the environment: %v", err)
	}
	delete(env, "SIGNALD_LOGIN_DEADLINE")
	err = app.Main(context.Background(), []string{"serve", "--redis-url", "http://x"}, func(k string) string { return env[k] }, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "redis://") {
		t.Fatalf("bad Redis URL: %v", err)
	}
}

func TestTokenCommand(t *testing.T) {
	var out, errOut strings.Builder
	if err := app.Main(context.Background(), []string{"token", "--user", "alice", "--dev"}, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	apptest.CheckLeaks(t)
	dm := startDaemon(t, apptest.Options(t, "memory"))
	c := dm.dial()
	mustCall(t, c, protocol.OpLogin, map[string]any{"userID": "alice", "userSig": strings.TrimSpace(out.String())})
	if err := app.Main(context.Background(), []string{"token", "--user", "alice"}, func(string) string { return "" }, &out, &errOut); err == nil {
		t.Fatal("token without a secret succeeded")
	}
}

// TestMainStopsOnSignal runs the command line as main does and stops it
// with SIGTERM-equivalent cancellation within the shutdown timeout.
func TestMainStopsOnSignal(t *testing.T) {
	apptest.CheckLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- app.Main(ctx, []string{"--dev", "--addr", "127.0.0.1:0", "--log-format", "text"}, func(string) string { return "" }, &out, &syncWriter{})
	}()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Main: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Main did not stop")
	}
}

type syncWriter struct{}

func (*syncWriter) Write(p []byte) (int, error) { return len(p), nil }

// TestUnansweredPingsCloseTheConnection: a peer that no longer answers
// WebSocket pings (a phone that vanished) is dropped.
func TestUnansweredPingsCloseTheConnection(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "memory")
	// 3 s to answer each ping: a client that reads is never late by that
	// much, even on a busy machine; the silent one is gone in two
	// intervals, well before the login deadline could close it.
	o.Server.PingInterval = 3 * time.Second
	o.Server.LoginDeadline = time.Minute
	dm := startDaemon(t, o)
	answering := dm.login("alice") // its reader answers pings

	// A raw TCP peer that upgrades and then never answers anything.
	conn, err := net.Dial("tcp", strings.TrimPrefix(dm.http, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(2*o.Server.PingInterval + waitFor))
	if _, err := io.Copy(io.Discard, conn); err != nil { // pings arrive, unanswered, then EOF
		t.Fatalf("the silent peer was not disconnected: %v", err)
	}
	mustCall(t, answering, protocol.OpPing, nil)
}

// TestDrainBeforeShutdown: on SIGTERM with a drain period the instance says
// it is not ready while it goes on serving, then closes every connection
// with 1012 in batches.
func TestDrainBeforeShutdown(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "memory")
	// The drain outlasts the few steps below, even on a busy machine.
	o.DrainPeriod = 5 * time.Second
	o.Server.CloseBatch = 2
	o.Server.CloseInterval = 10 * time.Millisecond
	dm := startDaemon(t, o)
	var clients []*clientT
	for i := range 5 {
		clients = append(clients, dm.login(fmt.Sprintf("u%d", i)))
	}
	dm.cancel()
	// The drain begins right after the signal: wait for /readyz to say so.
	waitReady(t, dm, http.StatusServiceUnavailable)
	// Still serving while the load balancer takes notice.
	id := invite(t, clients[0], map[string]any{"invitee": "u1", "data": ""})
	expectEvent(t, clients[1], "onReceiveNewInvitation", id)
	late := dm.login("late")
	for _, c := range append(clients, late) {
		expectClosed(t, c, int(websocket.StatusServiceRestart))
	}
	if err := dm.d.Wait(); err != nil {
		t.Fatal(err)
	}
	dm.cancel = nil
}
