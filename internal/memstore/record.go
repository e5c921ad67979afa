package memstore

import (
	"maps"
	"slices"

	"github.com/signald/signald/internal/invite"
)

// record is an invitation as the memory store keeps it: the fields of
// invite.Invitation, with each invitee's state in one byte by the
// invitee's index instead of a map (a one-entry Go map costs some 300
// bytes, more than the rest of a small invitation). Records never leave
// the store: every method hands out an *invite.Invitation of its own.
type record struct {
	id, groupID, inviter, data string
	invitees                   []string
	states                     []uint8 // stateCodes index, by index of invitees
	timeout                    int
	onlineUserOnly             bool
	createdAt, deadline        int64
	expires, endedAt           int64
	push                       *invite.PushInfo // nil when empty, as it mostly is
	seq                        int64
	unannounced                map[string]invite.Announcement // nil when empty
}

// stateCodes are the states a record's bytes stand for.
var stateCodes = [...]invite.State{invite.StatePending, invite.StateAccepted, invite.StateRejected, invite.StateTimeout, invite.StateCancelled}

func stateCode(s invite.State) uint8 {
	for i, c := range stateCodes {
		if c == s {
			return uint8(i)
		}
	}
	panic("memstore: unknown invitee state " + string(s))
}

// newRecord copies inv into a record.
func newRecord(inv *invite.Invitation) *record {
	r := &record{
		id: inv.ID, groupID: inv.GroupID, inviter: inv.Inviter, data: inv.Data,
		invitees: slices.Clone(inv.Invitees), states: make([]uint8, len(inv.Invitees)),
		timeout: inv.Timeout, onlineUserOnly: inv.OnlineUserOnly,
		createdAt: inv.CreatedAt, deadline: inv.Deadline, expires: inv.Expires, endedAt: inv.EndedAt,
		seq: inv.Seq,
	}
	if inv.Push != (invite.PushInfo{}) {
		p := inv.Push
		r.push = &p
	}
	for i, u := range inv.Invitees {
		r.states[i] = stateCode(inv.States[u])
	}
	if len(inv.Unannounced) > 0 {
		r.unannounced = maps.Clone(inv.Unannounced)
	}
	return r
}

// invitation returns a copy of r that shares nothing with it.
func (r *record) invitation() *invite.Invitation {
	inv := &invite.Invitation{
		ID: r.id, GroupID: r.groupID, Inviter: r.inviter, Data: r.data,
		Invitees: slices.Clone(r.invitees), States: make(map[string]invite.State, len(r.invitees)),
		Timeout: r.timeout, OnlineUserOnly: r.onlineUserOnly,
		CreatedAt: r.createdAt, Deadline: r.deadline, Expires: r.expires, EndedAt: r.endedAt,
		Seq: r.seq,
	}
	if r.push != nil {
		inv.Push = *r.push
	}
	for i, u := range r.invitees {
		inv.States[u] = stateCodes[r.states[i]]
	}
	if len(r.unannounced) > 0 {
		inv.Unannounced = maps.Clone(r.unannounced)
	}
	return inv
}

// state is user's state in r, "" when user is not an invitee.
func (r *record) state(user string) invite.State {
	if i := slices.Index(r.invitees, user); i >= 0 {
		return stateCodes[r.states[i]]
	}
	return ""
}

// dropped is invite.Dropped for a record.
func (r *record) dropped(now int64) bool { return r.expires > 0 && now >= r.expires }

// active is invite.Invitation.Active for a record.
func (r *record) active() bool { return r.endedAt == 0 }
