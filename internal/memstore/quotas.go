package memstore

import (
	"context"
	"fmt"

	"github.com/signald/signald/internal/invite"
)

// Admit implements invite.Quotas. The budget is a generic cell rate
// algorithm: tat is when a user's budget is whole again (ms), and an
// invite of n invitees moves it n emission intervals later.
func (s *Store) Admit(_ context.Context, inviter string, invitees []string, now int64, l invite.Limits) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admitLocked(inviter, invitees, now, l)
}

// CreateAdmitted implements invite.AdmittingStore: Admit and Create under
// one hold of the lock. One tried again is not admitted again.
func (s *Store) CreateAdmitted(_ context.Context, inv *invite.Invitation, announceBy int64, l invite.Limits) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.createdAlready(inv) {
		return nil
	}
	if err := s.admitLocked(inv.Inviter, inv.Invitees, inv.CreatedAt, l); err != nil {
		return err
	}
	return s.createLocked(inv, announceBy)
}

// admitLocked is Admit; s.mu is held.
func (s *Store) admitLocked(inviter string, invitees []string, now int64, l invite.Limits) error {
	interval := 1000 / l.Rate
	capacity := float64(l.Burst) * interval
	tat := max(s.tat[inviter], float64(now))
	next := tat + float64(len(invitees))*interval
	if next-float64(now) > capacity {
		// Refused, and the budget left is spent: a caller that keeps
		// trying stays refused until it pauses.
		s.tat[inviter] = float64(now) + capacity
		return fmt.Errorf("%d invitees: %w", len(invitees), invite.ErrRateLimited)
	}
	s.tat[inviter] = next
	if n := len(s.outgoing[inviter]); n >= l.MaxActive {
		return fmt.Errorf("%d active invitations, at most %d: %w", n, l.MaxActive, invite.ErrTooManyActive)
	}
	for _, u := range invitees {
		if n := len(s.pending[u]); n >= l.MaxPending {
			return fmt.Errorf("%q is pending in %d invitations, at most %d: %w", u, n, l.MaxPending, invite.ErrTooManyPending)
		}
	}
	return nil
}
