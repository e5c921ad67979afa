package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signald/signald/client"
	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/auth"
	"github.com/signald/signald/internal/protocol"
	"github.com/signald/signald/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// clientT is a test connection.
type clientT = client.Conn

// waitFor bounds every wait on an event; it is a failure deadline, never a
// pause: tests return as soon as what they wait for happens.
const waitFor = 10 * time.Second

// daemon is one signald started in-process on a loopback port.
type daemon struct {
	t      testing.TB
	opts   app.Options
	d      *app.Daemon
	cancel context.CancelFunc
	ws     string // ws://host:port/v1/ws
	http   string // http://host:port
	// adminHTTP is where the admin routes are: http, or the admin listener.
	adminHTTP string
}

func startDaemon(t testing.TB, o app.Options) *daemon {
	t.Helper()
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = t.Output()
	}
	return startDaemonLogging(t, o, w)
}

// logBuf is a log a daemon writes to from many goroutines.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder // guarded by mu
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDaemonLogged starts a daemon whose warnings and errors are kept.
func startDaemonLogged(t testing.TB, o app.Options) (*daemon, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	return startDaemonLogging(t, o, logs), logs
}

func startDaemonLogging(t testing.TB, o app.Options, w io.Writer) *daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := app.Start(ctx, o, logger, reg, reg)
	if err != nil {
		cancel()
		t.Fatalf("start signald: %v", err)
	}
	dm := &daemon{t: t, opts: o, d: d, cancel: cancel, ws: "ws://" + d.Addr + "/v1/ws", http: "http://" + d.Addr}
	if d.AdminAddr != "" {
		dm.adminHTTP = "http://" + d.AdminAddr
	} else {
		dm.adminHTTP = dm.http
	}
	t.Cleanup(func() { dm.stop() })
	return dm
}

// stop shuts the daemon down gracefully and fails the test if that fails.
func (dm *daemon) stop() {
	if dm.cancel == nil {
		return
	}
	dm.cancel()
	dm.cancel = nil
	if err := dm.d.Wait(); err != nil {
		dm.t.Errorf("signald shutdown: %v", err)
	}
}

func (dm *daemon) token(user string) string {
	tok, err := auth.Mint([]byte(app.DevJWTSecret), user, time.Hour, time.Now())
	if err != nil {
		dm.t.Fatal(err)
	}
	return tok
}

// dial opens a connection without logging in.
func (dm *daemon) dial() *client.Conn {
	dm.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := client.Dial(ctx, dm.ws)
	if err != nil {
		dm.t.Fatalf("dial: %v", err)
	}
	dm.t.Cleanup(func() { _ = c.Close() })
	return c
}

// login opens a connection of user and logs it in.
func (dm *daemon) login(user string) *client.Conn {
	dm.t.Helper()
	c := dm.dial()
	f := call(dm.t, c, protocol.OpLogin, map[string]any{"userID": user, "userSig": dm.token(user)})
	if f.Code != 0 {
		dm.t.Fatalf("login %s: code %d %s", user, f.Code, f.Desc)
	}
	return c
}

func call(t testing.TB, c *client.Conn, op string, params map[string]any) *protocol.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	f, err := c.Call(ctx, op, params)
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	return f
}

// mustCall calls op and requires code 0.
func mustCall(t testing.TB, c *client.Conn, op string, params map[string]any) *protocol.Frame {
	t.Helper()
	f := call(t, c, op, params)
	if f.Code != 0 {
		t.Fatalf("%s %v: code %d %q, want 0", op, params, f.Code, f.Desc)
	}
	return f
}

// wantCode calls op and requires the given code.
func wantCode(t testing.TB, c *client.Conn, code int, op string, params map[string]any) *protocol.Frame {
	t.Helper()
	f := call(t, c, op, params)
	if f.Code != code {
		t.Fatalf("%s %v: code %d %q, want %d", op, params, f.Code, f.Desc, code)
	}
	if code != 0 && f.Desc == "" {
		t.Fatalf("%s: error %d without a description", op, code)
	}
	return f
}

// invite sends an invite and returns the inviteID.
func invite(t testing.TB, c *client.Conn, params map[string]any) string {
	t.Helper()
	f := mustCall(t, c, protocol.OpInvite, params)
	var id string
	if err := json.Unmarshal(f.Data, &id); err != nil || id == "" {
		t.Fatalf("invite reply data %s is not an inviteID", f.Data)
	}
	return id
}

// next returns the next event (or unmatched reply) on c.
func next(t testing.TB, c *client.Conn) *protocol.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	f, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("waiting for a frame: %v", err)
	}
	return f
}

// expectEvent requires the next frame on c to be event kind about inviteID.
func expectEvent(t testing.TB, c *client.Conn, kind, inviteID string) *protocol.Frame {
	t.Helper()
	f := next(t, c)
	if f.Event != kind || f.InviteID != inviteID {
		t.Fatalf("got frame %+v (data %s), want event %s for %s", f, f.Data, kind, inviteID)
	}
	return f
}

// expectQuiet requires that nothing but replies has reached c so far: a
// ping's reply comes after every frame queued before it.
func expectQuiet(t testing.TB, c *client.Conn) {
	t.Helper()
	mustCall(t, c, protocol.OpPing, nil)
	if n := c.Pending(); n > 0 {
		f := next(t, c)
		t.Fatalf("unexpected frame %+v (data %s)", f, f.Data)
	}
}

// expectClosed waits for the server to close c and checks the close code.
func expectClosed(t testing.TB, c *client.Conn, code int) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitFor):
		t.Fatalf("connection not closed; wanted close status %d", code)
	}
	if got := int(c.CloseStatus()); got != code {
		t.Fatalf("close status %d (%v), want %d", got, c.Err(), code)
	}
}

// httpClient keeps no idle connections, so that none outlives a test.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: waitFor}

func (dm *daemon) admin(method, path, body string) (int, string) {
	dm.t.Helper()
	req, err := http.NewRequest(method, dm.adminHTTP+path, strings.NewReader(body))
	if err != nil {
		dm.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+app.DevAdminToken)
	resp, err := httpClient.Do(req)
	if err != nil {
		dm.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// get fetches path, from the admin listener for /metrics.
func (dm *daemon) get(path string) (int, string) {
	dm.t.Helper()
	base := dm.http
	if path == "/metrics" {
		base = dm.adminHTTP
	}
	resp, err := httpClient.Get(base + path)
	if err != nil {
		dm.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pollEvery is how often a wait on something that cannot be awaited any
// other way (an HTTP status) asks again.
const pollEvery = 10 * time.Millisecond

// eventually calls check every pollEvery until it returns nil, and fails
// the test with its last error after waitFor.
func eventually(t testing.TB, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, waitFor, err)
		}
		time.Sleep(pollEvery)
	}
}

// waitReady polls /readyz until it answers code.
func waitReady(t testing.TB, dm *daemon, code int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		got, _ := dm.get("/readyz")
		if got == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answers %d after %v, want %d", got, waitFor, code)
		}
		time.Sleep(pollEvery)
	}
}

// metric returns the sum of the samples of metric name (no suffix taken for
// it) whose labels contain match ("" matches all), from /metrics.
func (dm *daemon) metric(name, match string) float64 {
	dm.t.Helper()
	_, body := dm.get("/metrics")
	sum := 0.0
	for _, l := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(l, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		labels, value := "", rest
		if strings.HasPrefix(rest, "{") {
			i := strings.Index(rest, "}")
			labels, value = rest[:i+1], rest[i+1:]
		}
		if !strings.Contains(labels, match) {
			continue
		}
		var v float64
		fmt.Sscan(strings.TrimSpace(value), &v)
		sum += v
	}
	return sum
}

func decode[T any](t testing.TB, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}
