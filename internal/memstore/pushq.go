package memstore

import (
	"cmp"
	"container/heap"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/signald/signald/internal/push"
)

// pushQueue holds the push jobs (push.Queue), per invitation, behind a
// mutex of its own. Like the invitations' deadlines, claimable jobs are
// found with a lazy heap, and invitations past their expiry are forgotten
// by Claim, which the push worker calls all the time.
type pushQueue struct {
	mu      sync.Mutex
	invs    map[string]*pushInv // inviteID → its jobs; guarded by mu
	dueQ    pushHeap            // lazy queue over the jobs' due times; guarded by mu
	expiryQ timeHeap            // lazy queue over invs' expires; guarded by mu
}

func newPushQueue() pushQueue {
	return pushQueue{invs: make(map[string]*pushInv)}
}

type pushInv struct {
	expires int64 // ms when all of it may be forgotten; 0: never
	jobs    map[pushKey]*pushRec
}

// pushKey identifies a job within its invitation, as push.Job.Key does,
// without a separator that IDs may contain.
type pushKey struct{ user, device, kind string }

func keyOf(j push.Job) pushKey { return pushKey{j.User, j.Device, j.Kind} }

type pushRec struct {
	job      push.Job
	due      int64 // when Claim may next return it
	finished bool
	outcome  string // once finished
}

// Add implements push.Queue.
func (s *Store) Add(_ context.Context, inviteID string, jobs []push.Job, now, expires int64) error {
	if len(jobs) == 0 {
		return nil
	}
	q := &s.pushQ
	q.mu.Lock()
	defer q.mu.Unlock()
	inv := q.invs[inviteID]
	if inv == nil {
		inv = &pushInv{jobs: make(map[pushKey]*pushRec)}
		q.invs[inviteID] = inv
	}
	if expires > inv.expires {
		inv.expires = expires
		heap.Push(&q.expiryQ, timed{expires, inviteID})
	}
	for _, j := range jobs {
		k := keyOf(j)
		if inv.jobs[k] != nil {
			continue // recorded before: due, claimed or finished
		}
		j.InviteID = inviteID
		inv.jobs[k] = &pushRec{job: j, due: now}
		heap.Push(&q.dueQ, pushDue{now, inviteID, k})
	}
	return nil
}

// Rung implements push.Queue: ordered by user, then device.
func (s *Store) Rung(_ context.Context, inviteID string, users []string) ([]push.Job, error) {
	q := &s.pushQ
	q.mu.Lock()
	defer q.mu.Unlock()
	inv := q.invs[inviteID]
	if inv == nil {
		return nil, nil
	}
	var out []push.Job
	for k, rec := range inv.jobs {
		if k.kind == push.KindRing && slices.Contains(users, k.user) {
			out = append(out, rec.job)
		}
	}
	slices.SortFunc(out, compareJobs)
	return out, nil
}

func compareJobs(a, b push.Job) int {
	return cmp.Or(strings.Compare(a.User, b.User), strings.Compare(a.Device, b.Device), strings.Compare(a.Kind, b.Kind))
}

// Claim implements push.Queue: the earliest due first. It also forgets
// the invitations whose expiry has passed.
func (s *Store) Claim(_ context.Context, now int64, lease time.Duration, max int) ([]push.Job, error) {
	q := &s.pushQ
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.expiryQ.Len() > 0 && q.expiryQ[0].at <= now {
		e := heap.Pop(&q.expiryQ).(timed)
		if inv := q.invs[e.id]; inv != nil && inv.expires == e.at {
			delete(q.invs, e.id) // its heap entries are now stale
		}
	}
	var out []push.Job
	var reclaimed []pushDue
	for len(out) < max && q.dueQ.Len() > 0 && q.dueQ[0].at <= now {
		e := heap.Pop(&q.dueQ).(pushDue)
		rec := q.record(e.inv, e.key)
		if rec == nil || rec.finished || rec.due != e.at {
			continue // stale: forgotten, finished, or re-queued under another time
		}
		rec.due = now + lease.Milliseconds()
		reclaimed = append(reclaimed, pushDue{rec.due, e.inv, e.key})
		out = append(out, rec.job)
	}
	for _, e := range reclaimed {
		heap.Push(&q.dueQ, e)
	}
	return out, nil
}

// Retry implements push.Queue. A job finished or forgotten meanwhile
// stays so.
func (s *Store) Retry(_ context.Context, j push.Job, at int64) error {
	q := &s.pushQ
	q.mu.Lock()
	defer q.mu.Unlock()
	rec := q.record(j.InviteID, keyOf(j))
	if rec == nil || rec.finished {
		return nil
	}
	rec.job.Attempts = j.Attempts
	rec.due = at
	heap.Push(&q.dueQ, pushDue{at, j.InviteID, keyOf(j)})
	return nil
}

// Finish implements push.Queue. The record stays until its invitation's
// expiry, so that Add still knows it.
func (s *Store) Finish(_ context.Context, j push.Job, outcome string) error {
	q := &s.pushQ
	q.mu.Lock()
	defer q.mu.Unlock()
	if rec := q.record(j.InviteID, keyOf(j)); rec != nil && !rec.finished {
		rec.finished, rec.outcome = true, outcome
	}
	return nil
}

// record returns a job's record, nil when unknown. Called with mu held.
func (q *pushQueue) record(inviteID string, k pushKey) *pushRec {
	if inv := q.invs[inviteID]; inv != nil {
		return inv.jobs[k]
	}
	return nil
}

// pushDue is an entry of a pushHeap: a job due at a time (ms).
type pushDue struct {
	at  int64
	inv string
	key pushKey
}

// pushHeap is a min-heap of pushDue entries, lazy as timeHeap is.
type pushHeap []pushDue

func (h pushHeap) Len() int           { return len(h) }
func (h pushHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h pushHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pushHeap) Push(x any)        { *h = append(*h, x.(pushDue)) }
func (h *pushHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
