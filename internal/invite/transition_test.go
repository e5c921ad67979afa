package invite

import (
	"errors"
	"maps"
	"slices"
	"testing"
)

// fixture: alice invited bob and carol at t=1000 with a 30 s timeout; carol
// has already accepted.
func fixture() *Invitation {
	return &Invitation{
		ID: "i1", GroupID: "g", Inviter: "alice", Invitees: []string{"bob", "carol", "dave"},
		Data: "d0", Timeout: 30, CreatedAt: 1000, Deadline: 31_000, Expires: 91_000,
		States: map[string]State{"bob": StatePending, "carol": StateAccepted, "dave": StatePending},
	}
}

func ended() *Invitation {
	inv := fixture()
	inv.States = map[string]State{"bob": StateRejected, "carol": StateAccepted, "dave": StateCancelled}
	inv.EndedAt, inv.Expires = 5000, 65_000
	return inv
}

func TestApply(t *testing.T) {
	const ret = 60_000
	tests := []struct {
		name    string
		inv     *Invitation
		ch      Change
		wantErr error
		states  map[string]State // expected states after, when no error
		changed []string
		ended   bool
		data    string
	}{
		{name: "invitee accepts", inv: fixture(), ch: Change{Action: ActAccept, Actor: "bob", Now: 2000},
			states: map[string]State{"bob": StateAccepted, "carol": StateAccepted, "dave": StatePending}, changed: []string{"bob"}, data: "d0"},
		{name: "invitee rejects", inv: fixture(), ch: Change{Action: ActReject, Actor: "dave", Now: 2000},
			states: map[string]State{"bob": StatePending, "carol": StateAccepted, "dave": StateRejected}, changed: []string{"dave"}, data: "d0"},
		{name: "invitee answers twice", inv: fixture(), ch: Change{Action: ActReject, Actor: "carol", Now: 2000}, wantErr: ErrEnded},
		{name: "inviter cannot accept", inv: fixture(), ch: Change{Action: ActAccept, Actor: "alice", Now: 2000}, wantErr: ErrForbidden},
		{name: "stranger cannot accept", inv: fixture(), ch: Change{Action: ActAccept, Actor: "eve", Now: 2000}, wantErr: ErrForbidden},
		{name: "stranger on ended is still forbidden", inv: ended(), ch: Change{Action: ActReject, Actor: "eve", Now: 6000}, wantErr: ErrForbidden},
		{name: "accept at the deadline", inv: fixture(), ch: Change{Action: ActAccept, Actor: "bob", Now: 31_000}, wantErr: ErrEnded},
		{name: "accept just before the deadline", inv: fixture(), ch: Change{Action: ActAccept, Actor: "bob", Now: 30_999},
			states: map[string]State{"bob": StateAccepted, "carol": StateAccepted, "dave": StatePending}, changed: []string{"bob"}, data: "d0"},
		{name: "inviter cancels", inv: fixture(), ch: Change{Action: ActCancel, Actor: "alice", Now: 2000, Retention: ret},
			states: map[string]State{"bob": StateCancelled, "carol": StateAccepted, "dave": StateCancelled}, changed: []string{"bob", "dave"}, ended: true, data: "d0"},
		{name: "invitee cannot cancel", inv: fixture(), ch: Change{Action: ActCancel, Actor: "bob", Now: 2000}, wantErr: ErrForbidden},
		{name: "cancel an ended invitation", inv: ended(), ch: Change{Action: ActCancel, Actor: "alice", Now: 6000}, wantErr: ErrEnded},
		{name: "cancel after the deadline", inv: fixture(), ch: Change{Action: ActCancel, Actor: "alice", Now: 40_000}, wantErr: ErrEnded},
		{name: "inviter modifies", inv: fixture(), ch: Change{Action: ActModify, Actor: "alice", Data: "d1", Now: 2000},
			states: fixture().States, data: "d1"},
		{name: "invitee cannot modify", inv: fixture(), ch: Change{Action: ActModify, Actor: "bob", Data: "x", Now: 2000}, wantErr: ErrForbidden},
		{name: "modify an ended invitation", inv: ended(), ch: Change{Action: ActModify, Actor: "alice", Data: "x", Now: 6000}, wantErr: ErrEnded},
		{name: "timeout at the deadline", inv: fixture(), ch: Change{Action: ActTimeout, Now: 31_000, Retention: ret},
			states: map[string]State{"bob": StateTimeout, "carol": StateAccepted, "dave": StateTimeout}, changed: []string{"bob", "dave"}, ended: true, data: "d0"},
		{name: "timeout before the deadline", inv: fixture(), ch: Change{Action: ActTimeout, Now: 30_999}, wantErr: ErrNotDue},
		{name: "timeout of an ended invitation", inv: ended(), ch: Change{Action: ActTimeout, Now: 31_000}, wantErr: ErrEnded},
		{name: "unknown", inv: nil, ch: Change{Action: ActAccept, Actor: "bob", Now: 2000}, wantErr: ErrNotFound},
		{name: "ended past its retention", inv: ended(), ch: Change{Action: ActAccept, Actor: "bob", Now: 65_000}, wantErr: ErrNotFound},
		{name: "unknown action", inv: fixture(), ch: Change{Action: "dance", Actor: "bob", Now: 2000}, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before *Invitation
			if tt.inv != nil {
				before = tt.inv.Clone()
			}
			out, err := Apply(tt.inv, tt.ch)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if !maps.Equal(out.Invitation.States, tt.states) || !slices.Equal(out.Changed, tt.changed) || out.Ended != tt.ended || out.Invitation.Data != tt.data {
				t.Fatalf("got states %v changed %v ended %v data %q; want %v %v %v %q",
					out.Invitation.States, out.Changed, out.Ended, out.Invitation.Data, tt.states, tt.changed, tt.ended, tt.data)
			}
			if tt.ended != (out.Invitation.EndedAt == tt.ch.Now) || tt.ended && out.Invitation.Expires != tt.ch.Now+ret {
				t.Fatalf("EndedAt %d Expires %d after ended=%v at %d", out.Invitation.EndedAt, out.Invitation.Expires, tt.ended, tt.ch.Now)
			}
			if !maps.Equal(tt.inv.States, before.States) || tt.inv.Data != before.Data {
				t.Fatal("Apply modified its input")
			}
		})
	}
}
