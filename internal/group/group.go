// Package group owns group membership: who may be invited with
// inviteInGroup. Membership is kept in the same backend as invitations
// (memory or Redis); this package declares what is asked of that backend.
// The admin HTTP API that changes it is the HTTP edge's (package server).
package group

import (
	"context"
	"errors"
)

// Errors returned by a Store.
var (
	// ErrNotFound: the group does not exist.
	ErrNotFound = errors.New("group not found")
)

// Store keeps groups and their members. A group exists once created, even
// with no members, until it is deleted. Every method may also fail with an
// error wrapping invite.ErrUnavailable when the backend cannot be reached.
type Store interface {
	// AddMembers creates the group if needed, adds members (already present
	// ones are fine) and returns every member, sorted.
	AddMembers(ctx context.Context, groupID string, members []string) ([]string, error)
	// RemoveMember removes one member; removing a non-member is not an
	// error. ErrNotFound when the group does not exist.
	RemoveMember(ctx context.Context, groupID, userID string) error
	// Members returns every member, sorted. ErrNotFound when the group does
	// not exist.
	Members(ctx context.Context, groupID string) ([]string, error)
	// Delete removes the group. ErrNotFound when it does not exist.
	Delete(ctx context.Context, groupID string) error
	// FirstNonMember returns the first of users, in order, who is not a
	// member, or "" when all are. ErrNotFound when the group does not exist.
	FirstNonMember(ctx context.Context, groupID string, users []string) (string, error)
}
