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
	// Push is the invitation's offlinePushInfo, kept so that whichever
	// instance announces the invitation can request its offline pushes.
	Push PushInfo
	// Seq counts the announcements recorded on the invitation so far; the
	// next one gets Seq+1. It orders them: Announcement.Seq.
	Seq int64
	// Unannounced is the invitation's outbox: the changes (its creation
	// included) whose effects are not yet known to have been carried out,
	// by token; nil when none. An instance that dies, or a backend that
	// fails, between a change and its effects leaves the change here to be
	// announced later, by this instance or another (Store.ClaimUnannounced).
	Unannounced map[string]Announcement
}

// Announcement is a recorded change whose effects (events, offline pushes)
// may not have been carried out yet.
type Announcement struct {
	// Seq orders the announcements of one invitation as their changes were
	// applied, so that they are announced in that order.
	Seq    int64
	Action Action // ActInvite for the creation
	Actor  string // "" for ActTimeout
	Data   string // the change's data; "" for ActInvite and ActTimeout
	// Origin is the connection that made the change: it gets the reply,
	// not the event. Zero for a change the server made (a timeout).
	Origin Origin
}

// Origin names a connection: the instance it is on and its session there,
// and the device it said it is.
type Origin struct {
	Node    string
	Session uint64
	Device  string
}

// PushInfo is the offlinePushInfo of an invite: what an offline push
// notification should show, or that none is wanted.
type PushInfo struct {
	Title       string
	Desc        string
	Ext         string
	DisablePush bool
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
