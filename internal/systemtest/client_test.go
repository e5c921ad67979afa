package systemtest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/signald/signald/client"
	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/auth"
	"github.com/signald/signald/internal/protocol"
)

// token mints a userSig with the --dev secret.
func token(t testing.TB, user string) string {
	t.Helper()
	tok, err := auth.Mint([]byte(app.DevJWTSecret), user, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dial connects to a signald WebSocket URL. Through a load balancer a dial
// can fail for a moment (no server up yet, or one that is shutting down and
// refuses upgrades), so it tries again until waitFor has passed, as an app
// reconnecting with backoff would.
func dial(t testing.TB, url string) *client.Conn {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := client.Dial(ctx, url)
		cancel()
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// device is one logged-in connection of a user, as an app holds it: it
// remembers the newest eventID it has processed, to resume after a drop.
type device struct {
	t    testing.TB
	user string
	c    *client.Conn
	last string // newest eventID taken with next, or the login's anchor
	url  string // where it last connected
	// autoResume: when the server closes the connection with 1012, log in
	// again at url with lastEventID and go on, as an app does.
	autoResume bool
	resumes    int // how often autoResume did so
}

// login opens a connection to url and logs user in without lastEventID.
func login(t testing.TB, url, user string) *device {
	t.Helper()
	d := &device{t: t, user: user}
	data := d.connect(url, nil)
	d.last, _ = data["lastEventID"].(string)
	return d
}

// connect dials url and logs in, with lastEventID when it is not nil, and
// returns the reply's data.
func (d *device) connect(url string, lastEventID *string) map[string]any {
	d.t.Helper()
	d.c = dial(d.t, url)
	d.url = url
	params := map[string]any{"userID": d.user, "userSig": token(d.t, d.user)}
	if lastEventID != nil {
		params["lastEventID"] = *lastEventID
	}
	f := d.call(protocol.OpLogin, params)
	if f.Code != 0 {
		d.t.Fatalf("login %s: code %d %q", d.user, f.Code, f.Desc)
	}
	return decode[map[string]any](d.t, f.Data)
}

// resume reconnects to url with the newest eventID processed so far and
// returns the login reply's data (with "recovered").
func (d *device) resume(url string) map[string]any {
	d.t.Helper()
	if d.c != nil {
		_ = d.c.Close()
	}
	last := d.last
	data := d.connect(url, &last)
	if l, _ := data["lastEventID"].(string); l > d.last && data["recovered"] != true {
		d.last = l
	}
	return data
}

// reconnectIfAsked resumes at d.url when autoResume is on and the server
// closed the connection with 1012, and reports whether it did.
func (d *device) reconnectIfAsked() bool {
	if !d.autoResume || !d.isClosed() || d.c.CloseStatus() != websocket.StatusServiceRestart {
		return false
	}
	d.t.Helper()
	data := d.resume(d.url)
	d.resumes++
	d.t.Logf("%s: closed with 1012; resumed at %s, recovered %v", d.user, d.url, data["recovered"])
	return true
}

// call sends a request and waits for its reply.
func (d *device) call(op string, params map[string]any) *protocol.Frame {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	d.reconnectIfAsked()
	f, err := d.c.Call(ctx, op, params)
	if err != nil && d.reconnectIfAsked() {
		f, err = d.c.Call(ctx, op, params)
	}
	if err != nil {
		d.t.Fatalf("%s of %s: %v", op, d.user, err)
	}
	return f
}

// must sends a request and requires code 0.
func (d *device) must(op string, params map[string]any) *protocol.Frame {
	d.t.Helper()
	f := d.call(op, params)
	if f.Code != 0 {
		d.t.Fatalf("%s of %s %v: code %d %q, want 0", op, d.user, params, f.Code, f.Desc)
	}
	return f
}

// invite sends an invite and returns the new inviteID.
func (d *device) invite(params map[string]any) string {
	d.t.Helper()
	return decode[string](d.t, d.must(protocol.OpInvite, params).Data)
}

// states returns the per-invitee states getSignalingInfo reports.
func (d *device) states(inviteID string) map[string]string {
	d.t.Helper()
	f := d.must(protocol.OpGetSignalingInfo, map[string]any{"inviteID": inviteID})
	return decode[struct {
		States map[string]string `json:"states"`
	}](d.t, f.Data).States
}

// next returns the next event (or unmatched reply) and remembers its
// eventID as processed.
func (d *device) next() *protocol.Frame {
	d.t.Helper()
	f, err := d.nextWithin(waitFor)
	if err != nil {
		d.t.Fatalf("%s waiting for a frame: %v", d.user, err)
	}
	return f
}

// nextWithin is next with its own limit, returning the error instead of
// failing.
func (d *device) nextWithin(limit time.Duration) (*protocol.Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	f, err := d.c.Next(ctx)
	for err != nil && d.reconnectIfAsked() {
		f, err = d.c.Next(ctx)
	}
	if err != nil {
		return nil, err
	}
	if f.EventID > d.last {
		d.last = f.EventID
	}
	return f, nil
}

// expectEvent requires the next frame to be event kind about inviteID.
func (d *device) expectEvent(kind, inviteID string) *protocol.Frame {
	d.t.Helper()
	f, err := d.nextWithin(waitFor)
	if err != nil {
		d.t.Fatalf("%s waiting for %s of %s: %v", d.user, kind, inviteID, err)
	}
	if f.Event != kind || f.InviteID != inviteID {
		d.t.Fatalf("%s got %s, want event %s for %s", d.user, describe(f), kind, inviteID)
	}
	return f
}

// expectQuiet requires that nothing but replies has reached the device: a
// ping's reply comes after every frame queued before it.
func (d *device) expectQuiet() {
	d.t.Helper()
	d.must(protocol.OpPing, nil)
	if d.c.Pending() > 0 {
		d.t.Fatalf("%s: unexpected %s", d.user, describe(d.next()))
	}
}

// closedWith waits until the server has closed the connection and returns
// the close status (-1 when it ended without one).
func (d *device) closedWith(limit time.Duration) int {
	d.t.Helper()
	if !d.isClosed() {
		select {
		case <-d.c.Done():
		case <-time.After(limit):
			d.t.Fatalf("%s: connection still open after %v", d.user, limit)
		}
	}
	return int(d.c.CloseStatus())
}

// isClosed reports whether the connection has ended.
func (d *device) isClosed() bool {
	select {
	case <-d.c.Done():
		return true
	default:
		return false
	}
}

func describe(f *protocol.Frame) string {
	b, _ := json.Marshal(f)
	return string(b)
}

func decode[T any](t testing.TB, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}
