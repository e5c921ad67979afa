package redisstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/group"
	"github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/invite/storetest"
	"github.com/signald/signald/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const retention = int64(60_000)

func mustNew(t testing.TB, c redis.UniversalClient, prefix string) *Store {
	t.Helper()
	s, err := New(Options{Client: c, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newStore returns a Store on the shared Redis under a fresh prefix, its
// client checked by slots.
func newStore(t testing.TB, slots *slotChecker) (*Store, *redis.Client, string) {
	t.Helper()
	c, prefix := redistest.NewClient(t)
	if slots != nil {
		c.AddHook(slots)
	}
	return mustNew(t, c, prefix), c, prefix
}

func TestContract(t *testing.T) {
	slots := newSlotChecker(t)
	slots.single = true
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		s, _, _ := newStore(t, slots)
		return s
	})
	slots.requireAllScripts(t)
}

// TestContractOnCluster runs the contract suite on a one-node Redis
// Cluster, through a ClusterClient. Redis Cluster refuses a script that
// touches keys of two slots, and go-redis a transaction across slots, so this
// proves that the key layout and every script are fit for a real cluster.
func TestContractOnCluster(t *testing.T) {
	cc := startCluster(t)
	ctx := context.Background()
	// The check is real: a script (with a shebang, as ours have) over two
	// slots fails here.
	err := cc.Eval(ctx, "#!lua\nredis.call('SET', KEYS[1], 1); return redis.call('SET', KEYS[2], 1)", []string{"{a}x", "{a}y"}).Err()
	if err != nil {
		t.Fatalf("a one-slot script failed: %v", err)
	}
	err = cc.Eval(ctx, "#!lua\nredis.call('SET', KEYS[1], 1); return redis.call('SET', 'b', 1)", []string{"a"}).Err()
	if err == nil {
		t.Fatal("the cluster ran a script over two slots: this test checks nothing")
	}

	slots := newSlotChecker(t)
	cc.AddHook(slots)
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		return mustNew(t, cc, "t:"+strings.ReplaceAll(t.Name(), "/", ".")+":")
	})
	slots.requireAllScripts(t)
}

func startCluster(t *testing.T) *redis.ClusterClient {
	t.Helper()
	addr, _ := redistest.StartServer(t,
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-announce-ip", "127.0.0.1")
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := c.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ready: %q, %v", info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
	t.Cleanup(func() { cc.Close() })
	return cc
}

// slotChecker is a client hook that fails the test when a script is given
// keys of more than one Redis Cluster slot, and records which scripts ran.
type slotChecker struct {
	t testing.TB
	// single: the store is on one server, where transition.lua is also
	// given the deadlines set, which it never is on a cluster.
	single bool
	mu     sync.Mutex
	seen   map[string]int // script SHA1 → calls checked; guarded by mu
}

func newSlotChecker(t testing.TB) *slotChecker {
	return &slotChecker{t: t, seen: make(map[string]int)}
}

func (h *slotChecker) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *slotChecker) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.check(cmd)
		return next(ctx, cmd)
	}
}

func (h *slotChecker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			h.check(cmd)
		}
		return next(ctx, cmds)
	}
}

func (h *slotChecker) check(cmd redis.Cmder) {
	args := cmd.Args()
	name := strings.ToLower(fmt.Sprint(args[0]))
	if name != "eval" && name != "evalsha" {
		return
	}
	sha := fmt.Sprint(args[1])
	if name == "eval" {
		sum := sha1.Sum([]byte(sha))
		sha = hex.EncodeToString(sum[:])
	}
	n, _ := strconv.Atoi(fmt.Sprint(args[2]))
	keys := args[3 : 3+n]
	if n == 0 {
		h.t.Errorf("script %s run without keys", sha)
	}
	if sha == admitCreateScript.Hash() && !h.single {
		h.t.Errorf("admitcreate.lua run on a cluster")
	}
	for _, k := range keys {
		if h.single && sha == transitionScript.Hash() && strings.HasSuffix(fmt.Sprint(k), ":deadlines") {
			continue
		}
		if h.single && sha == admitCreateScript.Hash() {
			break // a single server's script, keys of any slot
		}
		if a, b := keySlot(fmt.Sprint(k)), keySlot(fmt.Sprint(keys[0])); a != b {
			h.t.Errorf("script %s given keys of two slots: %q (%d) and %q (%d)", sha, k, a, keys[0], b)
		}
	}
	h.mu.Lock()
	h.seen[sha]++
	h.mu.Unlock()
}

func (h *slotChecker) requireAllScripts(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	scripts := map[string]*redis.Script{"create": createScript, "transition": transitionScript, "claim": claimScript}
	if h.single {
		scripts["admitcreate"] = admitCreateScript
	}
	for name, s := range scripts {
		if h.seen[s.Hash()] == 0 {
			t.Errorf("script %s never ran under the slot check", name)
		}
	}
}

// keySlot is the Redis Cluster slot of key: CRC16 of its hash tag, mod 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % 16384)
}

// crc16 is CRC-16/XMODEM, the checksum of Redis Cluster's key slots.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func TestKeySlot(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16 = %#x, want 0x31c3", got)
	}
	s := &Store{prefix: "p:"}
	id := "inv-1"
	if a, b := keySlot(s.invKey(id)), keySlot("{"+id+"}"); a != b {
		t.Fatalf("invitation key slot %d, want the slot of its ID %d", a, b)
	}
	if keySlot("{user1000}.following") != keySlot("{user1000}.followers") {
		t.Fatal("hash tags ignored")
	}
}

// newInvitation is storetest.NewInvitation with the ID a test names.
func newInvitation(id string, now int64, inviter string, timeoutSec int, onlineOnly bool, invitees ...string) *invite.Invitation {
	inv := storetest.NewInvitation(now, inviter, timeoutSec, onlineOnly, invitees...)
	inv.ID = id
	return inv
}

// TestSecondStore is a restarted (or another) signald: a new Store on the
// same Redis and prefix, after Redis lost its script cache, carries on with
// what the first one stored.
func TestSecondStore(t *testing.T) {
	ctx := context.Background()
	s1, c1, prefix := newStore(t, nil)
	c2 := redis.NewClient(&redis.Options{Addr: redistest.Addr(t)})
	t.Cleanup(func() { c2.Close() })
	s2 := mustNew(t, c2, prefix)

	now := time.Now().UnixMilli()
	toAccept := newInvitation("accept-me", now, "alice", 30, false, "bob")
	toTimeOut := newInvitation("time-me-out", now, "alice", 1, false, "carol")
	for _, inv := range []*invite.Invitation{toAccept, toTimeOut} {
		if err := s1.Create(ctx, inv, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := c1.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	got, err := s2.Get(ctx, toAccept.ID, now+1)
	if err != nil || !reflect.DeepEqual(got, toAccept) {
		t.Fatalf("second store Get = %+v, %v; want %+v", got, err, toAccept)
	}
	pending, err := s2.PendingFor(ctx, "bob", now+1)
	if err != nil || len(pending) != 1 || !reflect.DeepEqual(pending[0], toAccept) {
		t.Fatalf("second store PendingFor(bob) = %+v, %v", pending, err)
	}
	out, err := s2.Apply(ctx, toAccept.ID, invite.Change{Action: invite.ActAccept, Actor: "bob", Now: now + 2, Retention: retention})
	if err != nil || !out.Ended || out.Invitation.States["bob"] != invite.StateAccepted {
		t.Fatalf("second store accept = %+v, %v", out, err)
	}

	ids, _, err := s2.ClaimDue(ctx, toTimeOut.Deadline, time.Minute, 10)
	if err != nil || !slices.Equal(ids, []string{toTimeOut.ID}) {
		t.Fatalf("second store ClaimDue = %v, %v; want [%s]", ids, err, toTimeOut.ID)
	}
	out, err = s2.Apply(ctx, toTimeOut.ID, invite.Change{Action: invite.ActTimeout, Now: toTimeOut.Deadline, Retention: retention})
	if err != nil || !slices.Equal(out.Changed, []string{"carol"}) {
		t.Fatalf("second store timeout = %+v, %v", out, err)
	}
	if got, err := s1.Get(ctx, toTimeOut.ID, toTimeOut.Deadline); err != nil || got.States["carol"] != invite.StateTimeout || got.Active() {
		t.Fatalf("first store sees %+v, %v after the second one's timeout", got, err)
	}

	// Create's pipeline falls back to EVAL too.
	if err := c1.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	late := newInvitation("after-flush", now, "alice", 30, false, "dave")
	if err := s2.Create(ctx, late, 0); err != nil {
		t.Fatalf("Create after SCRIPT FLUSH: %v", err)
	}
	if got, err := s1.Get(ctx, late.ID, now); err != nil || !reflect.DeepEqual(got, late) {
		t.Fatalf("Get after a Create after SCRIPT FLUSH = %+v, %v", got, err)
	}
}

// TestClaimDueConcurrent has many claimers on several Stores claim the same
// due deadlines at once: each must go to exactly one of them per lease.
func TestClaimDueConcurrent(t *testing.T) {
	ctx := context.Background()
	s0, _, prefix := newStore(t, nil)
	const n = 300
	now := time.Now().UnixMilli()
	for i := range n {
		inv := newInvitation(fmt.Sprintf("claim-%d", i), now, "alice", 1, false, "bob")
		if err := s0.Create(ctx, inv, 0); err != nil {
			t.Fatal(err)
		}
	}
	var stores []*Store
	for range 4 {
		c := redis.NewClient(&redis.Options{Addr: redistest.Addr(t)})
		t.Cleanup(func() { c.Close() })
		stores = append(stores, mustNew(t, c, prefix))
	}
	lease := time.Minute
	claimRound := func(at int64) map[string]int {
		var mu sync.Mutex
		claims := make(map[string]int)
		var wg sync.WaitGroup
		for _, s := range stores {
			for range 4 {
				wg.Go(func() {
					for {
						ids, _, err := s.ClaimDue(ctx, at, lease, 7)
						if err != nil {
							t.Error(err)
							return
						}
						if len(ids) == 0 {
							return
						}
						mu.Lock()
						for _, id := range ids {
							claims[id]++
						}
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		return claims
	}
	check := func(round string, claims map[string]int) {
		t.Helper()
		if len(claims) != n {
			t.Errorf("%s: %d deadlines claimed, want %d", round, len(claims), n)
		}
		for id, k := range claims {
			if k != 1 {
				t.Errorf("%s: %s claimed %d times within one lease", round, id, k)
			}
		}
	}
	at := now + 1000
	check("first lease", claimRound(at))
	// Within the lease, nothing is left to claim.
	if ids, _, err := s0.ClaimDue(ctx, at+lease.Milliseconds()-1, lease, n); err != nil || len(ids) != 0 {
		t.Fatalf("claimed within the lease: %v, %v", ids, err)
	}
	// Every claimer died: after the lease they are all claimed once more.
	check("second lease", claimRound(at+lease.Milliseconds()))
}

// TestUnavailable stops Redis under a Store: every method must fail soon
// with an error that wraps invite.ErrUnavailable.
func TestUnavailable(t *testing.T) {
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
	inv := newInvitation("unavailable", now, "alice", 30, false, "bob")
	if err := s.Create(ctx, inv, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	stop()

	ops := map[string]func() error{
		"Ping":   func() error { return s.Ping(ctx) },
		"Create": func() error { return s.Create(ctx, newInvitation("another", now, "alice", 30, false, "bob"), 0) },
		"Apply": func() error {
			_, err := s.Apply(ctx, inv.ID, invite.Change{Action: invite.ActAccept, Actor: "bob", Now: now})
			return err
		},
		"Get":        func() error { _, err := s.Get(ctx, inv.ID, now); return err },
		"PendingFor": func() error { _, err := s.PendingFor(ctx, "bob", now); return err },
		"ClaimDue":   func() error { _, _, err := s.ClaimDue(ctx, now, time.Second, 10); return err },
		"AddMembers": func() error { _, err := s.AddMembers(ctx, "g", []string{"a"}); return err },
		"RemoveMember": func() error {
			return s.RemoveMember(ctx, "g", "a")
		},
		"Members":        func() error { _, err := s.Members(ctx, "g"); return err },
		"Delete":         func() error { return s.Delete(ctx, "g") },
		"FirstNonMember": func() error { _, err := s.FirstNonMember(ctx, "g", []string{"a"}); return err },
	}
	for name, op := range ops {
		start := time.Now()
		err := op()
		if took := time.Since(start); took > 10*time.Second { // no hang; the client's timeouts are 200 ms
			t.Errorf("%s took %v with Redis down", name, took)
		}
		if !errors.Is(err, invite.ErrUnavailable) {
			t.Errorf("%s with Redis down: got %v, want ErrUnavailable", name, err)
		}
		if errors.Is(err, invite.ErrNotFound) || errors.Is(err, group.ErrNotFound) {
			t.Errorf("%s with Redis down also claims not found: %v", name, err)
		}
	}
}

// TestRoundTrip stores values that a careless encoding would change: data
// of every byte, user IDs full of the encoding's own separators, and nil
// versus empty invitee lists.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t, nil)
	now := time.Now().UnixMilli()
	data := make([]byte, 12*1024)
	for i := range data {
		data[i] = byte(i*7 + i/256)
	}
	odd := newInvitation("odd:{id},\"1\"", now, "al:ice,", 30, false, "3:bob,", "c,a:r{o}l", "ünï ✓", "x\x00y")
	odd.GroupID = "g:{1}"
	odd.Data = string(data)
	empty := newInvitation("empty-invitees", now, "alice", 0, true)
	empty.Invitees = []string{}
	none := newInvitation("nil-invitees", now, "alice", 0, true)
	none.Invitees = nil

	for _, inv := range []*invite.Invitation{odd, empty, none} {
		if err := s.Create(ctx, inv, 0); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, inv.ID, now)
		if err != nil || !reflect.DeepEqual(got, inv) {
			t.Fatalf("Get(%q) = %#v, %v; want %#v", inv.ID, got, err, inv)
		}
	}
	for _, u := range odd.Invitees {
		got, err := s.PendingFor(ctx, u, now)
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], odd) {
			t.Fatalf("PendingFor(%q) = %v, %v", u, got, err)
		}
	}

	model := odd
	for _, ch := range []invite.Change{
		{Action: invite.ActModify, Actor: "al:ice,", Data: string(data[100:]) + "\x00\"'\\", Now: now + 1},
		{Action: invite.ActAccept, Actor: "c,a:r{o}l", Data: "x", Now: now + 2, Retention: retention},
		{Action: invite.ActCancel, Actor: "al:ice,", Now: now + 3, Retention: retention},
	} {
		want, wantErr := invite.Apply(model, ch)
		got, err := s.Apply(ctx, odd.ID, ch)
		if wantErr != nil || err != nil {
			t.Fatalf("%s: %v, want %v", ch.Action, err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: outcome %#v, want %#v", ch.Action, got, want)
		}
		model = want.Invitation
	}
	if got, err := s.Get(ctx, odd.ID, now+4); err != nil || !reflect.DeepEqual(got, model) {
		t.Fatalf("Get after changes = %#v, %v; want %#v", got, err, model)
	}
	// An invitation with nobody to wait for ends at its first change.
	out, err := s.Apply(ctx, empty.ID, invite.Change{Action: invite.ActModify, Actor: "alice", Data: "d", Now: now + 1, Retention: retention})
	want, _ := invite.Apply(empty, invite.Change{Action: invite.ActModify, Actor: "alice", Data: "d", Now: now + 1, Retention: retention})
	if err != nil || !reflect.DeepEqual(out, want) {
		t.Fatalf("modify without invitees = %#v, %v; want %#v", out, err, want)
	}
}

// TestExpiry checks that Redis collects an invitation's keys at its Expires,
// moved when it ends, and never before an index entry is due.
func TestExpiry(t *testing.T) {
	ctx := context.Background()
	s, c, prefix := newStore(t, nil)
	now := time.Now().UnixMilli()
	expireTime := func(key string) int64 {
		t.Helper()
		ms, err := c.Do(ctx, "PEXPIRETIME", key).Int64()
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	short := newInvitation("short", now, "alice", 30, false, "bob")
	long := newInvitation("long", now, "alice", 0, false, "bob")
	online := newInvitation("online", now, "alice", 0, true, "carol")
	for _, inv := range []*invite.Invitation{short, long, online} {
		if err := s.Create(ctx, inv, 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := expireTime(s.invKey(short.ID)); got != short.Expires {
		t.Errorf("invitation expires at %d, want its Expires %d", got, short.Expires)
	}
	if got := expireTime(s.pendingKey("bob")); got != long.Expires {
		t.Errorf("bob's index expires at %d, want the furthest Expires %d", got, long.Expires)
	}
	if n, err := c.Exists(ctx, s.pendingKey("carol")).Result(); err != nil || n != 0 {
		t.Errorf("an onlineUserOnly invitation was indexed: %d, %v", n, err)
	}
	if got := expireTime(prefix + "deadlines"); got != -1 {
		t.Errorf("the deadline set expires at %d; it must not expire", got)
	}
	out, err := s.Apply(ctx, short.ID, invite.Change{Action: invite.ActReject, Actor: "bob", Now: now + 10, Retention: retention})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := expireTime(s.invKey(short.ID)), now+10+retention; got != want || out.Invitation.Expires != want {
		t.Errorf("ended invitation expires at %d (Expires %d), want %d", got, out.Invitation.Expires, want)
	}
}

// TestIndexExpiryOnAdmitCreate checks that admitcreate.lua leaves each
// user's index expiring with its latest invitation, whichever order they
// come in: an earlier one does not shorten the index's life.
func TestIndexExpiryOnAdmitCreate(t *testing.T) {
	ctx := context.Background()
	s, c, _ := newStore(t, nil)
	if !s.onePipeline {
		t.Skip("admitcreate.lua runs on a single server only")
	}
	now := time.Now().UnixMilli()
	limits := invite.Limits{Rate: 1000, Burst: 1000, MaxActive: 100, MaxPending: 100}
	for _, order := range [][2]int{{30, 600}, {600, 30}} {
		inviter, invitee := fmt.Sprintf("alice%d", order[0]), fmt.Sprintf("bob%d", order[0])
		var latest int64
		for i, timeout := range order {
			inv := newInvitation(fmt.Sprintf("%s-%d", inviter, i), now, inviter, timeout, false, invitee)
			if err := s.CreateAdmitted(ctx, inv, 0, limits); err != nil {
				t.Fatal(err)
			}
			latest = max(latest, inv.Expires)
		}
		for _, key := range []string{s.outgoingKey(inviter), s.pendingKey(invitee)} {
			if got, err := c.Do(ctx, "PEXPIRETIME", key).Int64(); err != nil || got != latest {
				t.Errorf("timeouts %v: %s expires at %d (%v), want the latest Expires %d", order, key, got, err, latest)
			}
		}
	}
}

func TestNewValidates(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := New(Options{}); err == nil {
		t.Error("New without a client succeeded")
	}
	if _, err := New(Options{Client: c, Prefix: "a{b}:"}); err == nil {
		t.Error("New with a brace in the prefix succeeded")
	}
	s, err := New(Options{Client: c})
	if err != nil || s.prefix != DefaultPrefix {
		t.Errorf("New with defaults = %+v, %v", s, err)
	}
}

// TestCreateExistsKeepsEntries: a Create that fails with ErrExists must not
// move the deadline of the invitation holding the ID.
func TestCreateExistsKeepsEntries(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t, nil)
	now := time.Now().UnixMilli()
	first := newInvitation("dup", now, "alice", 30, false, "bob")
	again := newInvitation("dup", now, "alice", 90, false, "bob")
	if err := s.Create(ctx, first, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, again, 0); !errors.Is(err, invite.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	if ids, _, err := s.ClaimDue(ctx, first.Deadline, time.Minute, 10); err != nil || !slices.Equal(ids, []string{"dup"}) {
		t.Fatalf("ClaimDue at the first deadline = %v, %v", ids, err)
	}
}

var benchSeq atomic.Int64

func BenchmarkCreate(b *testing.B) {
	ctx := context.Background()
	s, _, _ := newStore(b, nil)
	now := time.Now().UnixMilli()
	for b.Loop() {
		inv := newInvitation(fmt.Sprintf("b-%d", benchSeq.Add(1)), now, "alice", 30, false, "bob", "carol")
		if err := s.Create(ctx, inv, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAccept(b *testing.B) {
	ctx := context.Background()
	s, _, _ := newStore(b, nil)
	now := time.Now().UnixMilli()
	for b.Loop() {
		inv := newInvitation(fmt.Sprintf("b-%d", benchSeq.Add(1)), now, "alice", 30, false, "bob")
		if err := s.Create(ctx, inv, 0); err != nil {
			b.Fatal(err)
		}
		ch := invite.Change{Action: invite.ActAccept, Actor: "bob", Now: now + 1, Retention: retention}
		if _, err := s.Apply(ctx, inv.ID, ch); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPendingForCreateUnderWay: an index entry whose invitation is not (yet)
// stored, as while a Create is under way, must survive PendingFor.
func TestPendingForCreateUnderWay(t *testing.T) {
	ctx := context.Background()
	s, c, _ := newStore(t, nil)
	now := time.Now().UnixMilli()
	inv := newInvitation("under-way", now, "alice", 30, false, "bob")
	if err := c.ZAdd(ctx, s.pendingKey("bob"), redis.Z{Score: float64(inv.Expires), Member: inv.ID}).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PendingFor(ctx, "bob", now); err != nil || len(got) != 0 {
		t.Fatalf("PendingFor before the invitation is stored = %v, %v", got, err)
	}
	if err := createScript.Run(ctx, c, []string{s.invKey(inv.ID)}, createArgs(inv)...).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PendingFor(ctx, "bob", now); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], inv) {
		t.Fatalf("PendingFor once the invitation is stored = %v, %v", got, err)
	}
	// Answered: the entry goes.
	if _, err := s.Apply(ctx, inv.ID, invite.Change{Action: invite.ActAccept, Actor: "bob", Now: now + 1, Retention: retention}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PendingFor(ctx, "bob", now+2); err != nil || len(got) != 0 {
		t.Fatalf("PendingFor after accept = %v, %v", got, err)
	}
	if n, err := c.ZCard(ctx, s.pendingKey("bob")).Result(); err != nil || n != 0 {
		t.Fatalf("index of bob after accept has %d entries, %v", n, err)
	}
}

// TestResentAfterAnnounced: a request sent again after its answer was lost
// (go-redis resends a script on a new connection) is recognised as applied
// even once its outbox entry was announced and forgotten: the entry leaves
// a done marker. A refused change, or an invitation gone, leaves none.
func TestResentAfterAnnounced(t *testing.T) {
	ctx := context.Background()
	s, c, _ := newStore(t, nil)
	now := time.Now().UnixMilli()
	inv := storetest.NewInvitation(now, "alice", 30, false, "bob")
	created := storetest.CreationToken(inv)
	if err := s.Create(ctx, inv, now+1000); err != nil {
		t.Fatal(err)
	}
	accept := invite.Change{Action: invite.ActAccept, Actor: "bob", Now: now + 1, Retention: retention, Token: "t1", AnnounceBy: now + 1000}
	first, err := s.Apply(ctx, inv.ID, accept)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, inv.ID, invite.Change{Action: invite.ActAccept, Actor: "mallory", Now: now + 2, Token: "t2", AnnounceBy: now + 1000}); !errors.Is(err, invite.ErrForbidden) {
		t.Fatalf("a stranger's accept: %v, want ErrForbidden", err)
	}
	gone := invite.Unannounced{ID: "no-such-invitation", Token: "t9"}
	if err := s.Announced(ctx, []invite.Unannounced{{ID: inv.ID, Token: created}, {ID: inv.ID, Token: "t1"}, {ID: inv.ID, Token: "t2"}, gone}); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, inv, now+1000); err != nil {
		t.Errorf("the creation sent again after it was announced: %v, want success", err)
	}
	again, err := s.Apply(ctx, inv.ID, accept)
	if err != nil || !again.Ended || !slices.Equal(again.Changed, first.Changed) || again.Invitation.Seq != first.Invitation.Seq {
		t.Errorf("the accept sent again after it was announced: %+v, %v; want success, applied once (seq %d, changed %v)", again, err, first.Invitation.Seq, first.Changed)
	}
	if n, _ := c.HExists(ctx, s.invKey(inv.ID), fDonePrefix+"t2").Result(); n {
		t.Error("the refused change left a done marker")
	}
	if n, _ := c.Exists(ctx, s.invKey(gone.ID)).Result(); n != 0 {
		t.Error("announcing an entry of an invitation gone made its hash")
	}
}
