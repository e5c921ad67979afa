// Package memstore is the embedded, single-process store: invitations,
// deadlines and groups in memory behind one mutex; device registrations and
// push jobs behind mutexes of their own. It is the default when no Redis is
// configured; nothing survives a restart.
package memstore

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/signald/signald/internal/group"
	"github.com/signald/signald/internal/invite"
)

// Store implements invite.Store, group.Store, device.Store and push.Queue
// in memory.
//
// Dropped invitations (past their maximum lifetime or retention) are treated
// as gone by every read at once, and their memory is reclaimed on the next
// ClaimDue, which the engine's timeout loop calls every poll interval; this
// keeps the store free of goroutines of its own.
type Store struct {
	mu        sync.Mutex
	invs      map[string]*record             // guarded by mu
	pending   map[string][]string            // user → IDs it may be pending in (at most MaxPending, bar races); guarded by mu
	deadlines map[string]int64               // ID → when ClaimDue may return it; guarded by mu
	dueQ      timeHeap                       // lazy queue over deadlines; guarded by mu
	expiryQ   timeHeap                       // lazy queue over invs' Expires; guarded by mu
	groups    map[string]map[string]struct{} // guarded by mu
	// announce: recorded changes not yet announced, by token; an entry
	// is claimable from its time on. Guarded by mu.
	announce map[string]annEntry
	// outgoing: each inviter's active invitations; tat: when each user's
	// invite budget is whole again (ms), forgotten once past. For Admit;
	// guarded by mu.
	outgoing map[string]map[string]struct{}
	tat      map[string]float64
	tatSwept int64 // when tat was last rid of whole budgets (ms)

	devices devices   // device registrations (device.Store), under a mutex of their own
	pushQ   pushQueue // push jobs (push.Queue), under a mutex of their own
}

type annEntry struct {
	id string
	at int64
}

// New returns an empty store.
func New() *Store {
	return &Store{
		invs:      make(map[string]*record),
		pending:   make(map[string][]string),
		deadlines: make(map[string]int64),
		groups:    make(map[string]map[string]struct{}),
		announce:  make(map[string]annEntry),
		outgoing:  make(map[string]map[string]struct{}),
		tat:       make(map[string]float64),
		devices:   newDevices(),
		pushQ:     newPushQueue(),
	}
}

// Ping always succeeds: memory is always reachable.
func (s *Store) Ping(context.Context) error { return nil }

// Create implements invite.Store.
func (s *Store) Create(_ context.Context, inv *invite.Invitation, announceBy int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.createdAlready(inv) {
		return nil
	}
	return s.createLocked(inv, announceBy)
}

// createdAlready reports whether inv is stored with its own creation entry:
// this very Create, tried again. s.mu is held.
func (s *Store) createdAlready(inv *invite.Invitation) bool {
	old, ok := s.invs[inv.ID]
	if !ok {
		return false
	}
	for token, a := range inv.Unannounced {
		if _, same := old.unannounced[token]; same && a.Action == invite.ActInvite {
			return true
		}
	}
	return false
}

// createLocked is Create of an invitation not created already; s.mu is
// held.
func (s *Store) createLocked(inv *invite.Invitation, announceBy int64) error {
	if _, ok := s.invs[inv.ID]; ok {
		return fmt.Errorf("create %s: %w", inv.ID, invite.ErrExists)
	}
	c := newRecord(inv)
	for token := range c.unannounced {
		s.announce[token] = annEntry{id: c.id, at: announceBy}
	}
	s.invs[c.id] = c
	if c.deadline > 0 {
		s.deadlines[c.id] = c.deadline
		heap.Push(&s.dueQ, timed{c.deadline, c.id})
	}
	if c.expires > 0 {
		heap.Push(&s.expiryQ, timed{c.expires, c.id})
	}
	if !c.onlineUserOnly {
		for _, u := range c.invitees {
			s.pending[u] = append(s.pending[u], c.id)
		}
	}
	addTo(s.outgoing, c.inviter, c.id)
	return nil
}

func addTo(index map[string]map[string]struct{}, user, id string) {
	ids := index[user]
	if ids == nil {
		ids = make(map[string]struct{})
		index[user] = ids
	}
	ids[id] = struct{}{}
}

func removeFrom(index map[string]map[string]struct{}, user, id string) {
	if ids := index[user]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(index, user)
		}
	}
}

// Apply implements invite.Store.
func (s *Store) Apply(_ context.Context, id string, ch invite.Change) (invite.Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch.Token != "" { // entered whatever the outcome, as redisstore does
		s.announce[ch.Token] = annEntry{id: id, at: ch.AnnounceBy}
	}
	var inv *invite.Invitation
	if r := s.invs[id]; r != nil {
		inv = r.invitation()
	}
	out, err := invite.Apply(inv, ch)
	if err != nil {
		return invite.Outcome{}, fmt.Errorf("%s %s: %w", ch.Action, id, err)
	}
	next := out.Invitation
	s.invs[id] = newRecord(next)
	for _, u := range out.Changed {
		s.unindex(u, id)
	}
	if out.Ended {
		removeFrom(s.outgoing, next.Inviter, id)
		if ch.Action != invite.ActTimeout { // the timeout loop releases what it fired
			delete(s.deadlines, id)
		}
		heap.Push(&s.expiryQ, timed{next.Expires, id})
	}
	return invite.Outcome{Invitation: next, Changed: out.Changed, Ended: out.Ended}, nil
}

// Get implements invite.Store.
func (s *Store) Get(_ context.Context, id string, now int64) (*invite.Invitation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.invs[id]
	if r == nil || r.dropped(now) {
		return nil, fmt.Errorf("get %s: %w", id, invite.ErrNotFound)
	}
	return r.invitation(), nil
}

// PendingFor implements invite.Store.
func (s *Store) PendingFor(_ context.Context, user string, now int64) ([]*invite.Invitation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*invite.Invitation
	var gone []string
	for _, id := range s.pending[user] {
		r := s.invs[id]
		if r == nil || r.dropped(now) || !r.active() || r.state(user) != invite.StatePending {
			gone = append(gone, id)
			continue
		}
		if r.deadline > 0 && now >= r.deadline {
			continue // timed out, though not yet fired: not to be rung
		}
		out = append(out, r.invitation())
	}
	for _, id := range gone {
		s.unindex(user, id)
	}
	slices.SortFunc(out, func(a, b *invite.Invitation) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// ClaimUnannounced implements invite.Store. Entries are few (changes in
// flight), so a scan serves.
func (s *Store) ClaimUnannounced(_ context.Context, now int64, lease time.Duration, max int) ([]invite.Unannounced, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []invite.Unannounced
	for token, e := range s.announce {
		if len(out) == max {
			break
		}
		if e.at <= now {
			s.announce[token] = annEntry{id: e.id, at: now + lease.Milliseconds()}
			out = append(out, invite.Unannounced{ID: e.id, Token: token})
		}
	}
	return out, nil
}

// Announced implements invite.Store.
func (s *Store) Announced(_ context.Context, done []invite.Unannounced) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range done {
		delete(s.announce, d.Token)
		// In place: the store's invitations are its own (every method
		// hands out clones), and this runs in batches under the lock.
		if r := s.invs[d.ID]; r != nil && r.unannounced != nil {
			delete(r.unannounced, d.Token)
			if len(r.unannounced) == 0 {
				r.unannounced = nil
			}
		}
	}
	return nil
}

// ReleaseDeadlines implements invite.Store.
func (s *Store) ReleaseDeadlines(_ context.Context, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.deadlines, id)
	}
	return nil
}

// ClaimDue implements invite.Store. It also reclaims the memory of dropped
// invitations.
func (s *Store) ClaimDue(_ context.Context, now int64, lease time.Duration, max int) ([]string, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	var ids []string
	var reclaimed []timed
	for len(ids) < max && s.dueQ.Len() > 0 && s.dueQ[0].at <= now {
		e := heap.Pop(&s.dueQ).(timed)
		if at, ok := s.deadlines[e.id]; !ok || at != e.at {
			continue // stale: handled, or re-queued under a later time
		}
		until := now + lease.Milliseconds()
		s.deadlines[e.id] = until
		reclaimed = append(reclaimed, timed{until, e.id})
		ids = append(ids, e.id)
	}
	for _, e := range reclaimed {
		heap.Push(&s.dueQ, e)
	}
	// The queue's head may be stale (handled, or re-queued later): then
	// the caller wakes early, finds nothing, and is told the next.
	var next int64
	if s.dueQ.Len() > 0 {
		next = s.dueQ[0].at
	}
	return ids, next, nil
}

// sweep forgets invitations dropped at now. Called with mu held.
func (s *Store) sweep(now int64) {
	for s.expiryQ.Len() > 0 && s.expiryQ[0].at <= now {
		e := heap.Pop(&s.expiryQ).(timed)
		r := s.invs[e.id]
		if r == nil || !r.dropped(now) {
			continue // already gone, or its expiry moved
		}
		delete(s.invs, e.id)
		delete(s.deadlines, e.id)
		removeFrom(s.outgoing, r.inviter, e.id)
		for _, u := range r.invitees {
			s.unindex(u, e.id)
		}
	}
	if now-s.tatSwept >= 10_000 { // a scan of every recent inviter: now and then
		s.tatSwept = now
		for u, tat := range s.tat {
			if tat <= float64(now) {
				delete(s.tat, u) // a whole budget: as if never used
			}
		}
	}
}

// unindex forgets that user may be pending in id. A user is pending in
// few invitations (at most MaxPending), so a slice serves, for a fraction
// of a map's memory.
func (s *Store) unindex(user, id string) {
	ids := s.pending[user]
	i := slices.Index(ids, id)
	if i < 0 {
		return
	}
	ids[i] = ids[len(ids)-1]
	ids[len(ids)-1] = ""
	if ids = ids[:len(ids)-1]; len(ids) == 0 {
		delete(s.pending, user)
	} else {
		s.pending[user] = ids
	}
}

// AddMembers implements group.Store.
func (s *Store) AddMembers(_ context.Context, groupID string, members []string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[groupID]
	if g == nil {
		g = make(map[string]struct{})
		s.groups[groupID] = g
	}
	for _, m := range members {
		g[m] = struct{}{}
	}
	return sortedKeys(g), nil
}

// RemoveMember implements group.Store.
func (s *Store) RemoveMember(_ context.Context, groupID, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[groupID]
	if g == nil {
		return fmt.Errorf("group %s: %w", groupID, group.ErrNotFound)
	}
	delete(g, userID)
	return nil
}

// Members implements group.Store.
func (s *Store) Members(_ context.Context, groupID string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[groupID]
	if g == nil {
		return nil, fmt.Errorf("group %s: %w", groupID, group.ErrNotFound)
	}
	return sortedKeys(g), nil
}

// Delete implements group.Store.
func (s *Store) Delete(_ context.Context, groupID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups[groupID] == nil {
		return fmt.Errorf("group %s: %w", groupID, group.ErrNotFound)
	}
	delete(s.groups, groupID)
	return nil
}

// FirstNonMember implements group.Store.
func (s *Store) FirstNonMember(_ context.Context, groupID string, users []string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[groupID]
	if g == nil {
		return "", fmt.Errorf("group %s: %w", groupID, group.ErrNotFound)
	}
	for _, u := range users {
		if _, ok := g[u]; !ok {
			return u, nil
		}
	}
	return "", nil
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// timed is an entry of a timeHeap: an invitation ID due at a time (ms).
type timed struct {
	at int64
	id string
}

// timeHeap is a min-heap of timed entries. Entries are never updated in
// place: a newer entry is pushed and the old one recognised as stale when
// popped, which keeps every operation O(log n).
type timeHeap []timed

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(timed)) }
func (h *timeHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
