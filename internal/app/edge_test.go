package app_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/apptest"
	"github.com/signald/signald/internal/protocol"
)

// TestAdminListener: with SIGNALD_ADMIN_ADDR, metrics, the profiler and
// the admin API are served there and not on the public listener, which
// keeps the WebSocket and the health checks.
func TestAdminListener(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "memory")
	o.AdminAddr = "127.0.0.1:0"
	dm := startDaemon(t, o)
	if dm.adminHTTP == dm.http {
		t.Fatal("no admin listener")
	}
	status := func(base, path string) int {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+app.DevAdminToken)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s%s: %v", base, path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/metrics", "/v1/groups/team/members", "/v1/users/alice/devices", "/debug/pprof/"} {
		if got := status(dm.http, path); got != http.StatusNotFound {
			t.Errorf("public %s: %d, want 404", path, got)
		}
	}
	mustAdmin(t, dm, "PUT", "/v1/groups/team/members", `{"members":["alice"]}`)
	for _, path := range []string{"/metrics", "/v1/groups/team/members", "/v1/users/alice/devices", "/debug/pprof/", "/healthz", "/readyz"} {
		if got := status(dm.adminHTTP, path); got != http.StatusOK {
			t.Errorf("admin %s: %d, want 200", path, got)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if got := status(dm.http, path); got != http.StatusOK {
			t.Errorf("public %s: %d, want 200", path, got)
		}
	}
	mustCall(t, dm.login("alice"), protocol.OpPing, nil)
}

// dialOrigin opens a WebSocket as a browser page of origin would, and
// returns the HTTP status and body of a refusal (0 when it opened).
func dialOrigin(t *testing.T, dm *daemon, origin string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, dm.ws, &websocket.DialOptions{
		HTTPClient: httpClient,
		HTTPHeader: http.Header{"Origin": {origin}},
	})
	if err == nil {
		ws.CloseNow()
		return 0, ""
	}
	if resp == nil {
		t.Fatalf("dial from %s: %v", origin, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDisallowedOriginIsRefusedAndLogged: a page on an origin not allowed
// gets a 403 that names the setting to change, and the operator a warning,
// once per origin per minute however often the page retries.
func TestDisallowedOriginIsRefusedAndLogged(t *testing.T) {
	apptest.CheckLeaks(t)
	o := apptest.Options(t, "memory")
	o.Server.OriginPatterns = []string{"app.example.com", "*.example.org"}
	dm, logs := startDaemonLogged(t, o)
	for _, allowed := range []string{"https://app.example.com", "https://web.example.org", dm.http} {
		if code, body := dialOrigin(t, dm, allowed); code != 0 {
			t.Errorf("origin %s refused: %d %s", allowed, code, body)
		}
	}
	for range 3 {
		code, body := dialOrigin(t, dm, "https://evil.example.net")
		if code != http.StatusForbidden || !strings.Contains(body, "SIGNALD_ALLOWED_ORIGINS") {
			t.Fatalf("a disallowed origin: %d %q", code, body)
		}
	}
	dialOrigin(t, dm, "https://other.example.net")
	warned := func(origin string) int {
		return strings.Count(logs.String(), "origin="+origin)
	}
	if n := warned("https://evil.example.net"); n != 1 {
		t.Errorf("three refusals of one origin logged %d times, want once:\n%s", n, logs)
	}
	if n := warned("https://other.example.net"); n != 1 {
		t.Errorf("another origin logged %d times, want once", n)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "SIGNALD_ALLOWED_ORIGINS") {
		t.Errorf("the warning does not name the setting:\n%s", logs)
	}
}

// TestClientAddressFromTrustedProxy: behind a trusted load balancer the log
// names the client it forwarded for; from anyone else X-Forwarded-For is
// ignored (a client could write anything in it).
func TestClientAddressFromTrustedProxy(t *testing.T) {
	for _, c := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"trusted", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "client=203.0.113.9"},
		{"not trusted", nil, "client=127.0.0.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			apptest.CheckLeaks(t)
			o := apptest.Options(t, "memory")
			o.Server.TrustedProxies = c.trusted
			dm, logs := startDaemonLogged(t, o)
			req, _ := http.NewRequest(http.MethodGet, dm.http+"/v1/groups/g/members", nil)
			// The client's own claim first, then what the proxy appended.
			req.Header.Add("X-Forwarded-For", "198.51.100.1, 203.0.113.9")
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if !strings.Contains(logs.String(), c.want) {
				t.Fatalf("log does not say %s:\n%s", c.want, logs)
			}
		})
	}
}

// TestFirstFrameWithTheUpgrade: a client that sends its first frame in the
// same packet as its upgrade request (net/http reads it ahead) is answered
// like any other: the bytes read ahead are the connection's, not lost.
func TestFirstFrameWithTheUpgrade(t *testing.T) {
	apptest.CheckLeaks(t)
	dm := startDaemon(t, apptest.Options(t, "memory"))
	conn, err := net.Dial("tcp", strings.TrimPrefix(dm.http, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := []byte(`{"id":7,"op":"ping"}`)
	frame := []byte{0x81, 0x80 | byte(len(payload)), 1, 2, 3, 4} // text, masked
	for i, b := range payload {
		frame = append(frame, b^[]byte{1, 2, 3, 4}[i%4])
	}
	upgrade := "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(upgrade), frame...)); err != nil { // one write, one packet
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatal(err)
	}
	if head[0] != 0x81 || head[1]&0x80 != 0 || head[1] >= 126 {
		t.Fatalf("frame header %x: want an unmasked short text frame", head)
	}
	body := make([]byte, head[1])
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"id":7`) || !strings.Contains(string(body), `"code":6014`) {
		t.Fatalf("answer %s, want 6014 (not logged in) to request 7", body)
	}
}
