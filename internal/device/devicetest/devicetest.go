// Package devicetest is the contract suite of device.Store: the memory
// store and the Redis store run the same tests, so that registrations
// behave the same on one node and on many.
//
// What the suite holds a store to, beyond device.Store's comments:
//   - Devices returns one slice per user asked, at that user's index (a user
//     asked twice gets two equal slices); a user without registrations gets a
//     nil slice. Registrations come back with every field as registered.
//   - A (platform, token) has one owner: registering it moves it, from
//     another user or another device of the same user, and concurrent
//     Registers of one token end with exactly one registration holding it.
//     The same token string on two platforms is two tokens.
//   - Register refuses what device.CheckRegistration refuses, with an error
//     wrapping device.ErrInvalid; Unregister, RemoveDevice and Drop of
//     something absent succeed and change nothing.
//   - IDs and tokens may hold any bytes the validators allow.
package devicetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/signald/signald/internal/device"
)

// NewFunc returns a fresh, empty store for one test.
type NewFunc func(t *testing.T) device.Store

// Run runs the whole contract suite against the stores made by newStore.
func Run(t *testing.T, newStore NewFunc) {
	t.Run("RegisterDevices", func(t *testing.T) { testRegisterDevices(t, newStore(t)) })
	t.Run("ReRegister", func(t *testing.T) { testReRegister(t, newStore(t)) })
	t.Run("Order", func(t *testing.T) { testOrder(t, newStore(t)) })
	t.Run("ManyUsers", func(t *testing.T) { testManyUsers(t, newStore(t)) })
	t.Run("TokenMoves", func(t *testing.T) { testTokenMoves(t, newStore(t)) })
	t.Run("PlatformsSeparate", func(t *testing.T) { testPlatformsSeparate(t, newStore(t)) })
	t.Run("Unregister", func(t *testing.T) { testUnregister(t, newStore(t)) })
	t.Run("RemoveDevice", func(t *testing.T) { testRemoveDevice(t, newStore(t)) })
	t.Run("Drop", func(t *testing.T) { testDrop(t, newStore(t)) })
	t.Run("Invalid", func(t *testing.T) { testInvalid(t, newStore(t)) })
	t.Run("OddBytes", func(t *testing.T) { testOddBytes(t, newStore(t)) })
	t.Run("ConcurrentMoves", func(t *testing.T) { testConcurrentMoves(t, newStore(t)) })
}

func reg(user, dev string, p device.Platform, token string, updated int64) device.Registration {
	return device.Registration{User: user, Device: dev, Platform: p, Token: token, Updated: updated}
}

func mustRegister(t *testing.T, s device.Store, rs ...device.Registration) {
	t.Helper()
	for _, r := range rs {
		if err := s.Register(context.Background(), r); err != nil {
			t.Fatalf("Register(%+v): %v", r, err)
		}
	}
}

func devices(t *testing.T, s device.Store, users ...string) [][]device.Registration {
	t.Helper()
	got, err := s.Devices(context.Background(), users)
	if err != nil {
		t.Fatalf("Devices(%q): %v", users, err)
	}
	if len(got) != len(users) {
		t.Fatalf("Devices(%q) returned %d slices, want one per user", users, len(got))
	}
	return got
}

// expect checks one user's registrations, in order. want nil is no
// registration, which Devices reports as a nil slice.
func expect(t *testing.T, s device.Store, user string, want ...device.Registration) {
	t.Helper()
	got := devices(t, s, user)[0]
	if len(want) == 0 {
		if got != nil {
			t.Fatalf("Devices(%q) = %#v, want nil", user, got)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Devices(%q) =\n%s\nwant\n%s", user, show(got), show(want))
	}
}

func show(rs []device.Registration) string {
	var b strings.Builder
	for _, r := range rs {
		tok := r.Token
		if len(tok) > 40 {
			tok = fmt.Sprintf("%.20q…(%d bytes)", tok, len(tok))
		}
		fmt.Fprintf(&b, "  %q %q %s %q sandbox=%v updated=%d\n", r.User, r.Device, r.Platform, tok, r.Sandbox, r.Updated)
	}
	return b.String()
}

func testRegisterDevices(t *testing.T, s device.Store) {
	r := reg("alice", "phone", device.FCM, "fcm-token-1", 1000)
	expect(t, s, "alice")
	mustRegister(t, s, r)
	expect(t, s, "alice", r)
	expect(t, s, "bob")
	// Registering the same again changes nothing.
	mustRegister(t, s, r)
	expect(t, s, "alice", r)
}

func testReRegister(t *testing.T, s device.Store) {
	first := reg("alice", "phone", device.APNs, "apns-1", 1000)
	mustRegister(t, s, first)
	again := first
	again.Token, again.Sandbox, again.Updated = "apns-2", true, 2000
	mustRegister(t, s, again)
	expect(t, s, "alice", again)
	// The old token is no longer alice's: whoever registers it takes it
	// without touching alice's new one.
	bob := reg("bob", "tablet", device.APNs, "apns-1", 3000)
	mustRegister(t, s, bob)
	expect(t, s, "alice", again)
	expect(t, s, "bob", bob)
	// Only the sandbox flag changes: replaced too.
	again.Sandbox, again.Updated = false, 4000
	mustRegister(t, s, again)
	expect(t, s, "alice", again)
}

func testOrder(t *testing.T, s device.Store) {
	// One device with every platform, registered in a shuffled order,
	// comes back in device.Rank order.
	var phone []device.Registration
	for i, p := range device.Platforms {
		phone = append(phone, reg("alice", "phone", p, "t-"+string(p), int64(1000+i)))
	}
	shuffled := slices.Clone(phone)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	mustRegister(t, s, shuffled...)
	expect(t, s, "alice", phone...)

	// Several devices: by device ID (bytewise), then Rank.
	b := reg("bob", "b", device.Webhook, "wb", 1)
	a2 := reg("bob", "a", device.APNs, "aa", 2)
	a1 := reg("bob", "a", device.APNsVoIP, "av", 3)
	c := reg("bob", "c", device.FCM, "cf", 4)
	upper := reg("bob", "Z", device.FCM, "zf", 5)
	mustRegister(t, s, c, b, a2, upper, a1)
	expect(t, s, "bob", upper, a1, a2, b, c)
}

func testManyUsers(t *testing.T, s device.Store) {
	alice := reg("alice", "phone", device.FCM, "fa", 1)
	carol1 := reg("carol", "d1", device.APNsVoIP, "c1", 2)
	carol2 := reg("carol", "d2", device.FCM, "c2", 3)
	mustRegister(t, s, carol2, alice, carol1)
	got := devices(t, s, "carol", "nobody", "alice", "carol", "")
	want := [][]device.Registration{{carol1, carol2}, nil, {alice}, {carol1, carol2}, nil}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Devices by index = %#v, want %#v", got, want)
	}
	if got := devices(t, s); len(got) != 0 {
		t.Fatalf("Devices of nobody = %#v", got)
	}
	// Many users at once, most without registrations.
	var users []string
	for i := range 300 {
		u := fmt.Sprintf("user-%d", i)
		users = append(users, u)
		if i%7 == 0 {
			mustRegister(t, s, reg(u, "d", device.FCM, "tok-"+u, int64(i)))
		}
	}
	for i, rs := range devices(t, s, users...) {
		if i%7 != 0 {
			if rs != nil {
				t.Fatalf("user-%d has no registration, got %#v", i, rs)
			}
			continue
		}
		if len(rs) != 1 || rs[0].User != users[i] || rs[0].Token != "tok-"+users[i] {
			t.Fatalf("user-%d: got %#v", i, rs)
		}
	}
}

func testTokenMoves(t *testing.T, s device.Store) {
	phoneFCM := reg("alice", "phone", device.FCM, "shared", 1)
	phoneAPNs := reg("alice", "phone", device.APNs, "alice-apns", 2)
	mustRegister(t, s, phoneFCM, phoneAPNs)

	// The phone is handed to bob: the token moves, alice's other
	// registration stays.
	bobs := reg("bob", "phone-of-bob", device.FCM, "shared", 3)
	mustRegister(t, s, bobs)
	expect(t, s, "alice", phoneAPNs)
	expect(t, s, "bob", bobs)

	// The app is reinstalled under a new device ID: the token moves to
	// the other device of the same user.
	reinstalled := reg("bob", "phone-of-bob-2", device.FCM, "shared", 4)
	mustRegister(t, s, reinstalled)
	expect(t, s, "bob", reinstalled)

	// And back to alice, to the device she had.
	back := reg("alice", "phone", device.FCM, "shared", 5)
	mustRegister(t, s, back)
	expect(t, s, "alice", back, phoneAPNs)
	expect(t, s, "bob")

	// A token moving onto a device that had another token on the
	// platform replaces that one; the replaced token is free.
	other := reg("carol", "c", device.FCM, "carol-old", 6)
	mustRegister(t, s, other)
	takeover := reg("carol", "c", device.FCM, "shared", 7)
	mustRegister(t, s, takeover)
	expect(t, s, "carol", takeover)
	expect(t, s, "alice", phoneAPNs)
	dave := reg("dave", "d", device.FCM, "carol-old", 8)
	mustRegister(t, s, dave)
	expect(t, s, "carol", takeover)
	expect(t, s, "dave", dave)
}

func testPlatformsSeparate(t *testing.T, s device.Store) {
	// The same string on two platforms is two tokens: no move.
	a := reg("alice", "phone", device.FCM, "same-string", 1)
	b := reg("bob", "phone", device.Webhook, "same-string", 2)
	c := reg("alice", "phone", device.APNs, "same-string", 3)
	mustRegister(t, s, a, b, c)
	expect(t, s, "alice", a, c)
	expect(t, s, "bob", b)
}

func testUnregister(t *testing.T, s device.Store) {
	ctx := context.Background()
	fcm := reg("alice", "phone", device.FCM, "f", 1)
	voip := reg("alice", "phone", device.APNsVoIP, "v", 2)
	tablet := reg("alice", "tablet", device.FCM, "f2", 3)
	mustRegister(t, s, fcm, voip, tablet)
	if err := s.Unregister(ctx, "alice", "phone", device.FCM); err != nil {
		t.Fatalf("Unregister: %v", err)
	}
	expect(t, s, "alice", voip, tablet)
	for _, absent := range [][3]string{{"alice", "phone", "fcm"}, {"alice", "nope", "fcm"}, {"nobody", "phone", "apns"}} {
		if err := s.Unregister(ctx, absent[0], absent[1], device.Platform(absent[2])); err != nil {
			t.Fatalf("Unregister(%q) of nothing: %v", absent, err)
		}
	}
	expect(t, s, "alice", voip, tablet)
	// The unregistered token is free: bob takes it, alice is untouched,
	// and alice can register it again, taking it back.
	bob := reg("bob", "b", device.FCM, "f", 4)
	mustRegister(t, s, bob)
	expect(t, s, "bob", bob)
	expect(t, s, "alice", voip, tablet)
	fcm.Updated = 5
	mustRegister(t, s, fcm)
	expect(t, s, "alice", voip, fcm, tablet)
	expect(t, s, "bob")
	// Everything unregistered: no registrations, nil.
	for _, r := range []device.Registration{fcm, voip, tablet} {
		if err := s.Unregister(ctx, r.User, r.Device, r.Platform); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, s, "alice")
}

func testRemoveDevice(t *testing.T, s device.Store) {
	ctx := context.Background()
	var phone []device.Registration
	for i, p := range device.Platforms {
		phone = append(phone, reg("alice", "phone", p, "phone-"+string(p), int64(i)))
	}
	tablet := reg("alice", "tablet", device.FCM, "tablet-fcm", 10)
	// A device whose ID starts with the other's is another device.
	phone2 := reg("alice", "phone2", device.FCM, "phone2-fcm", 11)
	mustRegister(t, s, phone...)
	mustRegister(t, s, tablet, phone2)
	if err := s.RemoveDevice(ctx, "alice", "phone"); err != nil {
		t.Fatalf("RemoveDevice: %v", err)
	}
	expect(t, s, "alice", phone2, tablet)
	if err := s.RemoveDevice(ctx, "alice", "phone"); err != nil {
		t.Fatalf("RemoveDevice again: %v", err)
	}
	if err := s.RemoveDevice(ctx, "nobody", "phone"); err != nil {
		t.Fatalf("RemoveDevice of nobody: %v", err)
	}
	// Its tokens are free.
	bob := reg("bob", "b", device.FCM, "phone-fcm", 12)
	mustRegister(t, s, bob)
	expect(t, s, "bob", bob)
	expect(t, s, "alice", phone2, tablet)
	for _, d := range []string{"tablet", "phone2"} {
		if err := s.RemoveDevice(ctx, "alice", d); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, s, "alice")
}

func testDrop(t *testing.T, s device.Store) {
	ctx := context.Background()
	drop := func(r device.Registration) {
		t.Helper()
		if err := s.Drop(ctx, r); err != nil {
			t.Fatalf("Drop(%+v): %v", r, err)
		}
	}
	dead := reg("alice", "phone", device.FCM, "dead", 1)
	voip := reg("alice", "phone", device.APNsVoIP, "voip", 2)
	mustRegister(t, s, dead, voip)
	drop(dead)
	expect(t, s, "alice", voip)
	drop(dead) // again: nothing
	expect(t, s, "alice", voip)

	// Registered with a new token since the push that failed: the new one
	// survives Drop of the old.
	old := reg("alice", "phone", device.FCM, "old", 3)
	mustRegister(t, s, old)
	fresh := reg("alice", "phone", device.FCM, "fresh", 4)
	mustRegister(t, s, fresh)
	drop(old)
	expect(t, s, "alice", voip, fresh)

	// Moved to bob since: Drop of alice's registration leaves bob's.
	moved := reg("bob", "b", device.APNsVoIP, "voip", 5)
	mustRegister(t, s, moved)
	drop(voip)
	expect(t, s, "bob", moved)
	expect(t, s, "alice", fresh)

	// Drop compares tokens, not the other fields.
	stale := fresh
	stale.Updated, stale.Sandbox = 1, true
	drop(stale)
	expect(t, s, "alice")
	// And the dropped token can be registered again.
	mustRegister(t, s, fresh)
	expect(t, s, "alice", fresh)
}

func testInvalid(t *testing.T, s device.Store) {
	ctx := context.Background()
	for name, r := range map[string]device.Registration{
		"empty token":     reg("alice", "phone", device.FCM, "", 1),
		"empty device":    reg("alice", "", device.FCM, "t", 1),
		"long token":      reg("alice", "phone", device.FCM, strings.Repeat("x", device.MaxTokenBytes+1), 1),
		"long device":     reg("alice", strings.Repeat("d", device.MaxDeviceIDBytes+1), device.FCM, "t", 1),
		"bad UTF-8 token": reg("alice", "phone", device.FCM, "a\xffb", 1),
		"bad UTF-8 id":    reg("alice", "ph\xc3", device.FCM, "t", 1),
	} {
		if err := s.Register(ctx, r); !errors.Is(err, device.ErrInvalid) {
			t.Errorf("Register with %s: got %v, want ErrInvalid", name, err)
		}
	}
	expect(t, s, "alice")
}

func testOddBytes(t *testing.T, s device.Store) {
	long := strings.Repeat("tok\n:{},\"✓", device.MaxTokenBytes/12) // multi-byte runes, under the limit
	long += strings.Repeat("z", device.MaxTokenBytes-len(long))
	maxID := strings.Repeat("é", device.MaxDeviceIDBytes/2)
	rs := []device.Registration{
		reg("al\nice", "dev,ice", device.FCM, "line1\nline2", 1),
		reg("al\nice", "a:b,c", device.APNs, "3:abc,", 2),
		reg("al\nice", "{braces}", device.Webhook, long, 3),
		reg("al\nice", maxID, device.APNsVoIP, "✓ unicode ✓", 4),
		reg("al\nice", "x;y", device.FCM, "nul\x00byte", 5),
		// Pairs that a separator-joined encoding would confuse.
		reg("a", "b:c", device.FCM, "pair-1", 6),
		reg("a:b", "c", device.FCM, "pair-2", 7),
		reg("{u:x}", "}", device.FCM, "pair-3", 8),
		reg("{u:x", "}}", device.FCM, "pair-4", 9),
	}
	mustRegister(t, s, rs...)
	want := map[string][]device.Registration{}
	for _, r := range rs {
		want[r.User] = append(want[r.User], r)
	}
	for u, w := range want {
		slices.SortFunc(w, func(a, b device.Registration) int {
			if c := strings.Compare(a.Device, b.Device); c != 0 {
				return c
			}
			return device.Rank(a.Platform) - device.Rank(b.Platform)
		})
		expect(t, s, u, w...)
	}
	// The long token moves like any other, and leaves like any other.
	moved := reg("a", "b:c", device.Webhook, long, 10)
	mustRegister(t, s, moved)
	if got := devices(t, s, "al\nice")[0]; slices.ContainsFunc(got, func(r device.Registration) bool { return r.Token == long }) {
		t.Fatalf("the long token stayed with its first owner: %s", show(got))
	}
	if err := s.Drop(context.Background(), moved); err != nil {
		t.Fatal(err)
	}
	expect(t, s, "a", rs[5])
	if err := s.RemoveDevice(context.Background(), "al\nice", "dev,ice"); err != nil {
		t.Fatal(err)
	}
	if got := devices(t, s, "al\nice")[0]; len(got) != 3 {
		t.Fatalf("after RemoveDevice of one of alice's devices: %s", show(got))
	}
}

// testConcurrentMoves registers one token for many users at once (each
// twice), many times: each time exactly one registration must hold it in the end, and
// every other registration of those users must be untouched.
func testConcurrentMoves(t *testing.T, s device.Store) {
	ctx := context.Background()
	const users = 12
	var names []string
	for i := range users {
		names = append(names, fmt.Sprintf("u%d", i))
		// Each user has a registration of its own that must survive.
		mustRegister(t, s, reg(names[i], "own", device.APNs, "own-"+names[i], 1))
	}
	for round := range 20 {
		token := fmt.Sprintf("contested-%d", round)
		var wg sync.WaitGroup
		for i, u := range names {
			dev := "d"
			if i%3 == 0 {
				dev = fmt.Sprintf("d%d", round%2) // also moves between devices of one user
			}
			// Twice: a user's Register racing its own makes a displaced
			// registration come back while its displacer is under way.
			for range 2 {
				wg.Go(func() {
					if err := s.Register(ctx, reg(u, dev, device.FCM, token, int64(round))); err != nil {
						t.Errorf("Register: %v", err)
					}
				})
			}
		}
		wg.Wait()
		// Tokens of earlier rounds may stay with a device that this round
		// registered elsewhere, but never with two.
		holders := map[string]int{}
		for i, rs := range devices(t, s, names...) {
			for _, r := range rs {
				holders[r.Token]++
				if r.User != names[i] {
					t.Fatalf("round %d: Devices(%s) returned %s's registration", round, names[i], r.User)
				}
			}
			if !slices.ContainsFunc(rs, func(r device.Registration) bool { return r.Token == "own-"+names[i] }) {
				t.Fatalf("round %d: %s's own registration is gone: %s", round, names[i], show(rs))
			}
		}
		if holders[token] != 1 {
			t.Fatalf("round %d: %d registrations hold the token, want exactly 1", round, holders[token])
		}
		for tok, n := range holders {
			if n != 1 {
				t.Fatalf("round %d: %d registrations hold %q", round, n, tok)
			}
		}
	}
}
