package invite

import (
	"context"
	"time"
)

// Store keeps invitations and their deadlines. Implementations: memstore
// (one process) and redisstore (many nodes). Both must pass the contract
// suite in package invite/storetest, which holds them to Apply.
//
// Every method may fail with an error wrapping ErrUnavailable when the
// backing service cannot be reached.
type Store interface {
	// Create stores a new invitation with every invitee pending. When its
	// Deadline is set it is entered for ClaimDue; unless OnlineUserOnly, it is
	// indexed under each invitee for PendingFor. It fails with ErrExists
	// when the ID is taken.
	Create(ctx context.Context, inv *Invitation) error

	// Apply performs one transition atomically, exactly as the function
	// Apply would on the stored invitation at ch.Now, and stores the result.
	// Concurrent Apply calls on one invitation are serialised, so of two
	// racing changes to one invitee exactly one succeeds. A change that ends
	// the invitation forgets its deadline, except ActTimeout: the timeout
	// loop releases it once the timeout is announced, so that an instance
	// that dies in between leaves it to be claimed again after the lease.
	// Errors: ErrNotFound, ErrForbidden, ErrEnded, ErrNotDue.
	Apply(ctx context.Context, id string, ch Change) (Outcome, error)

	// Get returns the invitation as it is at now. Errors: ErrNotFound (never
	// stored, or Dropped at now).
	Get(ctx context.Context, id string, now int64) (*Invitation, error)

	// PendingFor returns, oldest first, the invitations not sent with
	// OnlineUserOnly in which user is still pending at now (active, before
	// its deadline).
	PendingFor(ctx context.Context, user string, now int64) ([]*Invitation, error)

	// ClaimDue returns up to max IDs of invitations whose deadline is at or
	// before now, and hides each from other claimers for lease, so that of
	// many nodes polling one store only one handles a deadline at a time; a
	// claimer that dies before Apply(ActTimeout) leaves the deadline to
	// reappear after the lease.
	ClaimDue(ctx context.Context, now int64, lease time.Duration, max int) ([]string, error)

	// ReleaseDeadline forgets an invitation's deadline for good: its
	// timeout has been announced, or it ended otherwise.
	ReleaseDeadline(ctx context.Context, id string) error

	// ClaimUnannounced returns up to max changes applied with a Token whose
	// AnnounceBy has passed without Announced, and hides each from other
	// claimers for lease, as ClaimDue does for deadlines. A claimed change
	// may no longer be recorded (its Apply failed, or it was announced, or
	// the invitation is gone): the claimer then just calls Announced.
	ClaimUnannounced(ctx context.Context, now int64, lease time.Duration, max int) ([]Unannounced, error)

	// Announced forgets the recorded changes: their events are published.
	Announced(ctx context.Context, done []Unannounced) error
}

// Unannounced names a change recorded under a token on an invitation.
type Unannounced struct {
	ID    string
	Token string
}
