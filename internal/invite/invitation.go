// Package invite owns call invitations: their per-invitee states, the
// transitions between them, the Store they are kept in and the Engine that
// validates requests and publishes the resulting events.
//
// The package knows nothing of Redis, HTTP or WebSockets: stores and the
// connection layer are adapters that plug into the interfaces declared here.
package invite

import (
	"slices"
	"time"
)

// State is one invitee's part in an invitation.
type State string

// The states an invitee can be in. Only StatePending ever changes.
const (
	StatePending   State = "pending"
	StateAccepted  State = "accepted"
	StateRejected  State = "rejected"
	StateTimeout   State = "timeout"
	StateCancelled State = "cancelled"
)

// Invitation is one call invitation as kept by a Store.
//
// Times are kept as Unix milliseconds because that is what the wire protocol
// carries and what Lua scripts can compare without parsing.
type Invitation struct {
	ID             string
	GroupID        string // "" for a one-to-one invitation
	Inviter        string
	Invitees       []string // in the order the inviter gave them
	Data           string
	Timeout        int // seconds; 0 means no deadline
	OnlineUserOnly bool
	CreatedAt      int64 // ms since epoch
	// Deadline is when pending invitees time out (ms); 0 when Timeout is 0.
	Deadline int64
	// Expires is when the store may drop an invitation that never ended (ms):
	// the server's maximum lifetime, measured from CreatedAt.
	Expires int64
	// EndedAt is when the last pending invitee left the pending state (ms);
	// 0 while the invitation is active.
	EndedAt int64
	States  map[string]State
	// Unannounced holds the changes applied with a Change.Token whose events
	// are not yet known to have been published, by token; nil when none.
	// An instance that dies between a change and its announcement leaves the
	// change here for another instance to announce (Store.ClaimUnannounced).
	Unannounced map[string]Announcement
}

// Announcement is a change whose event may not have been published yet.
type Announcement struct {
	Action Action
	Actor  string
	Data   string
}

// Active reports whether at least one invitee is still pending.
func (inv *Invitation) Active() bool { return inv.EndedAt == 0 }

// IsInvitee reports whether user is one of the invitees.
func (inv *Invitation) IsInvitee(user string) bool {
	_, ok := inv.States[user]
	return ok
}

// Clone returns a deep copy, so that a store can hand out invitations without
// sharing its own maps and slices.
func (inv *Invitation) Clone() *Invitation {
	c := *inv
	c.Invitees = slices.Clone(inv.Invitees)
	c.States = make(map[string]State, len(inv.States))
	for k, v := range inv.States {
		c.States[k] = v
	}
	if inv.Unannounced != nil {
		c.Unannounced = make(map[string]Announcement, len(inv.Unannounced))
		for k, v := range inv.Unannounced {
			c.Unannounced[k] = v
		}
	}
	return &c
}

// Millis converts t to Unix milliseconds, the unit of every stored time.
func Millis(t time.Time) int64 { return t.UnixMilli() }
