package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signald/signald/client"
	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/auth"
	"github.com/signald/signald/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// waitFor bounds every wait; it is a failure deadline, never a pause:
// tests go on as soon as what they wait for happens. Generous, so that a
// busy two-core machine does not fail them.
const waitFor = 30 * time.Second

// daemon is one signald started in-process on a loopback port.
type daemon struct {
	t      testing.TB
	cancel context.CancelFunc
	d      *app.Daemon
	addr   string // host:port
	ws     string // ws://host:port/v1/ws
}

func startDaemon(t testing.TB, o app.Options) *daemon {
	t.Helper()
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = t.Output()
	}
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := app.Start(ctx, o, logger, reg, reg)
	if err != nil {
		cancel()
		t.Fatalf("start signald: %v", err)
	}
	dm := &daemon{t: t, cancel: cancel, d: d, addr: d.Addr, ws: "ws://" + d.Addr + "/v1/ws"}
	t.Cleanup(dm.stop)
	return dm
}

// stop shuts the daemon down gracefully (its connections are closed with
// 1012) and fails the test if that fails.
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

func token(t testing.TB, user string) string {
	t.Helper()
	tok, err := auth.Mint([]byte(app.DevJWTSecret), user, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: waitFor}

// group creates groupID with members through the admin API.
func (dm *daemon) group(groupID string, members ...string) {
	dm.t.Helper()
	body := `{"members":["` + strings.Join(members, `","`) + `"]}`
	req, err := http.NewRequest(http.MethodPut, "http://"+dm.addr+"/v1/groups/"+groupID+"/members", strings.NewReader(body))
	if err != nil {
		dm.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+app.DevAdminToken)
	resp, err := httpClient.Do(req)
	if err != nil {
		dm.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		dm.t.Fatalf("PUT group %s: %d", groupID, resp.StatusCode)
	}
}

// recorder is a Listener that records what it is told, in order.
type recorder struct {
	t      testing.TB
	events chan any                // every event, as its typed struct
	states chan client.StateChange // every state change

	mu  sync.Mutex
	log []any // guarded by mu: events and state changes, in the order told
	// gate, when not nil, is waited on by the next OnInvitationModified,
	// which closes entered first.
	gate, entered chan struct{} // guarded by mu
}

func newRecorder(t testing.TB) *recorder {
	return &recorder{t: t, events: make(chan any, 1000), states: make(chan client.StateChange, 1000)}
}

func (r *recorder) record(v any) {
	r.mu.Lock()
	r.log = append(r.log, v)
	r.mu.Unlock()
	if st, ok := v.(client.StateChange); ok {
		r.states <- st
		return
	}
	r.events <- v
}

func (r *recorder) listener() client.Listener {
	return client.Listener{
		OnReceiveNewInvitation: func(ev client.ReceiveNewInvitationEvent) { r.record(ev) },
		OnInviteeAccepted:      func(ev client.InviteeAcceptedEvent) { r.record(ev) },
		OnInviteeRejected:      func(ev client.InviteeRejectedEvent) { r.record(ev) },
		OnInvitationCancelled:  func(ev client.InvitationCancelledEvent) { r.record(ev) },
		OnInvitationTimeout:    func(ev client.InvitationTimeoutEvent) { r.record(ev) },
		OnInvitationModified: func(ev client.InvitationModifiedEvent) {
			r.mu.Lock()
			gate, entered := r.gate, r.entered
			r.gate, r.entered = nil, nil
			r.mu.Unlock()
			if gate != nil {
				close(entered)
				<-gate
			}
			r.record(ev)
		},
		OnConnectionStateChanged: func(ch client.StateChange) { r.record(ch) },
	}
}

// holdNextModified makes the next OnInvitationModified wait until release
// is closed; entered is closed when it starts waiting.
func (r *recorder) holdNextModified() (release, entered chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gate, r.entered = make(chan struct{}), make(chan struct{})
	return r.gate, r.entered
}

// next returns the next event.
func (r *recorder) next() any {
	r.t.Helper()
	select {
	case v := <-r.events:
		return v
	case <-time.After(waitFor):
		r.t.Fatalf("no event within %v", waitFor)
		return nil
	}
}

// expect requires the next event to be a T and returns it.
func expect[T any](r *recorder) T {
	r.t.Helper()
	v := r.next()
	ev, ok := v.(T)
	if !ok {
		var want T
		r.t.Fatalf("got event %#v, want a %T", v, want)
	}
	return ev
}

// waitState returns the next state change into st, skipping others.
func (r *recorder) waitState(st client.State) client.StateChange {
	r.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case ch := <-r.states:
			if ch.State == st {
				return ch
			}
		case <-deadline:
			r.t.Fatalf("no change to %v within %v", st, waitFor)
		}
	}
}

// user is one logged-in Client and what its listener was told.
type user struct {
	*client.Client
	id  string
	rec *recorder
	res *client.LoginResult // the first login's
}

// testOptions are Client options for tests: quick reconnects.
func testOptions() client.Options {
	return client.Options{Backoff: client.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Policy: 300 * time.Millisecond}}
}

// login creates a Client of url with o (its Listener replaced by a
// recorder), logs id in and closes the Client at the end of the test.
func login(t testing.TB, url, id string, o client.Options, lo ...func(*client.LoginOptions)) *user {
	t.Helper()
	rec := newRecorder(t)
	o.Listener = rec.listener()
	c, err := client.New(url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	opts := client.LoginOptions{UserID: id, UserSig: token(t, id)}
	for _, f := range lo {
		f(&opts)
	}
	res, err := c.Login(ctxT(t), opts)
	if err != nil {
		t.Fatalf("login %s: %v", id, err)
	}
	rec.waitState(client.StateConnected)
	return &user{Client: c, id: id, rec: rec, res: res}
}

// ctxT is a context that bounds one request of a test.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func ok(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// barrier proves that u's listener has been told nothing since the last
// expected event: another user rings u, and that ring must be the next
// event (events are told in the order the server sends them).
func barrier(t testing.TB, from, u *user) {
	t.Helper()
	id := must[string](t)(from.Invite(ctxT(t), u.id, "barrier", client.InviteOptions{}))
	if ev := expect[client.ReceiveNewInvitationEvent](u.rec); ev.InviteID != id {
		t.Fatalf("before the barrier ring %s: %#v", id, ev)
	}
	ok(t, from.Cancel(ctxT(t), id, ""))
	expect[client.InvitationCancelledEvent](u.rec)
}

// writeWatcher is a Dialer whose connections report each write, so that a
// test knows when a request has left the client.
type writeWatcher struct {
	writes chan struct{}
}

func newWriteWatcher() (*writeWatcher, *client.Dialer) {
	w := &writeWatcher{writes: make(chan struct{}, 100)}
	nd := &net.Dialer{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := nd.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &watchedConn{Conn: c, w: w}, nil
	}}
	return w, &client.Dialer{HTTPClient: &http.Client{Transport: tr}}
}

type watchedConn struct {
	net.Conn
	w *writeWatcher
}

func (c *watchedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	select {
	case c.w.writes <- struct{}{}:
	default:
	}
	return n, err
}

// wait waits for the next write.
func (w *writeWatcher) wait(t testing.TB) {
	t.Helper()
	select {
	case <-w.writes:
	case <-time.After(waitFor):
		t.Fatal("nothing written")
	}
}

// drain forgets the writes so far.
func (w *writeWatcher) drain() {
	for {
		select {
		case <-w.writes:
		default:
			return
		}
	}
}

// waitLastEventID waits until u's Client has processed eventID: the
// listener runs on a goroutine of the Client's, which records the eventID
// once the callback has returned.
func waitLastEventID(t testing.TB, u *user, eventID string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for u.LastEventID() != eventID {
		if time.Now().After(deadline) {
			t.Fatalf("%s: last eventID %q, want %q", u.id, u.LastEventID(), eventID)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pingThrough pings until a ping is answered: one sent on a connection
// that is being lost fails with ErrConnectionLost, and a ping may be sent
// again.
func pingThrough(t testing.TB, u *user) {
	t.Helper()
	for {
		_, err := u.Ping(ctxT(t))
		if !errors.Is(err, client.ErrConnectionLost) {
			ok(t, err)
			return
		}
	}
}
