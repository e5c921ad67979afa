package invite

import "context"

// EventKind names an event as the wire protocol does, so that no layer has to
// translate it.
type EventKind string

// The events of the protocol.
const (
	EvNewInvitation EventKind = "onReceiveNewInvitation"
	EvAccepted      EventKind = "onInviteeAccepted"
	EvRejected      EventKind = "onInviteeRejected"
	EvCancelled     EventKind = "onInvitationCancelled"
	EvTimeout       EventKind = "onInvitationTimeout"
	EvModified      EventKind = "onInvitationModified"
)

// Event is something that happened to an invitation, with the users who must
// hear of it. Which fields are set depends on Kind, as in the protocol.
type Event struct {
	Kind        EventKind
	InviteID    string
	Inviter     string   // new invitation, cancelled
	GroupID     string   // new invitation
	InviteeList []string // new invitation: all invitees; timeout: those that timed out
	Invitee     string   // accepted, rejected
	Data        string   // all but timeout
	Timeout     int      // new invitation
	// To lists the users who receive the event, on every live connection.
	To []string
	// ExceptSession, when not zero, is the connection that caused the event;
	// it gets a reply instead. The same user's other connections still get the
	// event so that they stop ringing.
	ExceptSession uint64
	// OnlineUserOnly marks events of invitations sent with onlineUserOnly:
	// they reach only connections that are live now and are never kept.
	OnlineUserOnly bool
	// Once, when set, makes each user receive the event at most once however
	// often it is published: a timeout may be announced again by another
	// instance when the first one died before it could release the deadline.
	Once string
}

// Publisher delivers events to users' live connections, on every instance,
// and keeps them for resume. Publish must not block on slow receivers: the
// connection layer disconnects a receiver that cannot keep up rather than
// slow the engine down. It reports, by index of ev.To, which users have a
// live connection anywhere (all false when that cannot be known), so that
// the engine can ask for offline pushes.
type Publisher interface {
	Publish(ctx context.Context, ev Event) (online []bool)
}
