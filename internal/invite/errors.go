package invite

import (
	"errors"
	"fmt"
)

// Domain errors. Callers wrap them with %w to add detail; exactly one table at
// the HTTP and WebSocket edge (internal/server/codes.go) maps them to wire
// codes.
var (
	// ErrInvalid: a request parameter is missing, mistyped or out of range.
	ErrInvalid = errors.New("invalid parameters")
	// ErrDataTooLarge: a data field is over MaxDataBytes.
	ErrDataTooLarge = errors.New("data too large")
	// ErrTooManyInvitees: inviteeList is longer than the configured maximum.
	ErrTooManyInvitees = errors.New("too many invitees")
	// ErrNotMember: the inviter or an invitee is not a member of the group.
	ErrNotMember = errors.New("not a member of the group")
	// ErrNotFound: no invitation with this ID is known (never was, or it was
	// dropped after its retention).
	ErrNotFound = errors.New("invitation not found")
	// ErrForbidden: the caller is not allowed this action on the invitation.
	ErrForbidden = errors.New("no permission for this invitation")
	// ErrEnded: the invitation, or the caller's part in it, has already ended.
	ErrEnded = errors.New("invitation already ended")
	// ErrExists: Create was given an ID that is already taken.
	ErrExists = errors.New("invitation already exists")
	// ErrUnavailable: the store could not be reached; the change may or may
	// not have taken effect.
	ErrUnavailable = errors.New("store unavailable")
	// ErrRateLimited: the inviter has used up its invite budget (invitees
	// per second, on every instance together).
	ErrRateLimited = errors.New("invite rate limit exceeded")
	// ErrTooManyActive: the inviter already has the most active
	// invitations allowed.
	ErrTooManyActive = errors.New("too many active invitations")
	// ErrTooManyPending: an invitee already is pending in the most
	// invitations allowed.
	ErrTooManyPending = errors.New("invitee has too many pending invitations")
)

// NotMemberError names the first user of an inviteInGroup who is not in
// the group: the protocol's reply (10007) names them.
type NotMemberError struct {
	User, Group string
}

func (e *NotMemberError) Error() string {
	return fmt.Sprintf("%q is not a member of group %q", e.User, e.Group)
}

// Unwrap makes a NotMemberError an ErrNotMember.
func (e *NotMemberError) Unwrap() error { return ErrNotMember }
