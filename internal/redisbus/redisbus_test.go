package redisbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/bus"
	"github.com/signald/signald/internal/bus/bustest"
	"github.com/signald/signald/internal/hub"
	"github.com/signald/signald/internal/leaktest"
	"github.com/signald/signald/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// startBus makes a Bus and runs it until the end of the test.
func startBus(t testing.TB, o Options, tune ...func(*Bus)) *Bus {
	t.Helper()
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tune {
		f(b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return 10 s after its context ended")
		}
	})
	return b
}

// factory returns a NewNodeFunc of buses sharing c and prefix, each with
// its own hub and node name.
func factory(c redis.UniversalClient, prefix string) bustest.NewNodeFunc {
	var n atomic.Int32
	return func(t *testing.T) (bustest.Node, bool) {
		name := "node" + strconv.Itoa(int(n.Add(1)))
		hb := bustest.NewHub(t)
		b := startBus(t, Options{Client: c, Prefix: prefix, Node: name, Hub: hb, Keep: bustest.Keep, KeepBytes: bustest.KeepBytes})
		return bustest.Node{Name: name, Bus: b, Hub: hb}, true
	}
}

func TestContract(t *testing.T) {
	leaks(t)
	bustest.Run(t, func(t *testing.T) bustest.NewNodeFunc {
		c, prefix := redistest.NewClient(t)
		return factory(c, prefix)
	})
}

// TestContractRESP2 runs the contract over RESP2, where Pub/Sub replies
// (to PING in particular) have another shape than over RESP3.
func TestContractRESP2(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bustest.NewNodeFunc {
		_, prefix := redistest.NewClient(t) // the prefix, and its keys deleted at the end
		c := redis.NewClient(&redis.Options{Addr: redistest.Addr(t), Protocol: 2})
		t.Cleanup(func() { c.Close() })
		return factory(c, prefix)
	})
}

// TestContractOnCluster runs the contract on a one-node Redis Cluster,
// which refuses scripts and SSUBSCRIBEs whose keys or channels span slots.
func TestContractOnCluster(t *testing.T) {
	cc := startCluster(t, 1)
	ctx := context.Background()
	// The check is real: a script with a shebang that touches two slots
	// fails.
	if err := cc.Eval(ctx, "#!lua\nreturn redis.call('SPUBLISH', KEYS[1], 'x')", []string{"{a}x"}).Err(); err != nil {
		t.Fatalf("a one-slot script failed: %v", err)
	}
	if err := cc.Eval(ctx, "#!lua\nreturn redis.call('SPUBLISH', 'b', 'x')", []string{"{a}x"}).Err(); err == nil {
		t.Fatal("the cluster ran a script over two slots: this test checks nothing")
	}
	// slot groups channels for SSUBSCRIBE as the cluster does.
	for _, key := range []string{"foo", "{user1000}.following", "{}x", "a{b}c", "a{}b{c}", "signald:ch:{u:bob}", "signald:ch:{u:b}ob}", ""} {
		want, err := cc.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := slot(key); int64(got) != want {
			t.Errorf("slot(%q) = %d, CLUSTER KEYSLOT says %d", key, got, want)
		}
	}
	bustest.Run(t, func(t *testing.T) bustest.NewNodeFunc {
		return factory(cc, "t:"+strings.ReplaceAll(t.Name(), "/", ".")+":")
	})
}

// TestContractOnThreeMasters runs the contract on a cluster of three
// masters, where a shard channel can only be subscribed on the master that
// owns its slot, so that a bus needs one connection per master.
func TestContractOnThreeMasters(t *testing.T) {
	cc := startCluster(t, 3)
	bustest.Run(t, func(t *testing.T) bustest.NewNodeFunc {
		return factory(cc, "t:"+strings.ReplaceAll(t.Name(), "/", ".")+":")
	})
}

// users spans many slots, hence all masters of a three-master cluster.
var users = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}

func TestResubscribeAfterKill(t *testing.T) {
	leaks(t)
	addr, _ := redistest.StartServer(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	testResubscribe(t, c, 1, func() {
		if err := c.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestResubscribeAfterKillOnCluster(t *testing.T) {
	// go-redis subscribes again with one SSUBSCRIBE of every channel, which
	// a cluster refuses: the bus must do it itself.
	for _, masters := range []int{1, 3} {
		t.Run(strconv.Itoa(masters), func(t *testing.T) {
			cc := startCluster(t, masters)
			testResubscribe(t, cc, masters, func() {
				err := cc.ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
					return c.ClientKillByFilter(ctx, "TYPE", "pubsub").Err()
				})
				if err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// testResubscribe checks that after kill drops the bus's subscription
// connections (conns of them), the bus subscribes again by itself and
// delivers in order.
func testResubscribe(t *testing.T, c redis.UniversalClient, conns int, kill func()) {
	ctx := context.Background()
	logs := newLogRecorder()
	hb := bustest.NewHub(t)
	b := startBus(t, Options{Client: c, Node: "n1", Hub: hb, Logger: logs.logger()})
	sinks := make([]*bustest.Sink, len(users))
	for i, u := range users {
		if err := b.Watch(ctx, u); err != nil {
			t.Fatal(err)
		}
		sinks[i] = bustest.NewSink()
		hb.Register(u, sinks[i])
	}
	publish := func(n int) {
		t.Helper()
		reach, err := b.Publish(ctx, bus.Envelope{Users: users, Frame: fmt.Appendf(nil, `{"event":"e","n":%d}`, n), Keep: true, Kind: "e"})
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(reach, func(r bus.Reach) bool { return !r.Online }) {
			t.Fatalf("reach %v", reach)
		}
	}
	publish(1)
	for _, s := range sinks {
		s.WaitFor(t, 1)
	}

	kill()
	logs.waitFor(t, "subscriptions restored", conns)
	publish(2)
	for i, s := range sinks {
		got := s.WaitFor(t, 2)
		if len(got) != 2 || !strings.Contains(string(got[1]), `"n":2`) || string(got[0]) >= string(got[1]) {
			t.Fatalf("%s got %q", users[i], got)
		}
	}
	// Once per connection.
	if n, m := logs.count("subscription connection broken"), logs.count("subscriptions restored"); n != conns || m != conns {
		t.Fatalf("logged %d breaks and %d restorations; want %d of each", n, m, conns)
	}
}

// TestSilentConnection checks that a subscription connection that stops
// carrying anything, without breaking (a lost peer, a black-holing
// network), is given up and made again.
func TestSilentConnection(t *testing.T) {
	leaks(t)
	ctx := context.Background()
	direct, prefix := redistest.NewClient(t)
	px := redistest.StartProxy(t, redistest.Addr(t))
	viaProxy := redis.NewClient(&redis.Options{Addr: px.Addr})
	t.Cleanup(func() { viaProxy.Close() })

	logs := newLogRecorder()
	hb := bustest.NewHub(t)
	a := startBus(t, Options{Client: viaProxy, Prefix: prefix, Node: "a", Hub: hb, Logger: logs.logger()},
		func(b *Bus) { b.pingEvery = 100 * time.Millisecond })
	b := startBus(t, Options{Client: direct, Prefix: prefix, Node: "b", Hub: bustest.NewHub(t)})
	sink := bustest.NewSink()
	if err := a.Watch(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	hb.Register("bob", sink)
	env := bus.Envelope{Users: []string{"bob"}, Frame: []byte(`{"event":"e"}`), Keep: true, Kind: "e"}
	if _, err := b.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	sink.WaitFor(t, 1)

	px.Silence()
	logs.waitFor(t, "subscriptions restored", 1)
	if _, err := b.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	sink.WaitFor(t, 2)
}

// TestRedisRestarted checks that the bus carries on when Redis restarts,
// empty: it subscribes again and loads its scripts again. (The proxy stands
// in for a restart on the same address.)
func TestRedisRestarted(t *testing.T) {
	leaks(t)
	ctx := context.Background()
	before, _ := redistest.StartServer(t)
	after, _ := redistest.StartServer(t)
	px := redistest.StartProxy(t, before)
	c := redis.NewClient(&redis.Options{Addr: px.Addr})
	t.Cleanup(func() { c.Close() })
	logs := newLogRecorder()
	hb := bustest.NewHub(t)
	b := startBus(t, Options{Client: c, Node: "n1", Hub: hb, Logger: logs.logger()})
	sink := bustest.NewSink()
	if err := b.Watch(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	hb.Register("bob", sink)
	env := bus.Envelope{Users: []string{"bob"}, Frame: []byte(`{"event":"e"}`), Keep: true, Kind: "e"}
	if _, err := b.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	first, _ := b.Last(ctx, "bob")
	sink.WaitFor(t, 1)

	px.MoveTo(after)
	logs.waitFor(t, "subscriptions restored", 1)
	if reach, err := b.Publish(ctx, env); err != nil || !reach[0].Online {
		t.Fatalf("Publish after the restart: %v, %v", reach, err)
	}
	sink.WaitFor(t, 2)
	// The events kept before the restart are gone, and Replay says so.
	if _, ok, err := b.Replay(ctx, "bob", first); err != nil || ok {
		t.Fatalf("Replay of an ID from before the restart: %v, %v; want false", ok, err)
	}
}

// TestRedisStopped checks that without Redis the bus fails fast, wrapping
// bus.ErrUnavailable, and that Run keeps going without spinning.
func TestRedisStopped(t *testing.T) {
	leaks(t)
	ctx := context.Background()
	addr, stop := redistest.StartServer(t)
	var dials atomic.Int64
	c := redis.NewClient(&redis.Options{
		Addr:         addr,
		DialTimeout:  200 * time.Millisecond,
		ReadTimeout:  200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond,
		PoolTimeout:  200 * time.Millisecond,
		MaxRetries:   1,
		// go-redis dials 5 times, 100 ms apart, by default.
		DialerRetries: 1,
	})
	c.AddHook(dialCounter{&dials})
	t.Cleanup(func() { c.Close() })
	logs := newLogRecorder()
	hb := bustest.NewHub(t)
	b, err := New(Options{Client: c, Node: "n1", Hub: hb, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	b.pingEvery = 100 * time.Millisecond
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	sink := bustest.NewSink()
	if err := b.Watch(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	hb.Register("bob", sink)
	env := bus.Envelope{Users: []string{"bob"}, Frame: []byte(`{"event":"e","n":1}`), Keep: true, InviteID: "i", Kind: "e"}
	if _, err := b.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	sink.WaitFor(t, 1)
	last, err := b.Last(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}

	// A stall of twice pingEvery, before the stop, may already have broken
	// the subscription: only the breaks from here on count, once it is
	// whole again (a break is logged once, until it is restored).
	restoredBy := time.Now().Add(10 * time.Second)
	for logs.count("subscriptions restored") < logs.count("subscription connection broken") {
		if time.Now().After(restoredBy) {
			t.Fatal("the subscription, broken before the stop, was not restored within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	breaks := logs.count("subscription connection broken")
	stop()
	calls := map[string]func(ctx context.Context) error{
		"Publish": func(ctx context.Context) error { _, err := b.Publish(ctx, env); return err },
		"Replay":  func(ctx context.Context) error { _, _, err := b.Replay(ctx, "bob", last); return err },
		"Last":    func(ctx context.Context) error { _, err := b.Last(ctx, "bob"); return err },
		"RungAs":  func(ctx context.Context) error { _, err := b.RungAs(ctx, "bob", []string{"i"}); return err },
		"Watch":   func(ctx context.Context) error { return b.Watch(ctx, "carol") },
		"Ping":    b.Ping,
	}
	for name, call := range calls {
		start := time.Now()
		// The context is only a backstop: the client's own timeouts must
		// end the call far sooner.
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		err := call(cctx)
		ccancel()
		if !errors.Is(err, bus.ErrUnavailable) {
			t.Errorf("%s with Redis stopped: %v; want bus.ErrUnavailable", name, err)
		}
		d := time.Since(start)
		if d > 10*time.Second {
			t.Errorf("%s with Redis stopped took %v", name, d)
		}
		t.Logf("%s with Redis stopped: %v after %v", name, err, d)
	}
	start := time.Now()
	b.Unwatch("bob")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Unwatch with Redis stopped took %v; it gives up after %v", d, unwatchTimeout)
	}

	logs.waitFor(t, "subscription connection broken", breaks+1)
	// Run keeps trying, but with backoff: few dials and little CPU over a
	// second.
	d0, cpu0 := dials.Load(), cpuTime(t)
	time.Sleep(time.Second)
	n, cpu := dials.Load()-d0, cpuTime(t)-cpu0
	t.Logf("with Redis stopped, in 1 s: %d dials, %v of CPU", n, cpu)
	if n > 30 {
		t.Errorf("%d dials in 1 s with Redis stopped", n)
	}
	if cpu > 300*time.Millisecond {
		t.Errorf("%v of CPU in 1 s with Redis stopped", cpu)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while its context is alive", err)
	default:
	}
	if n := logs.count("subscription connection broken") - breaks; n != 1 {
		t.Errorf("logged the break %d times after the stop, want 1", n)
	}
}

// TestScriptsFlushed checks that the bus loads its scripts again when Redis
// forgot them (a restart, a failover, SCRIPT FLUSH).
func TestScriptsFlushed(t *testing.T) {
	ctx := context.Background()
	t.Run("server", func(t *testing.T) {
		addr, _ := redistest.StartServer(t)
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		testScriptsFlushed(t, c, func() error { return c.ScriptFlush(ctx).Err() })
	})
	t.Run("cluster", func(t *testing.T) {
		cc := startCluster(t, 3)
		testScriptsFlushed(t, cc, func() error {
			return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.ScriptFlush(ctx).Err() })
		})
	})
}

func testScriptsFlushed(t *testing.T, c redis.UniversalClient, flush func() error) {
	ctx := context.Background()
	b := startBus(t, Options{Client: c, Node: "n1", Hub: bustest.NewHub(t)})
	env := bus.Envelope{Users: users, Frame: []byte(`{"event":"e"}`), Keep: true, Kind: "e"}
	var firsts []string
	for range 2 {
		if err := flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Publish(ctx, env); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		first, _ := b.Last(ctx, users[0])
		firsts = append(firsts, first)
	}
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	frames, ok, err := b.Replay(ctx, users[0], firsts[0])
	if err != nil || !ok || len(frames) != 1 || !strings.Contains(string(frames[0].Frame), firsts[1]) {
		t.Fatalf("Replay = %+v, %v, %v", frames, ok, err)
	}
	for _, u := range users {
		if n := c.XLen(ctx, b.streamKey(u)).Val(); n != 2 {
			t.Fatalf("%s has %d events, want 2: each published once", u, n)
		}
	}
}

// TestReplayOfExpiredStream checks that an ID issued before a user's events
// expired is not recovered on the stream that replaces them.
func TestReplayOfExpiredStream(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.NewClient(t)
	b := startBus(t, Options{Client: c, Prefix: prefix, Node: "n1", Hub: bustest.NewHub(t), Keep: 3})
	env := bus.Envelope{Users: []string{"bob"}, Frame: []byte(`{"event":"e"}`), Keep: true, Kind: "e"}
	if _, err := b.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	old, _ := b.Last(ctx, "bob")
	if err := c.Del(ctx, b.streamKey("bob")).Err(); err != nil { // as if expired
		t.Fatal(err)
	}
	if _, ok, err := b.Replay(ctx, "bob", old); err != nil || ok {
		t.Fatalf("Replay after an expired stream: %v, %v", ok, err)
	}
	// A real expiry comes a retention later; here the new stream must at
	// least not start in the same millisecond, or Redis reissues old's ID.
	oldMs, _ := strconv.ParseInt(strings.SplitN(old, "-", 2)[0], 10, 64)
	for deadline := time.Now().Add(time.Second); time.Now().UnixMilli() <= oldMs && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	for range 2 {
		if _, err := b.Publish(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := b.Replay(ctx, "bob", old); err != nil || ok {
		t.Fatalf("Replay of an ID of the expired stream: %v, %v; want false", ok, err)
	}
	if ttl := c.PTTL(ctx, b.streamKey("bob")).Val(); ttl <= 0 || ttl > DefaultRetention {
		t.Fatalf("stream TTL %v", ttl)
	}
}

// TestRungIsBounded checks that the hash of rung invitations does not grow
// without bound for a user rung again and again.
func TestRungIsBounded(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.NewClient(t)
	const keep = 3
	b := startBus(t, Options{Client: c, Prefix: prefix, Node: "n1", Hub: bustest.NewHub(t), Keep: keep})
	for i := range 20 {
		env := bus.Envelope{Users: []string{"bob"}, Frame: []byte(`{"event":"e"}`), Keep: true, InviteID: "inv" + strconv.Itoa(i), Kind: "e"}
		if _, err := b.Publish(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.HLen(ctx, b.rungKey("bob")).Val(); n > 2*keep {
		t.Fatalf("%d invitations remembered, want at most %d", n, 2*keep)
	}
	last, _ := b.Last(ctx, "bob")
	got, err := b.RungAs(ctx, "bob", []string{"inv19", "inv0"})
	if err != nil || !slices.Equal(got, []string{last, ""}) {
		t.Fatalf("RungAs = %q, %v", got, err)
	}
}

func TestNotKeptCarriesNoEventID(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.NewClient(t)
	hb := bustest.NewHub(t)
	b := startBus(t, Options{Client: c, Prefix: prefix, Node: "n1", Hub: hb})
	s := bustest.NewSink()
	if err := b.Watch(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Unwatch("bob") })
	hb.Register("bob", s)
	if _, err := b.Publish(ctx, bus.Envelope{Users: []string{"bob"}, Frame: []byte(`{"event":"e"}`), Kind: "e"}); err != nil {
		t.Fatal(err)
	}
	if got := s.WaitFor(t, 1); string(got[0]) != `{"event":"e"}` {
		t.Fatalf("got %s", got[0])
	}
	if last, _ := b.Last(ctx, "bob"); last != "" {
		t.Fatalf("Last = %q after an event not kept", last)
	}
}

func TestWatchCounts(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.NewClient(t)
	b := startBus(t, Options{Client: c, Prefix: prefix, Node: "n1", Hub: bustest.NewHub(t)})
	online := func() bool {
		t.Helper()
		o, err := b.Publish(ctx, bus.Envelope{Users: []string{"bob"}, Frame: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		return o[0].Online
	}
	b.Unwatch("bob") // not watched: nothing happens
	for range 2 {
		if err := b.Watch(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
	}
	b.Unwatch("bob")
	if !online() {
		t.Fatal("offline after one of two Unwatch")
	}
	b.Unwatch("bob")
	if online() {
		t.Fatal("online after the last Unwatch")
	}
	b.Unwatch("bob")
	if err := b.Watch(ctx, "bob"); err != nil || !online() {
		t.Fatalf("Watch again: %v, online %v", err, online())
	}
}

func TestIDs(t *testing.T) {
	for _, tc := range []struct {
		raw, id string
	}{
		{"1700000000123-0", "1700000000123-0000000000"},
		{"5-17", "0000000000005-0000000017"},
		{"1700000000123-9999999999", "1700000000123-9999999999"},
	} {
		id, ok := padID(tc.raw)
		if !ok || id != tc.id {
			t.Errorf("padID(%q) = %q, %v; want %q", tc.raw, id, ok, tc.id)
		}
		ms, seq, ok := parseID(id)
		if !ok || fmt.Sprintf("%d-%d", ms, seq) != tc.raw {
			t.Errorf("parseID(%q) = %d, %d, %v", id, ms, seq, ok)
		}
	}
	for _, bad := range []string{"", "1-", "-1", "a-1", "17000000001234-0", "1-12345678901"} {
		if _, ok := padID(bad); ok {
			t.Errorf("padID(%q) succeeded", bad)
		}
	}
	for _, bad := range []string{"", "garbage", "1700000000123-000000000", "1700000000123_0000000000", "170000000012x-0000000000", "91700000000123-0000000000"} {
		if _, _, ok := parseID(bad); ok {
			t.Errorf("parseID(%q) succeeded", bad)
		}
	}
}

func TestOptions(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	ring := redis.NewRing(&redis.RingOptions{})
	defer ring.Close()
	hb := bustest.NewHub(t)
	for name, o := range map[string]Options{
		"no client":    {Node: "n", Hub: hb},
		"ring":         {Client: ring, Node: "n", Hub: hb},
		"brace":        {Client: c, Prefix: "a{", Node: "n", Hub: hb},
		"no node":      {Client: c, Hub: hb},
		"newline node": {Client: c, Node: "a\nb", Hub: hb},
		"no hub":       {Client: c, Node: "n"},
		"keep":         {Client: c, Node: "n", Hub: hb, Keep: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			c, prefix := redistest.NewClient(b)
			hb, err := hub.NewHub(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			bb := startBus(b, Options{Client: c, Prefix: prefix, Node: "n1", Hub: hb})
			env := bus.Envelope{Frame: []byte(`{"event":"onInviteeAccepted","data":{"inviteID":"0123456789abcdef","invitee":"bob"}}`), Keep: true, Kind: "e"}
			for i := range n {
				env.Users = append(env.Users, "user"+strconv.Itoa(i))
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bb.Publish(ctx, env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// startCluster starts a Redis Cluster of masters servers, each owning an
// equal share of the slots, and returns a client of it.
func startCluster(t *testing.T, masters int) *redis.ClusterClient {
	t.Helper()
	ctx := context.Background()
	addrs := make([]string, masters)
	clients := make([]*redis.Client, masters)
	for i := range masters {
		addrs[i], _ = redistest.StartServer(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-announce-ip", "127.0.0.1")
		clients[i] = redis.NewClient(&redis.Options{Addr: addrs[i]})
		defer clients[i].Close()
		lo, hi := i*16384/masters, (i+1)*16384/masters-1
		if err := clients[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
		}
	}
	for _, a := range addrs[1:] {
		host, port, _ := net.SplitHostPort(a)
		if err := clients[0].ClusterMeet(ctx, host, port).Err(); err != nil {
			t.Fatalf("CLUSTER MEET: %v", err)
		}
	}
	for _, c := range clients {
		for deadline := time.Now().Add(20 * time.Second); ; {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(masters)+"\r") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ready: %q, %v", info, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { cc.Close() })
	return cc
}

// leaks fails the test if goroutines started during it outlive it and its
// cleanups.
func leaks(t *testing.T) { leaktest.Check(t, redistest.IgnoreServer()) }

func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type dialCounter struct{ n *atomic.Int64 }

func (h dialCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.n.Add(1)
		return next(ctx, network, addr)
	}
}

func (h dialCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h dialCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// logRecorder is a slog handler that keeps the messages logged.
type logRecorder struct {
	mu     sync.Mutex
	msgs   []string // guarded by mu
	signal chan struct{}
}

func newLogRecorder() *logRecorder { return &logRecorder{signal: make(chan struct{}, 1)} }

func (l *logRecorder) logger() *slog.Logger { return slog.New(l) }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	select {
	case l.signal <- struct{}{}:
	default:
	}
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }

func (l *logRecorder) WithGroup(string) slog.Handler { return l }

func (l *logRecorder) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// waitFor waits until n messages containing substr have been logged.
func (l *logRecorder) waitFor(t *testing.T, substr string, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for l.count(substr) < n {
		select {
		case <-l.signal:
		case <-deadline:
			t.Fatalf("%q logged %d times after 10 s, want %d", substr, l.count(substr), n)
		}
	}
}
