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
