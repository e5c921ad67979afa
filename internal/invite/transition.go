package invite

import "errors"

// Action is a state change requested on an existing invitation.
type Action string

// The actions. Every one of them changes an invitation at most once: a
// repeated or racing action finds the invitee no longer pending and fails
// with ErrEnded.
const (
	ActAccept  Action = "accept"
	ActReject  Action = "reject"
	ActCancel  Action = "cancel"
	ActModify  Action = "modify"
	ActTimeout Action = "timeout"
	// ActInvite names the creation of an invitation in its outbox
	// (Announcement.Action); it is not a change Apply accepts.
	ActInvite Action = "invite"
)

// Change is one requested transition: who asks for what, and when.
type Change struct {
	Action Action
	Actor  string // the user asking; "" for ActTimeout, which the server fires
	Data   string // carried by accept, reject, cancel and modify
	Now    int64  // ms, on the server's clock
	// Retention is how long (ms) an invitation stays readable after it ends;
	// the transition that ends it sets Expires = Now + Retention.
	Retention int64
	// Token, when set, records the change in Invitation.Unannounced until
	// Store.Announced, so that it is announced even if the instance that
	// made it dies first, or its announcement fails. AnnounceBy (ms) is
	// when another instance may take the announcement over; only stores
	// use it.
	Token      string
	AnnounceBy int64
	// Origin is the connection that asked for the change, recorded with it.
	Origin Origin
}

// Outcome is what a successful transition did.
type Outcome struct {
	Invitation *Invitation // the invitation after the change
	// Changed lists the invitees whose state this change set, in invitation
	// order: the actor for accept and reject, every pending invitee for cancel
	// and timeout, none for modify.
	Changed []string
	// Ended is true when this change ended the invitation.
	Ended bool
}

// ErrNotDue is returned for ActTimeout on an active invitation whose deadline
// has not been reached (a clock behind the claimer's, or no deadline at all).
// It is not a protocol error: the timeout loop simply leaves it.
var ErrNotDue = errors.New("deadline not reached")

// Dropped reports whether a store should treat inv as gone at now: past its
// maximum lifetime if it never ended, or past its retention if it did.
func Dropped(inv *Invitation, now int64) bool {
	return inv.Expires > 0 && now >= inv.Expires
}

// Apply is the transition function: given an invitation and a change it
// returns the invitation after the change, or the domain error that refuses
// it. It does not modify inv. Every store must behave exactly as Apply does;
// the Redis store's Lua script is a transcription of it, and the store
// contract suite holds both to the same table.
//
// The order of checks is the protocol's: unknown (ErrNotFound), then
// permission (ErrForbidden, whether or not the invitation has ended), then
// state (ErrEnded). An invitation whose deadline has passed counts as ended
// for every caller, even before the timeout loop has fired it, so that an
// accept at the deadline and the timeout cannot both win.
func Apply(inv *Invitation, ch Change) (Outcome, error) {
	if inv == nil || Dropped(inv, ch.Now) {
		return Outcome{}, ErrNotFound
	}
	if _, done := inv.Unannounced[ch.Token]; done && ch.Token != "" {
		// Applied already, by this very change: a store client that lost
		// the answer tries again, and must not be told it failed.
		return reapplied(inv, ch), nil
	}
	isInviter := ch.Actor == inv.Inviter
	isInvitee := inv.IsInvitee(ch.Actor)
	switch ch.Action {
	case ActAccept, ActReject:
		if !isInvitee {
			return Outcome{}, ErrForbidden
		}
	case ActCancel, ActModify:
		if !isInviter {
			return Outcome{}, ErrForbidden
		}
	case ActTimeout:
		if !inv.Active() {
			return Outcome{}, ErrEnded
		}
		if inv.Deadline == 0 || ch.Now < inv.Deadline {
			return Outcome{}, ErrNotDue
		}
	default:
		return Outcome{}, ErrInvalid
	}
	if ch.Action != ActTimeout && (!inv.Active() || pastDeadline(inv, ch.Now)) {
		return Outcome{}, ErrEnded
	}

	next := inv.Clone()
	var out Outcome
	switch ch.Action {
	case ActAccept, ActReject:
		if next.States[ch.Actor] != StatePending {
			return Outcome{}, ErrEnded
		}
		next.States[ch.Actor] = StateAccepted
		if ch.Action == ActReject {
			next.States[ch.Actor] = StateRejected
		}
		out.Changed = []string{ch.Actor}
	case ActCancel:
		out.Changed = setPending(next, StateCancelled)
	case ActTimeout:
		out.Changed = setPending(next, StateTimeout)
	case ActModify:
		next.Data = ch.Data
	}
	if ch.Token != "" {
		if next.Unannounced == nil {
			next.Unannounced = make(map[string]Announcement, 1)
		}
		next.Seq++
		next.Unannounced[ch.Token] = Announcement{Seq: next.Seq, Action: ch.Action, Actor: ch.Actor, Data: ch.Data, Origin: ch.Origin}
	}
	if !anyPending(next) {
		next.EndedAt = ch.Now
		next.Expires = ch.Now + ch.Retention
		out.Ended = true
	}
	out.Invitation = next
	return out, nil
}

// reapplied is the outcome of a change found applied already: the
// invitation as it is, the invitees in the state the change sets (for
// cancel and timeout, those it set, unless a later change took others
// there: none can), and ended if it ended at the change's time.
func reapplied(inv *Invitation, ch Change) Outcome {
	out := Outcome{Invitation: inv.Clone(), Ended: !inv.Active() && inv.EndedAt == ch.Now}
	var to State
	switch ch.Action {
	case ActAccept:
		to = StateAccepted
	case ActReject:
		to = StateRejected
	case ActCancel:
		to = StateCancelled
	case ActTimeout:
		to = StateTimeout
	default:
		return out
	}
	for _, u := range inv.Invitees {
		if inv.States[u] == to && (ch.Action == ActCancel || ch.Action == ActTimeout || u == ch.Actor) {
			out.Changed = append(out.Changed, u)
		}
	}
	return out
}

func pastDeadline(inv *Invitation, now int64) bool {
	return inv.Deadline > 0 && now >= inv.Deadline
}

// setPending moves every pending invitee to s and returns them in order.
func setPending(inv *Invitation, s State) []string {
	var changed []string
	for _, u := range inv.Invitees {
		if inv.States[u] == StatePending {
			inv.States[u] = s
			changed = append(changed, u)
		}
	}
	return changed
}

func anyPending(inv *Invitation) bool {
	for _, s := range inv.States {
		if s == StatePending {
			return true
		}
	}
	return false
}
