package invite

import (
	"context"
	"time"
)

// Store keeps invitations, their deadlines and their outboxes. Implementations:
// memstore (one process) and redisstore (many nodes). Both must pass the
// contract suite in package invite/storetest, which holds them to Apply.
//
// Every method may fail with an error wrapping ErrUnavailable when the
// backing service cannot be reached.
type Store interface {
	// Create stores a new invitation with every invitee pending. When its
	// Deadline is set it is entered for ClaimDue; unless OnlineUserOnly, it is
	// indexed under each invitee for PendingFor. Every entry of
	// inv.Unannounced is entered for ClaimUnannounced from announceBy (ms)
	// on. It fails with ErrExists when the ID is taken, but by inv itself
	// (the same creation entry: a Create tried again after its answer was
	// lost), which succeeds.
	Create(ctx context.Context, inv *Invitation, announceBy int64) error

	// Apply performs one transition atomically, exactly as the function
	// Apply would on the stored invitation at ch.Now, and stores the result;
	// a change with a Token is entered for ClaimUnannounced from
	// ch.AnnounceBy on. Concurrent Apply calls on one invitation are
	// serialised, so of two racing changes to one invitee exactly one
	// succeeds. A change that ends the invitation forgets its deadline,
	// except ActTimeout: the timeout loop releases the deadlines it fired
	// (ReleaseDeadlines), so that one whose timeout failed half-way is
	// claimed again. A change whose Token is recorded already was applied
	// already (tried again after its answer was lost): it succeeds, as
	// Apply does. Errors: ErrNotFound, ErrForbidden, ErrEnded, ErrNotDue.
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
	// reappear after the lease. next is the earliest deadline still entered
	// after the claim (ms; 0 when none), so that the caller can sleep until
	// then rather than poll.
	ClaimDue(ctx context.Context, now int64, lease time.Duration, max int) (ids []string, next int64, err error)

	// ReleaseDeadlines forgets the deadlines of ids for good: their timeout
	// has been applied (its announcement is in the outbox), or they ended
	// otherwise.
	ReleaseDeadlines(ctx context.Context, ids []string) error

	// ClaimUnannounced returns up to max outbox entries whose AnnounceBy has
	// passed without Announced, and hides each from other claimers for
	// lease, as ClaimDue does for deadlines. A claimed entry may no longer
	// be recorded (its Apply failed, or it was announced, or the invitation
	// is gone): the claimer then just calls Announced.
	ClaimUnannounced(ctx context.Context, now int64, lease time.Duration, max int) ([]Unannounced, error)

	// Announced forgets outbox entries: their effects are carried out.
	Announced(ctx context.Context, done []Unannounced) error
}

// Unannounced names an outbox entry: a change recorded under a token on an
// invitation.
type Unannounced struct {
	ID    string
	Token string
}

// Quotas bound what one user can make others and the server hold, on every
// instance together. Implementations: the memory and the Redis store.
type Quotas interface {
	// Admit takes n from inviter's invite budget (Limits.Rate per second,
	// up to Limits.Burst, in invitees) and checks that inviter has fewer
	// than Limits.MaxActive active invitations and that each of invitees
	// is pending in fewer than Limits.MaxPending. It fails with an error
	// wrapping ErrRateLimited, ErrTooManyActive or ErrTooManyPending
	// (naming the invitee), or ErrUnavailable. A refused invite still
	// spends its budget: a caller that keeps trying is slowed all the same.
	Admit(ctx context.Context, inviter string, invitees []string, now int64, l Limits) error
}

// AdmittingStore is a Store that is also the Quotas and can admit an
// invitation in the step that creates it: on a remote store, one round trip
// where Admit and Create take two, on every invite.
type AdmittingStore interface {
	// CreateAdmitted is Admit(inv.Inviter, inv.Invitees, inv.CreatedAt, l)
	// followed, when admitted, by Create(inv, announceBy), with their
	// errors. An invitation refused is not stored, and its budget is spent
	// as Admit spends it. A CreateAdmitted tried again after its answer was
	// lost succeeds, as Create does.
	CreateAdmitted(ctx context.Context, inv *Invitation, announceBy int64, l Limits) error
}

// PublishingStore is an AdmittingStore that can publish an invitation's
// ring in the step that creates it: one round trip for the whole invite
// on a remote store.
type PublishingStore interface {
	AdmittingStore
	// CreateAdmittedPublishing is CreateAdmitted that also carries out
	// ev.Payload in the same step. published reports whether it did, and
	// report is then the payload's report, for ev.Done. With err nil and
	// published false, the invitation is stored but its event not (or
	// not wholly) published: the payload is not one this store knows, or
	// it failed part-way, and the caller publishes the event itself.
	CreateAdmittedPublishing(ctx context.Context, inv *Invitation, announceBy int64, l Limits, ev PreparedEvent) (report []any, published bool, err error)
	// ApplyPublishing is Apply that also carries out ev.Payload, an event
	// for the invitation's inviter and invitees, in the same step, unless
	// an earlier change of the invitation is still in its outbox (its
	// event goes first). published and report as for
	// CreateAdmittedPublishing.
	ApplyPublishing(ctx context.Context, id string, ch Change, ev PreparedEvent) (out Outcome, report []any, published bool, err error)
}

// Limits are the quotas of one user.
type Limits struct {
	Rate       float64 // invitees per second
	Burst      int     // invitees at once
	MaxActive  int     // active invitations an inviter may have
	MaxPending int     // invitations an invitee may be pending in
}
