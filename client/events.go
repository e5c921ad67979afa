package client

import (
	"fmt"
	"time"
)

// Event names, the value of Frame.Event.
const (
	EventReceiveNewInvitation = "onReceiveNewInvitation"
	EventInviteeAccepted      = "onInviteeAccepted"
	EventInviteeRejected      = "onInviteeRejected"
	EventInvitationCancelled  = "onInvitationCancelled"
	EventInvitationTimeout    = "onInvitationTimeout"
	EventInvitationModified   = "onInvitationModified"
)

// The six events of api/README.md §6, named after V2TIMSignalingListener's
// callbacks. EventID is "" for the events of onlineUserOnly invitations,
// which the server does not keep.

// ReceiveNewInvitationEvent: the user is invited (onReceiveNewInvitation),
// live, or on login for an invitation still waiting for it.
type ReceiveNewInvitationEvent struct {
	InviteID    string
	Inviter     string
	GroupID     string // "" for a one-to-one invitation
	InviteeList []string
	Data        string
	Timeout     time.Duration // 0: no deadline
	EventID     string
}

// InviteeAcceptedEvent: an invitee accepted (onInviteeAccepted).
type InviteeAcceptedEvent struct {
	InviteID, Invitee, Data, EventID string
}

// InviteeRejectedEvent: an invitee rejected (onInviteeRejected).
type InviteeRejectedEvent struct {
	InviteID, Invitee, Data, EventID string
}

// InvitationCancelledEvent: the inviter cancelled (onInvitationCancelled).
type InvitationCancelledEvent struct {
	InviteID, Inviter, Data, EventID string
}

// InvitationTimeoutEvent: the deadline passed (onInvitationTimeout).
type InvitationTimeoutEvent struct {
	InviteID    string
	InviteeList []string // those that timed out
	EventID     string
}

// InvitationModifiedEvent: the inviter replaced the data
// (onInvitationModified).
type InvitationModifiedEvent struct {
	InviteID, Data, EventID string
}

// Listener holds the callbacks of a Client; nil ones are skipped. They are
// called one at a time, in the order the server sent the events, on a
// goroutine of the Client's, and may call the Client's ops (Accept in
// OnReceiveNewInvitation, say), but not Logout or Close, which wait for
// the callbacks to return. While one runs, later events wait (in memory,
// without slowing the connection down).
type Listener struct {
	OnReceiveNewInvitation func(ReceiveNewInvitationEvent)
	OnInviteeAccepted      func(InviteeAcceptedEvent)
	OnInviteeRejected      func(InviteeRejectedEvent)
	OnInvitationCancelled  func(InvitationCancelledEvent)
	OnInvitationTimeout    func(InvitationTimeoutEvent)
	OnInvitationModified   func(InvitationModifiedEvent)
	// OnConnectionStateChanged is told of every change of State, in order
	// with the events: a replay after a reconnect comes after the
	// StateConnected change that announces it.
	OnConnectionStateChanged func(StateChange)
}

// State is where a Client's session stands.
type State int

const (
	// StateDisconnected: no session (before Login, after Logout, or after
	// a re-login the server refused for good).
	StateDisconnected State = iota
	// StateConnecting: Login is opening the first connection.
	StateConnecting
	// StateConnected: logged in; requests go out at once.
	StateConnected
	// StateReconnecting: the connection was lost; the Client waits
	// (StateChange.RetryIn) and logs in again with the last eventID.
	StateReconnecting
)

func (s State) String() string {
	switch s {
	case StateDisconnected:
		return "disconnected"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// StateChange tells a Listener what happened to the connection.
type StateChange struct {
	State State
	// Err says why: the connection's end when reconnecting, the failed
	// attempt's error on later attempts, the refused login when a session
	// ended by itself (an *Error, 700xx for a userSig to replace). Nil on
	// StateConnected and after Logout.
	Err error
	// CloseCode is the WebSocket close status the server ended the
	// connection with (1012: the instance restarts; 1008: policy, such as
	// too slow or over the rate limit), -1 when there was none (a dropped
	// connection, a failed dial). CloseReason is the server's text.
	CloseCode   int
	CloseReason string
	// Attempt numbers the reconnect attempts since the last login (1 for
	// the first), and RetryIn is the wait before it.
	Attempt int
	RetryIn time.Duration
	// Resumed: this StateConnected came from a login with lastEventID.
	// Recovered: the server replays everything missed since then, which
	// follows. A resumed but not recovered session (the events after the
	// last one processed are no longer kept) is rung again for the
	// invitations still waiting for the user instead; refresh what you
	// show with GetSignalingInfo.
	Resumed, Recovered bool
}

// dispatch hands an event frame to the listener's callback for its kind.
func (l *Listener) dispatch(f *Frame) {
	switch f.Event {
	case EventReceiveNewInvitation:
		if l.OnReceiveNewInvitation != nil {
			l.OnReceiveNewInvitation(ReceiveNewInvitationEvent{
				InviteID: f.InviteID, Inviter: f.Inviter, GroupID: f.GroupID, InviteeList: f.InviteeList,
				Data: f.EventData(), Timeout: time.Duration(f.Timeout) * time.Second, EventID: f.EventID,
			})
		}
	case EventInviteeAccepted:
		if l.OnInviteeAccepted != nil {
			l.OnInviteeAccepted(InviteeAcceptedEvent{InviteID: f.InviteID, Invitee: f.Invitee, Data: f.EventData(), EventID: f.EventID})
		}
	case EventInviteeRejected:
		if l.OnInviteeRejected != nil {
			l.OnInviteeRejected(InviteeRejectedEvent{InviteID: f.InviteID, Invitee: f.Invitee, Data: f.EventData(), EventID: f.EventID})
		}
	case EventInvitationCancelled:
		if l.OnInvitationCancelled != nil {
			l.OnInvitationCancelled(InvitationCancelledEvent{InviteID: f.InviteID, Inviter: f.Inviter, Data: f.EventData(), EventID: f.EventID})
		}
	case EventInvitationTimeout:
		if l.OnInvitationTimeout != nil {
			l.OnInvitationTimeout(InvitationTimeoutEvent{InviteID: f.InviteID, InviteeList: f.InviteeList, EventID: f.EventID})
		}
	case EventInvitationModified:
		if l.OnInvitationModified != nil {
			l.OnInvitationModified(InvitationModifiedEvent{InviteID: f.InviteID, Data: f.EventData(), EventID: f.EventID})
		}
	}
}
