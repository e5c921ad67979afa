package server

import (
	"context"

	"github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/protocol"
	"github.com/signald/signald/internal/push"
)

// Publisher turns engine events into frames and hands them to the hub. It
// is the engine's invite.Publisher on a single instance.
type Publisher struct {
	hub *push.Hub
}

// NewPublisher returns a Publisher delivering through hub.
func NewPublisher(hub *push.Hub) *Publisher { return &Publisher{hub: hub} }

// Publish implements invite.Publisher. The frame is encoded once and shared
// by every receiving connection.
func (p *Publisher) Publish(_ context.Context, ev invite.Event) {
	frame := encodeEvent(ev)
	for _, u := range ev.To {
		p.hub.Deliver(u, frame, ev.ExceptSession, string(ev.Kind))
	}
}

// newInvitationEvent is the onReceiveNewInvitation of inv, with its current
// data, as rung on a login.
func newInvitationEvent(inv *invite.Invitation) invite.Event {
	return invite.Event{
		Kind: invite.EvNewInvitation, InviteID: inv.ID, Inviter: inv.Inviter, GroupID: inv.GroupID,
		InviteeList: inv.Invitees, Data: inv.Data, Timeout: inv.Timeout,
	}
}

// encodeEvent writes the fields of ev's kind, and only those, as PROTOCOL.md
// §6 lists them.
func encodeEvent(ev invite.Event) []byte {
	f := protocol.Event{Event: string(ev.Kind), InviteID: ev.InviteID}
	switch ev.Kind {
	case invite.EvNewInvitation:
		f.Inviter, f.GroupID, f.InviteeList, f.Data, f.Timeout = &ev.Inviter, &ev.GroupID, ev.InviteeList, &ev.Data, &ev.Timeout
	case invite.EvAccepted, invite.EvRejected:
		f.Invitee, f.Data = &ev.Invitee, &ev.Data
	case invite.EvCancelled:
		f.Inviter, f.Data = &ev.Inviter, &ev.Data
	case invite.EvTimeout:
		f.InviteeList = ev.InviteeList
	case invite.EvModified:
		f.Data = &ev.Data
	}
	return f.Encode()
}
