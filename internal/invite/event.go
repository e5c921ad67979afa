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

// EventNames are the names of every event, for metrics that start at 0.
func EventNames() []string {
	return []string{string(EvNewInvitation), string(EvAccepted), string(EvRejected),
		string(EvCancelled), string(EvTimeout), string(EvModified)}
}

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
	// Except, when set, is the connection that caused the event; it gets a
	// reply instead. The same user's other connections still get the event
	// so that they stop ringing.
	Except Origin
	// OnlineUserOnly marks events of invitations sent with onlineUserOnly:
	// they reach only connections that are live now and are never kept.
	OnlineUserOnly bool
	// Once, when set, makes each user receive the event at most once however
	// often it is published: an announcement is published again when its
	// first try failed part-way, or its instance died before finishing.
	Once string
	// Presence asks Publish for each user's foreground devices, which
	// decide who is pushed for a ring.
	Presence bool
	// ListedInStep marks a timeout's event readied before its step: which
	// invitees timed out (InviteeList, and To beside the inviter) is known
	// only once the step applies it, so the store's script lists them. For
	// EventPreparer.Prepare only; Publish refuses it.
	ListedInStep bool
}

// Publisher delivers events to users' live connections, on every instance,
// and keeps them for resume. Publish must not block on slow receivers: the
// connection layer disconnects a receiver that cannot keep up rather than
// slow the engine down. When ev.Presence it reports, by index of ev.To, the
// devices of each user with a foreground connection anywhere, so that the
// engine can push the others. An error means the event may have reached
// only some of its users: the engine publishes it again, and ev.Once keeps
// anyone from getting it twice.
type Publisher interface {
	Publish(ctx context.Context, ev Event) (foreground [][]string, err error)
}

// A PreparedEvent is an event its Publisher readied for a store to publish
// in the step that makes its change (PublishingStore), so that the change
// and its event take one round trip. Payload is the publisher's work in
// the store's terms (for Redis, a redisscript.Part), opaque to the
// engine; Done turns the store's report of that work into what Publish
// returns (live: the audience heard it only live, an invitation sent with
// onlineUserOnly).
type PreparedEvent struct {
	Payload any
	Done    func(report []any, live bool) (foreground [][]string, err error)
	// Complete, set by the engine, lets the store forget the change's
	// outbox entry in the step once the event is published: nothing else
	// (no offline push) remains to be done for it.
	Complete bool
}

// EventPreparer is a Publisher that can ready events for a PublishingStore.
type EventPreparer interface {
	// Prepare readies ev. ok is false when it cannot (the backend keeps
	// the event's keys apart from the store's): the engine then publishes
	// ev after the change. An ev without To is for the invitation's
	// inviter and invitees, whom the store reads in the step; they hear it
	// only live when the invitation was sent with onlineUserOnly.
	Prepare(ev Event) (p PreparedEvent, ok bool, err error)
}
