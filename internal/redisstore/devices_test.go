package redisstore

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/device"
	"github.com/signald/signald/internal/device/devicetest"
	"github.com/signald/signald/internal/push"
	"github.com/signald/signald/internal/push/queuetest"
	"github.com/signald/signald/internal/redistest"
)

var (
	deviceScripts = map[string]*redis.Script{"tokset": toksetScript, "devput": devputScript, "devdel": devdelScript, "devremove": devremoveScript, "tokdel": tokdelScript}
	queueScripts  = map[string]*redis.Script{"pushadd": pushaddScript, "pushmark": pushmarkScript, "pushrung": pushrungScript, "claim": claimScript}
)

// requireScripts fails t unless every one of scripts ran under the check.
func (h *slotChecker) requireScripts(t *testing.T, scripts map[string]*redis.Script) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, s := range scripts {
		if h.seen[s.Hash()] == 0 {
			t.Errorf("script %s never ran under the slot check", name)
		}
	}
}

func TestDeviceContract(t *testing.T) {
	slots := newSlotChecker(t)
	devicetest.Run(t, func(t *testing.T) device.Store {
		s, _, _ := newStore(t, slots)
		return s
	})
	slots.requireScripts(t, deviceScripts)
}

// TestDeviceContractOnCluster: as TestContractOnCluster, for registrations,
// whose moves touch two users' slots.
func TestDeviceContractOnCluster(t *testing.T) {
	cc := startCluster(t)
	slots := newSlotChecker(t)
	cc.AddHook(slots)
	devicetest.Run(t, func(t *testing.T) device.Store {
		return mustNew(t, cc, "t:"+strings.ReplaceAll(t.Name(), "/", ".")+":")
	})
	slots.requireScripts(t, deviceScripts)
}

func TestQueueContract(t *testing.T) {
	slots := newSlotChecker(t)
	queuetest.Run(t, func(t *testing.T) push.Queue {
		s, _, _ := newStore(t, slots)
		return s
	})
	slots.requireScripts(t, queueScripts)
}

func TestQueueContractOnCluster(t *testing.T) {
	cc := startCluster(t)
	slots := newSlotChecker(t)
	cc.AddHook(slots)
	queuetest.Run(t, func(t *testing.T) push.Queue {
		return mustNew(t, cc, "t:"+strings.ReplaceAll(t.Name(), "/", ".")+":")
	})
	slots.requireScripts(t, queueScripts)
}

func devicesOf(t *testing.T, s *Store, users ...string) [][]device.Registration {
	t.Helper()
	got, err := s.Devices(context.Background(), users)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestRegisterDiesHalfway plays a Register that dies after each of its
// steps, and one whose steps come late: a token is never pushed to two
// devices, and the next Register of it leaves one.
func TestRegisterDiesHalfway(t *testing.T) {
	ctx := context.Background()
	s, c, _ := newStore(t, nil)
	alice := device.Registration{User: "alice", Device: "phone", Platform: device.FCM, Token: "T", Updated: 1}
	bob := device.Registration{User: "bob", Device: "tablet", Platform: device.FCM, Token: "T", Updated: 2}
	register := func(r device.Registration) {
		t.Helper()
		if err := s.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// The steps of Register by hand.
	step1 := func(r device.Registration) (prev, version string) {
		t.Helper()
		res, err := toksetScript.Run(ctx, c, []string{s.tokKey(r.Platform, r.Token)}, devOwner(r.User, r.Device)).StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		return res[0], res[1]
	}
	step2 := func(r device.Registration, version string) {
		t.Helper()
		err := devputScript.Run(ctx, c, []string{s.devKey(r.User)}, devField(r.Device, r.Platform), encodeDevValue(r, version), r.Token, version).Err()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
	}
	devdel := func(user, dev string, p device.Platform, token, maxVersion string) {
		t.Helper()
		err := devdelScript.Run(ctx, c, []string{s.devKey(user)}, devField(dev, p), token, maxVersion).Err()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
	}
	fields := func(user string) int64 {
		t.Helper()
		n, err := c.HLen(ctx, s.devKey(user)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	want := func(what string, want ...[]device.Registration) {
		t.Helper()
		if got := devicesOf(t, s, "alice", "bob"); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: Devices(alice, bob) = %+v, want %+v", what, got, want)
		}
	}

	register(alice)
	// Died after (1): the index names bob's tablet, which has no
	// registration; alice's phone is no longer pushed.
	step1(bob)
	want("after a Register died after its first step", nil, nil)
	// Died after (2): bob's tablet is pushed, alice's registration is
	// left, not pushed.
	_, v := step1(bob)
	step2(bob, v)
	want("after a Register died after its second step", nil, []device.Registration{bob})
	if fields("alice") != 1 {
		t.Fatal("alice's registration is not left over: this test checks nothing")
	}
	// alice registers again: bob's goes, hers is replaced.
	alice.Updated = 3
	register(alice)
	want("after alice registered again", []device.Registration{alice}, nil)
	if n := fields("bob"); n != 0 {
		t.Fatalf("bob's hash has %d fields, want none", n)
	}

	// Late steps: bob's Register displaces alice's registration, alice
	// registers again in full, then bob's steps (2) to (4) come. Bob's
	// (3) must not remove alice's newer registration, and his (4) removes
	// his own.
	prev, v := step1(bob)
	alice.Updated = 4
	register(alice)
	step2(bob, v)
	owner, _ := decodeList(prev)
	devdel(owner[0], owner[1], device.FCM, "T", owner[2])
	if cur, err := c.Get(ctx, s.tokKey(device.FCM, "T")).Result(); err != nil || strings.HasPrefix(cur, devOwner("bob", "tablet")) {
		t.Fatalf("index entry %q, %v: want alice's", cur, err)
	}
	want("after bob's late second and third steps", []device.Registration{alice}, nil)
	devdel("bob", "tablet", device.FCM, "T", v)
	want("after bob's late fourth step", []device.Registration{alice}, nil)
	if a, b := fields("alice"), fields("bob"); a != 1 || b != 0 {
		t.Fatalf("alice's hash has %d fields, bob's %d; want 1 and 0", a, b)
	}

	// A device racing itself while bob moves the token in between: alice's
	// first Register takes the index, bob's displaces it, alice's second
	// displaces bob's and writes its registration, then the first writes
	// its own (late), then bob's Register goes on. The second must keep its
	// registration: the first's must not overwrite it, since bob's step
	// (3) removes what he displaced, the first.
	_, v1 := step1(alice)
	bobPrev, vb := step1(bob)
	alicePrev, v2 := step1(alice)
	first, second := alice, alice
	first.Updated, second.Updated = 5, 6
	step2(second, v2)
	owner, _ = decodeList(alicePrev)
	devdel(owner[0], owner[1], device.FCM, "T", owner[2]) // alice's second, step (3)
	step2(first, v1)
	owner, _ = decodeList(bobPrev)
	devdel(owner[0], owner[1], device.FCM, "T", owner[2]) // bob's, step (3)
	step2(bob, vb)
	devdel("bob", "tablet", device.FCM, "T", vb) // bob's step (4): displaced
	want("after a device raced itself across a move", []device.Registration{second}, nil)
	register(bob)
	want("after the token moved on", nil, []device.Registration{bob})
	if n := fields("alice"); n != 0 {
		t.Fatalf("alice's hash has %d fields after the move, want none", n)
	}
}

// TestSwitchBackAndForth: a device registers a token, then another, while
// a Register of the first one again is under way: the second's cleanup of
// the token it replaced must leave the index entry of the Register under
// way, which ends holding the registration.
func TestSwitchBackAndForth(t *testing.T) {
	ctx := context.Background()
	s, c, _ := newStore(t, nil)
	t1 := device.Registration{User: "alice", Device: "phone", Platform: device.FCM, Token: "T1", Updated: 1}
	t2 := t1
	t2.Token, t2.Updated = "T2", 2
	if err := s.Register(ctx, t1); err != nil {
		t.Fatal(err)
	}
	// T1 again: step (1) only, for now.
	res, err := toksetScript.Run(ctx, c, []string{s.tokKey(device.FCM, "T1")}, devOwner("alice", "phone")).StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Register(ctx, t2); err != nil {
		t.Fatal(err)
	}
	// The rest of T1's Register, as Register does it.
	again := t1
	again.Updated = 3
	replaced, err := devputScript.Run(ctx, c, []string{s.devKey("alice")}, devField("phone", device.FCM), encodeDevValue(again, res[1]), "T1", res[1]).Text()
	if err != nil {
		t.Fatal(err)
	}
	old, err := decodeDevEntry(devField("phone", device.FCM), replaced)
	if err != nil || old.token != "T2" {
		t.Fatalf("replaced %+v, %v; want T2", old, err)
	}
	if err := tokdelScript.Run(ctx, c, []string{s.tokKey(device.FCM, "T2")}, devOwner("alice", "phone"), old.version).Err(); err != nil {
		t.Fatal(err)
	}
	if got := devicesOf(t, s, "alice"); !reflect.DeepEqual(got, [][]device.Registration{{again}}) {
		t.Fatalf("Devices(alice) = %+v, want T1 registered again", got)
	}
	if n, err := c.Exists(ctx, s.tokKey(device.FCM, "T2")).Result(); err != nil || n != 0 {
		t.Fatalf("T2's index entry is left: %d, %v", n, err)
	}
}

// TestTokenVersionsRise: a token's index entry keeps a rising version even
// when removed in between, so that a step of an old Register never passes
// for a newer one.
func TestTokenVersionsRise(t *testing.T) {
	ctx := context.Background()
	s, c, _ := newStore(t, nil)
	key := s.tokKey(device.FCM, "T")
	var last float64
	for i := range 5 {
		res, err := toksetScript.Run(ctx, c, []string{key}, devOwner("alice", "phone")).StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseFloat(res[1], 64)
		if err != nil || v <= last || strings.ContainsAny(res[1], "e.") {
			t.Fatalf("version %q after %v", res[1], last)
		}
		last = v
		if i%2 == 1 {
			if err := c.Del(ctx, key).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestDropKeepsIndexOfOthers: Drop of a registration leaves the index
// entry of the token's new owner, and the new owner pushed.
func TestDropKeepsIndexOfOthers(t *testing.T) {
	ctx := context.Background()
	s, c, _ := newStore(t, nil)
	alice := device.Registration{User: "alice", Device: "phone", Platform: device.APNsVoIP, Token: "T", Updated: 1}
	bob := alice
	bob.User = "bob"
	for _, r := range []device.Registration{alice, bob} {
		if err := s.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	before, err := c.Get(ctx, s.tokKey(device.APNsVoIP, "T")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Drop(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if after, err := c.Get(ctx, s.tokKey(device.APNsVoIP, "T")).Result(); err != nil || after != before {
		t.Fatalf("bob's index entry %q became %q, %v", before, after, err)
	}
	if got := devicesOf(t, s, "bob"); !reflect.DeepEqual(got, [][]device.Registration{{bob}}) {
		t.Fatalf("bob's registrations after Drop of alice's: %+v", got)
	}
	// Dropped for good: no key is left behind.
	if err := s.Drop(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Exists(ctx, s.tokKey(device.APNsVoIP, "T"), s.devKey("bob"), s.devKey("alice")).Result(); err != nil || n != 0 {
		t.Fatalf("%d keys left after dropping every registration, %v", n, err)
	}
}

// TestDevicesQueueUnavailable stops Redis under a Store: every method of
// device.Store and push.Queue must fail soon with an error that wraps its
// interface's ErrUnavailable.
func TestDevicesQueueUnavailable(t *testing.T) {
	ctx := context.Background()
	addr, stop := redistest.StartServer(t)
	c := redis.NewClient(&redis.Options{
		Addr:          addr,
		DialTimeout:   200 * time.Millisecond,
		ReadTimeout:   200 * time.Millisecond,
		WriteTimeout:  200 * time.Millisecond,
		MaxRetries:    -1,
		DialerRetries: 1,
	})
	t.Cleanup(func() { c.Close() })
	s := mustNew(t, c, "")
	now := time.Now().UnixMilli()
	r := device.Registration{User: "alice", Device: "phone", Platform: device.FCM, Token: "T"}
	j := queuetest.NewJob("inv", "bob", "phone", push.KindRing, now+30_000)
	if err := s.Register(ctx, r); err != nil {
		t.Fatal(err)
	}
	stop()

	devOps := map[string]func() error{
		"Register":     func() error { return s.Register(ctx, r) },
		"Unregister":   func() error { return s.Unregister(ctx, "alice", "phone", device.FCM) },
		"RemoveDevice": func() error { return s.RemoveDevice(ctx, "alice", "phone") },
		"Devices":      func() error { _, err := s.Devices(ctx, []string{"alice"}); return err },
		"Drop":         func() error { return s.Drop(ctx, r) },
	}
	queueOps := map[string]func() error{
		"Add":    func() error { return s.Add(ctx, "inv", []push.Job{j}, now, now+60_000) },
		"Rung":   func() error { _, err := s.Rung(ctx, "inv", []string{"bob"}); return err },
		"Claim":  func() error { _, err := s.Claim(ctx, now, time.Second, 10); return err },
		"Retry":  func() error { return s.Retry(ctx, j, now) },
		"Finish": func() error { return s.Finish(ctx, j, push.OutcomeSent) },
	}
	for want, ops := range map[error]map[string]func() error{device.ErrUnavailable: devOps, push.ErrQueueUnavailable: queueOps} {
		for name, op := range ops {
			start := time.Now()
			err := op()
			if took := time.Since(start); took > 10*time.Second { // no hang; the client's timeouts are 200 ms
				t.Errorf("%s took %v with Redis down", name, took)
			}
			if !errors.Is(err, want) {
				t.Errorf("%s with Redis down: got %v, want %v", name, err, want)
			}
		}
	}
}

// TestConcurrentMovesLeaveNoLeftovers: Devices hides a registration the
// index does not name, so the contract suite cannot see one left behind.
// Here the users' hashes themselves must end with exactly one registration
// of a token registered by many users at once.
func TestConcurrentMovesLeaveNoLeftovers(t *testing.T) {
	ctx := context.Background()
	s, c, _ := newStore(t, nil)
	var users []string
	for i := range 10 {
		users = append(users, "u"+strconv.Itoa(i))
	}
	for round := range 30 {
		token := "T" + strconv.Itoa(round)
		var wg sync.WaitGroup
		for _, u := range users {
			for range 3 { // a user racing itself too
				wg.Go(func() {
					r := device.Registration{User: u, Device: "d", Platform: device.FCM, Token: token, Updated: int64(round)}
					if err := s.Register(ctx, r); err != nil {
						t.Error(err)
					}
				})
			}
		}
		wg.Wait()
		var holders []string
		for _, u := range users {
			h, err := c.HGetAll(ctx, s.devKey(u)).Result()
			if err != nil {
				t.Fatal(err)
			}
			for f, v := range h {
				e, err := decodeDevEntry(f, v)
				if err != nil {
					t.Fatal(err)
				}
				if e.token != token {
					t.Fatalf("round %d: %s's hash still holds %q", round, u, e.token)
				}
				holders = append(holders, devOwner(u, e.dev)+encodeList([]string{e.version}))
			}
		}
		if len(holders) != 1 {
			t.Fatalf("round %d: %d registrations hold the token in the hashes, want 1", round, len(holders))
		}
		if owner, err := c.Get(ctx, s.tokKey(device.FCM, token)).Result(); err != nil || owner != holders[0] {
			t.Fatalf("round %d: index names %q, %v; the hash holds %q", round, owner, err, holders[0])
		}
		// The tokens of earlier rounds have no index entries left.
		if round > 0 {
			if n, err := c.Exists(ctx, s.tokKey(device.FCM, "T"+strconv.Itoa(round-1))).Result(); err != nil || n != 0 {
				t.Fatalf("round %d: the replaced token's index entry is left: %d, %v", round, n, err)
			}
		}
	}
}
