package server

import (
	"context"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/signald/signald/internal/bus"
	"github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/protocol"
)

// Publisher turns engine events into frames and hands them to the bus,
// which keeps them and delivers them on every instance. It is the engine's
// invite.Publisher.
type Publisher struct {
	bus  bus.Bus
	kept prometheus.Counter
}

// NewPublisher returns a Publisher onto b and registers its metric.
func NewPublisher(b bus.Bus, reg prometheus.Registerer) (*Publisher, error) {
	p := &Publisher{bus: b, kept: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "signald_events_kept_total",
		Help: "Events kept for resume, one per recipient (an announcement published again after a failure counts again; the bus delivers it once).",
	})}
	if err := reg.Register(p.kept); err != nil {
		return nil, err
	}
	return p, nil
}

// Publish implements invite.Publisher. The frame is encoded once; the bus
// adds each user's eventID. A bus error is the engine's to handle: it
// publishes again, and ev.Once keeps anyone from getting the event twice.
func (p *Publisher) Publish(ctx context.Context, ev invite.Event) ([][]string, error) {
	if ev.ListedInStep {
		return nil, bus.ErrListed
	}
	env := envelope(ev)
	reach, err := p.bus.Publish(ctx, env)
	if err != nil {
		return nil, err
	}
	kept := 0
	if env.Keep {
		kept = len(env.Users)
	}
	return p.reached(ev, kept, reach), nil
}

// preparer is a bus that can ready an event for the store to publish in
// the step that makes its change (redisbus.Bus on a single server).
type preparer interface {
	PreparePublish(env bus.Envelope) (payload any, done func(replies []any) ([]bus.Reach, error), ok bool, err error)
}

// Prepare implements invite.EventPreparer when the bus can ready events;
// ok is false when it cannot.
func (p *Publisher) Prepare(ev invite.Event) (invite.PreparedEvent, bool, error) {
	bp, can := p.bus.(preparer)
	if !can {
		return invite.PreparedEvent{}, false, nil
	}
	env := envelope(ev)
	if ev.ListedInStep && env.Listed == nil {
		return invite.PreparedEvent{}, false, nil // a kind without a list: published after its step
	}
	payload, done, ok, err := bp.PreparePublish(env)
	if err != nil || !ok {
		return invite.PreparedEvent{}, false, err
	}
	return invite.PreparedEvent{Payload: payload, Done: func(replies []any, live bool) ([][]string, error) {
		reach, err := done(replies)
		if err != nil {
			return nil, err
		}
		kept := 0
		if env.Keep && !live {
			kept = len(reach) // a user each, the audience read in the step
		}
		return p.reached(ev, kept, reach), nil
	}}, true, nil
}

// reached counts kept events of ev, published, and returns what Publish
// returns for the bus's reach.
func (p *Publisher) reached(ev invite.Event, kept int, reach []bus.Reach) [][]string {
	p.kept.Add(float64(kept))
	if !ev.Presence {
		return nil
	}
	fg := make([][]string, len(reach))
	for i, r := range reach {
		fg[i] = r.Foreground
	}
	return fg
}

// envelope is ev as the bus takes it, its frame encoded once.
func envelope(ev invite.Event) bus.Envelope {
	env := bus.Envelope{
		Users:    ev.To,
		Frame:    encodeEvent(ev),
		Keep:     !ev.OnlineUserOnly,
		Except:   bus.Origin{Node: ev.Except.Node, Session: ev.Except.Session},
		Kind:     string(ev.Kind),
		Once:     ev.Once,
		Presence: ev.Presence,
	}
	if ev.Kind == invite.EvNewInvitation {
		env.InviteID = ev.InviteID
	}
	if ev.ListedInStep {
		env.Users = nil
		env.Listed = listed(ev)
		if env.Listed != nil {
			env.Frame = []byte(env.Listed.Prefix + env.Listed.Suffix)
		}
	}
	return env
}

// listed splits ev's frame where its list of invitees goes, the step to
// write them: the frame encoded listing one user, NUL (which no ID holds),
// cut around that user's JSON string. Nil when the frame has no such list.
func listed(ev invite.Event) *bus.Listed {
	ev.InviteeList = []string{"\x00"}
	frame := string(encodeEvent(ev))
	prefix, suffix, ok := strings.Cut(frame, `"\u0000"`)
	if !ok {
		return nil
	}
	return &bus.Listed{Prefix: prefix, Suffix: suffix}
}

// newInvitationEvent is the onReceiveNewInvitation of inv, with its current
// data, as rung on a login.
func newInvitationEvent(inv *invite.Invitation) invite.Event {
	return invite.Event{
		Kind: invite.EvNewInvitation, InviteID: inv.ID, Inviter: inv.Inviter, GroupID: inv.GroupID,
		InviteeList: inv.Invitees, Data: inv.Data, Timeout: inv.Timeout,
	}
}

// encodeEvent writes the fields of ev's kind, and only those, as api/README.md
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
