// Package queuetest is the contract suite of push.Queue: the memory store
// and the Redis store run the same tests, so that pushes are made once
// whether signald runs on one node or on many.
//
// What the suite holds a queue to, beyond push.Queue's comments:
//   - A job comes back from Claim and Rung with every field as added, and
//     InviteID set to the invitation it was added to.
//   - Jobs are one per (invitation, user, device, kind), whatever bytes the
//     IDs hold: no two tuples are confused, even where Job.Key's
//     newline-joined form would be.
//   - Claim returns the earliest due first, never more than max, and
//     nothing when max is 0; Retry and Finish of a job unknown, finished or
//     forgotten change nothing and succeed.
//   - After the expires given to Add has passed (by the callers' clock, not
//     the backend's), Claim returns nothing of that invitation again.
//   - Rung returns its jobs ordered by user, then device.
package queuetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signald/signald/internal/device"
	"github.com/signald/signald/internal/push"
)

// NewFunc returns a fresh, empty queue for one test.
type NewFunc func(t *testing.T) push.Queue

// Run runs the whole contract suite against the queues made by newQueue.
func Run(t *testing.T, newQueue NewFunc) {
	t.Run("AddClaim", func(t *testing.T) { testAddClaim(t, newQueue(t)) })
	t.Run("AddOnce", func(t *testing.T) { testAddOnce(t, newQueue(t)) })
	t.Run("Retry", func(t *testing.T) { testRetry(t, newQueue(t)) })
	t.Run("Finish", func(t *testing.T) { testFinish(t, newQueue(t)) })
	t.Run("Rung", func(t *testing.T) { testRung(t, newQueue(t)) })
	t.Run("DueOrder", func(t *testing.T) { testDueOrder(t, newQueue(t)) })
	t.Run("Expiry", func(t *testing.T) { testExpiry(t, newQueue(t)) })
	t.Run("OddBytes", func(t *testing.T) { testOddBytes(t, newQueue(t)) })
	t.Run("ConcurrentClaims", func(t *testing.T) { testConcurrentClaims(t, newQueue(t)) })
}

const lease = 5 * time.Second

// hour is how long the invitations of the suite live unless a test says
// otherwise.
const hour = int64(3600_000)

var seq atomic.Int64

// newInviteID returns an invitation ID not used before in this process, as
// backends may be shared between tests.
func newInviteID() string { return fmt.Sprintf("push-inv-%d", seq.Add(1)) }

// nowMs is close to the real clock because Redis expires keys on its own
// clock: times far in the past would make it drop them at once.
func nowMs() int64 { return time.Now().UnixMilli() }

// NewJob returns a job as the push worker would make it: for store-specific
// tests too.
func NewJob(inviteID, user, dev, kind string, deadline int64) push.Job {
	j := push.Job{
		InviteID: inviteID, User: user, Device: dev, Kind: kind,
		Reg: device.Registration{
			User: user, Device: dev, Platform: device.FCM,
			Token: "token-of-" + user + "/" + dev, Updated: deadline - 60_000,
		},
		Deadline: deadline,
	}
	if kind == push.KindEnd {
		j.Reason = "accepted"
		j.Reg.Platform, j.Reg.Sandbox = device.APNs, true
	}
	return j
}

func mustAdd(t *testing.T, q push.Queue, inviteID string, jobs []push.Job, now, expires int64) {
	t.Helper()
	if err := q.Add(context.Background(), inviteID, jobs, now, expires); err != nil {
		t.Fatalf("Add(%s): %v", inviteID, err)
	}
}

func claim(t *testing.T, q push.Queue, now int64, max int) []push.Job {
	t.Helper()
	jobs, err := q.Claim(context.Background(), now, lease, max)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if len(jobs) > max {
		t.Fatalf("Claim(max %d) returned %d jobs", max, len(jobs))
	}
	return jobs
}

// sameJobs compares jobs whatever their order.
func sameJobs(t *testing.T, what string, got, want []push.Job) {
	t.Helper()
	got, want = sorted(got), sorted(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n%s\nwant\n%s", what, show(got), show(want))
	}
}

func sorted(jobs []push.Job) []push.Job {
	out := slices.Clone(jobs)
	slices.SortFunc(out, func(a, b push.Job) int {
		for _, c := range [][2]string{{a.InviteID, b.InviteID}, {a.User, b.User}, {a.Device, b.Device}, {a.Kind, b.Kind}} {
			if r := strings.Compare(c[0], c[1]); r != 0 {
				return r
			}
		}
		return 0
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

func show(jobs []push.Job) string {
	var b strings.Builder
	for _, j := range jobs {
		fmt.Fprintf(&b, "  %q %q %q %q %+v reason=%q deadline=%d attempts=%d\n",
			j.InviteID, j.User, j.Device, j.Kind, j.Reg, j.Reason, j.Deadline, j.Attempts)
	}
	return b.String()
}

func testAddClaim(t *testing.T, q push.Queue) {
	now := nowMs()
	id := newInviteID()
	jobs := []push.Job{
		NewJob(id, "bob", "phone", push.KindRing, now+30_000),
		NewJob(id, "carol", "tablet", push.KindRing, now+30_000),
	}
	jobs[1].Attempts = 2
	mustAdd(t, q, id, jobs, now, now+hour)
	if got := claim(t, q, now-1, 10); len(got) != 0 {
		t.Fatalf("claimed before due: %s", show(got))
	}
	sameJobs(t, "Claim at now", claim(t, q, now, 10), jobs)
	if got := claim(t, q, now+lease.Milliseconds()-1, 10); len(got) != 0 {
		t.Fatalf("claimed again within the lease: %s", show(got))
	}
	// The claimer died: after the lease someone else gets them.
	sameJobs(t, "Claim after the lease", claim(t, q, now+lease.Milliseconds(), 10), jobs)
	if got := claim(t, q, now+lease.Milliseconds(), 0); len(got) != 0 {
		t.Fatalf("Claim(max 0) returned %s", show(got))
	}
}

func testAddOnce(t *testing.T, q push.Queue) {
	ctx := context.Background()
	now := nowMs()
	id := newInviteID()
	due := NewJob(id, "bob", "phone", push.KindRing, now+30_000)
	claimed := NewJob(id, "bob", "tablet", push.KindRing, now+30_000)
	finished := NewJob(id, "carol", "phone", push.KindRing, now+30_000)
	mustAdd(t, q, id, []push.Job{claimed, finished}, now, now+hour)
	sameJobs(t, "first Claim", claim(t, q, now, 10), []push.Job{claimed, finished})
	if err := q.Finish(ctx, finished, push.OutcomeSent); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, q, id, []push.Job{due}, now, now+hour)

	// The same announcement made again, later, and with other contents:
	// every job is recorded already, whatever its state; only the new one
	// is added.
	fresh := NewJob(id, "dave", "phone", push.KindRing, now+30_000)
	again := func(j push.Job) push.Job {
		j.Reg.Token, j.Reason, j.Attempts = "another", "changed", 9
		return j
	}
	at := now + 1000
	mustAdd(t, q, id, []push.Job{again(due), again(claimed), again(finished), fresh, again(fresh)}, at, now+hour)
	// due is due, fresh is new: the claimed one stays hidden, the finished
	// one gone.
	sameJobs(t, "Claim after adding again", claim(t, q, at, 10), []push.Job{due, fresh})
	// After the lease of the first claim: only the claimed one comes back.
	sameJobs(t, "Claim after the first lease", claim(t, q, now+lease.Milliseconds(), 10), []push.Job{claimed})
	// The same job twice in one Add is one job.
	id2 := newInviteID()
	twice := NewJob(id2, "bob", "phone", push.KindEnd, now+30_000)
	mustAdd(t, q, id2, []push.Job{twice, again(twice)}, now, now+hour)
	sameJobs(t, "Claim of a job added twice at once", claim(t, q, now+lease.Milliseconds(), 10), []push.Job{twice})
	// Jobs are per invitation: the same key in another one is another job.
	id3 := newInviteID()
	other := due
	other.InviteID = id3
	mustAdd(t, q, id3, []push.Job{other}, now, now+hour)
	sameJobs(t, "Claim of the same key in another invitation", claim(t, q, now+lease.Milliseconds(), 10), []push.Job{other})
	// Nothing to add: nothing happens.
	mustAdd(t, q, newInviteID(), nil, now, now+hour)
}

func testRetry(t *testing.T, q push.Queue) {
	ctx := context.Background()
	now := nowMs()
	id := newInviteID()
	j := NewJob(id, "bob", "phone", push.KindEnd, now+30_000)
	j.Reg.Sandbox, j.Reason = true, "timeout"
	mustAdd(t, q, id, []push.Job{j}, now, now+hour)
	got := claim(t, q, now, 10)
	sameJobs(t, "Claim", got, []push.Job{j})

	tried := got[0]
	tried.Attempts = 3
	retryAt := now + 2000 // within the claim's lease: Retry moves it earlier
	if err := q.Retry(ctx, tried, retryAt); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	if got := claim(t, q, retryAt-1, 10); len(got) != 0 {
		t.Fatalf("claimed before its retry is due: %s", show(got))
	}
	sameJobs(t, "Claim at the retry", claim(t, q, retryAt, 10), []push.Job{tried})

	// And later than the lease.
	tried.Attempts = 4
	later := retryAt + 3*lease.Milliseconds()
	if err := q.Retry(ctx, tried, later); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, q, later-1, 10); len(got) != 0 {
		t.Fatalf("claimed before its retry is due, after the lease: %s", show(got))
	}
	sameJobs(t, "Claim at the later retry", claim(t, q, later, 10), []push.Job{tried})

	// A job finished meanwhile (by an instance that took it over) is not
	// brought back by a late Retry.
	if err := q.Finish(ctx, tried, push.OutcomeSent); err != nil {
		t.Fatal(err)
	}
	if err := q.Retry(ctx, tried, later+1); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, q, later+10*lease.Milliseconds(), 10); len(got) != 0 {
		t.Fatalf("a finished job came back after Retry: %s", show(got))
	}
	// Retry and Finish of a job never added: nothing.
	ghost := NewJob(newInviteID(), "bob", "phone", push.KindRing, now+30_000)
	if err := q.Retry(ctx, ghost, now); err != nil {
		t.Fatalf("Retry of an unknown job: %v", err)
	}
	if err := q.Finish(ctx, ghost, push.OutcomeSent); err != nil {
		t.Fatalf("Finish of an unknown job: %v", err)
	}
	if got := claim(t, q, later+20*lease.Milliseconds(), 10); len(got) != 0 {
		t.Fatalf("an unknown job was claimed after Retry: %s", show(got))
	}
}

func testFinish(t *testing.T, q push.Queue) {
	ctx := context.Background()
	now := nowMs()
	id := newInviteID()
	var jobs []push.Job
	outcomes := []string{push.OutcomeSent, push.OutcomeDead, push.OutcomeGaveUp, push.OutcomeFailed, push.OutcomeSkipped}
	for i := range outcomes {
		jobs = append(jobs, NewJob(id, "bob", fmt.Sprint("dev-", i), push.KindRing, now+30_000))
	}
	keep := NewJob(id, "carol", "phone", push.KindRing, now+30_000)
	mustAdd(t, q, id, append(slices.Clone(jobs), keep), now, now+hour)
	sameJobs(t, "Claim", claim(t, q, now, 10), append(slices.Clone(jobs), keep))
	for i, j := range jobs {
		if err := q.Finish(ctx, j, outcomes[i]); err != nil {
			t.Fatalf("Finish(%s): %v", outcomes[i], err)
		}
	}
	// Never claimed again, nor added again; the unfinished one comes back.
	after := now + lease.Milliseconds()
	mustAdd(t, q, id, jobs, after, now+hour)
	sameJobs(t, "Claim after Finish", claim(t, q, after, 10), []push.Job{keep})
	if got := claim(t, q, after+10*lease.Milliseconds(), 10); len(got) != 1 || got[0].User != "carol" {
		t.Fatalf("Claim long after: %s", show(got))
	}
	// Finished twice: still finished.
	if err := q.Finish(ctx, jobs[0], push.OutcomeFailed); err != nil {
		t.Fatal(err)
	}
}

func testRung(t *testing.T, q push.Queue) {
	ctx := context.Background()
	now := nowMs()
	id, other := newInviteID(), newInviteID()
	bobPhone := NewJob(id, "bob", "phone", push.KindRing, now+30_000)
	bobTablet := NewJob(id, "bob", "tablet", push.KindRing, now+30_000)
	bobEnd := NewJob(id, "bob", "phone", push.KindEnd, now+30_000)
	carol := NewJob(id, "carol", "phone", push.KindRing, now+30_000)
	bobb := NewJob(id, "bobb", "phone", push.KindRing, now+30_000) // a user whose ID starts with another's
	elsewhere := NewJob(other, "bob", "laptop", push.KindRing, now+30_000)
	mustAdd(t, q, id, []push.Job{bobTablet, carol, bobb}, now, now+hour)
	mustAdd(t, q, other, []push.Job{elsewhere}, now, now+hour)
	mustAdd(t, q, id, []push.Job{bobPhone}, now+1, now+hour)

	rung := func(id string, users ...string) []push.Job {
		t.Helper()
		jobs, err := q.Rung(ctx, id, users)
		if err != nil {
			t.Fatalf("Rung(%s, %q): %v", id, users, err)
		}
		return jobs
	}
	want := []push.Job{bobPhone, bobTablet}
	if got := rung(id, "bob"); !reflect.DeepEqual(got, want) {
		t.Fatalf("Rung(bob) =\n%s\nwant (by device)\n%s", show(got), show(want))
	}
	// Claimed, retried with attempts and finished: still rung, as it is now.
	for _, j := range claim(t, q, now+1, 10) {
		if j.User == "bob" && j.Device == "phone" {
			j.Attempts = 1
			if err := q.Retry(ctx, j, now+100); err != nil {
				t.Fatal(err)
			}
			bobPhone = j
		}
		if j.User == "bob" && j.Device == "tablet" {
			if err := q.Finish(ctx, j, push.OutcomeSent); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An end job is not a ring.
	mustAdd(t, q, id, []push.Job{bobEnd}, now+2, now+hour)
	want = []push.Job{bobPhone, bobTablet, carol}
	if got := rung(id, "carol", "bob", "nobody", "bob"); !reflect.DeepEqual(got, want) {
		t.Fatalf("Rung(carol, bob, nobody, bob) =\n%s\nwant (by user, then device)\n%s", show(got), show(want))
	}
	if got := rung(id, "nobody"); len(got) != 0 {
		t.Fatalf("Rung(nobody) = %s", show(got))
	}
	if got := rung(id); len(got) != 0 {
		t.Fatalf("Rung() = %s", show(got))
	}
	if got := rung(newInviteID(), "bob"); len(got) != 0 {
		t.Fatalf("Rung of an unknown invitation = %s", show(got))
	}
	if got := rung(other, "bob"); !reflect.DeepEqual(got, []push.Job{elsewhere}) {
		t.Fatalf("Rung of the other invitation = %s", show(got))
	}
}

// testDueOrder adds many jobs of many invitations due at different times:
// Claim hands them out earliest first, at most max at a time, each once.
func testDueOrder(t *testing.T, q push.Queue) {
	now := nowMs()
	const invitations, perInvitation = 12, 5
	dueAt := map[string]int64{} // InviteID → when its jobs are due
	var want []int64            // due times of all jobs, earliest first
	// Added latest first, so that an order of insertion would not pass.
	for i := invitations - 1; i >= 0; i-- {
		id := newInviteID()
		at := now + int64(i*10)
		dueAt[id] = at
		var jobs []push.Job
		for k := range perInvitation {
			jobs = append(jobs, NewJob(id, fmt.Sprint("user-", k), "d", push.KindRing, now+hour))
			want = append(want, at)
		}
		mustAdd(t, q, id, jobs, at, now+hour)
	}
	slices.Sort(want)
	at := now + 10_000
	seen := map[string]bool{}
	var got []int64
	for {
		jobs := claim(t, q, at, 7)
		if len(jobs) == 0 {
			break
		}
		if len(jobs) != 7 && len(got)+len(jobs) != len(want) {
			t.Fatalf("Claim(max 7) returned %d jobs with %d left", len(jobs), len(want)-len(got))
		}
		for _, j := range jobs {
			key := j.InviteID + "/" + j.User
			if seen[key] {
				t.Fatalf("%s claimed twice within a lease", key)
			}
			seen[key] = true
			got = append(got, dueAt[j.InviteID])
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("due times in claim order %v, want %v", got, want)
	}
}

func testExpiry(t *testing.T, q push.Queue) {
	ctx := context.Background()
	now := nowMs()
	// Expiries a minute on: Redis also expires the keys on its own clock,
	// which must not get there while the test runs on a slow machine.
	const expiry = 60_000
	soon := newInviteID()
	short := NewJob(soon, "bob", "phone", push.KindRing, now+500)
	claimedShort := NewJob(soon, "carol", "phone", push.KindRing, now+500)
	mustAdd(t, q, soon, []push.Job{short, claimedShort}, now, now+expiry)
	if got := claim(t, q, now, 1); len(got) != 1 {
		t.Fatalf("Claim(max 1) = %s", show(got))
	}
	// A later Add may say it lives longer; never shorter.
	mustAdd(t, q, soon, []push.Job{short}, now, now+expiry/2)
	// Past the expiry: nothing of it is claimed, not even what a dead
	// claimer left.
	after := now + expiry + 2*lease.Milliseconds()
	if got := claim(t, q, after, 10); len(got) != 0 {
		t.Fatalf("jobs claimed after their invitation's expiry: %s", show(got))
	}
	if got := claim(t, q, after+10*lease.Milliseconds(), 10); len(got) != 0 {
		t.Fatalf("jobs claimed long after their invitation's expiry: %s", show(got))
	}
	// A new invitation is added and claimed as usual.
	next := newInviteID()
	j := NewJob(next, "bob", "phone", push.KindRing, after+30_000)
	mustAdd(t, q, next, []push.Job{j}, after, after+hour)
	sameJobs(t, "Claim of a new invitation after another's expiry", claim(t, q, after, 10), []push.Job{j})

	// Extended by a later Add: still there at the first expiry.
	long := newInviteID()
	lj := NewJob(long, "bob", "phone", push.KindRing, now+hour)
	mustAdd(t, q, long, []push.Job{lj}, now, now+expiry)
	mustAdd(t, q, long, []push.Job{NewJob(long, "bob", "phone", push.KindEnd, now+hour)}, now, now+hour)
	jobs, err := q.Claim(ctx, now+expiry+1000, lease, 10)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, j := range jobs {
		if j.InviteID == long {
			kinds = append(kinds, j.Kind)
		}
	}
	slices.Sort(kinds)
	if !slices.Equal(kinds, []string{push.KindEnd, push.KindRing}) {
		t.Fatalf("jobs of an invitation whose expiry was pushed later: %v, want both", kinds)
	}
}

// testOddBytes adds jobs whose IDs and tokens hold what a careless encoding
// would mangle or confuse.
func testOddBytes(t *testing.T, q push.Queue) {
	ctx := context.Background()
	now := nowMs()
	id := newInviteID() + ":{odd},\n"
	longToken := strings.Repeat("tok\n:{},✓", device.MaxTokenBytes/11)
	var jobs []push.Job
	for _, ud := range [][2]string{
		{"a", "b\nc"}, {"a\nb", "c"}, // the same Key
		{"u:{x}", "}"}, {"3:abc,", "0:,"}, {"ünï ✓", "x\x00y"}, {"", "only-device"},
	} {
		j := NewJob(id, ud[0], ud[1], push.KindRing, now+30_000)
		j.Reg.Token = longToken + ud[0]
		j.Reason = "r\n:,{}"
		jobs = append(jobs, j)
	}
	mustAdd(t, q, id, jobs, now, now+hour)
	sameJobs(t, "Claim", claim(t, q, now, 100), jobs)
	for _, j := range jobs {
		got, err := q.Rung(ctx, id, []string{j.User})
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], j) {
			t.Fatalf("Rung(%q) = %s, %v; want %s", j.User, show(got), err, show([]push.Job{j}))
		}
	}
	if err := q.Finish(ctx, jobs[0], push.OutcomeSent); err != nil {
		t.Fatal(err)
	}
	if err := q.Retry(ctx, jobs[1], now+1); err != nil {
		t.Fatal(err)
	}
	sameJobs(t, "Claim after finishing one of two jobs with the same Key", claim(t, q, now+1, 100), []push.Job{jobs[1]})
}

// testConcurrentClaims has many claimers claim the same due jobs at once:
// each goes to exactly one of them per lease.
func testConcurrentClaims(t *testing.T, q push.Queue) {
	now := nowMs()
	const n = 240
	for range n / 4 {
		id := newInviteID()
		var jobs []push.Job
		for k := range 4 {
			jobs = append(jobs, NewJob(id, fmt.Sprint("user-", k), "d", push.KindRing, now+hour))
		}
		mustAdd(t, q, id, jobs, now, now+hour)
	}
	round := func(at int64) map[string]int {
		var mu sync.Mutex
		claims := map[string]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					jobs, err := q.Claim(context.Background(), at, lease, 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(jobs) == 0 {
						return
					}
					mu.Lock()
					for _, j := range jobs {
						claims[j.InviteID+"/"+j.User]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return claims
	}
	check := func(what string, claims map[string]int) {
		t.Helper()
		if len(claims) != n {
			t.Errorf("%s: %d jobs claimed, want %d", what, len(claims), n)
		}
		for k, c := range claims {
			if c != 1 {
				t.Errorf("%s: %s claimed %d times within one lease", what, k, c)
			}
		}
	}
	check("first lease", round(now))
	if got := claim(t, q, now+lease.Milliseconds()-1, n); len(got) != 0 {
		t.Fatalf("claimed within the lease: %d jobs", len(got))
	}
	check("second lease", round(now+lease.Milliseconds()))
}
