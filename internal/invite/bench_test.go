package invite_test

import (
	"context"
	"testing"

	"github.com/signald/signald/internal/invite"
)

// BenchmarkApply is the pure transition function alone: an accept.
func BenchmarkApply(b *testing.B) {
	inv := &invite.Invitation{ID: "i", Inviter: "alice", Invitees: []string{"bob"}, CreatedAt: 1, Deadline: 30_001, Expires: 90_001,
		States: map[string]invite.State{"bob": invite.StatePending}}
	ch := invite.Change{Action: invite.ActAccept, Actor: "bob", Now: 2, Retention: 60_000}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := invite.Apply(inv, ch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEngineInviteAccept is one call setup through the engine and the
// memory store, without the network: invite, then accept.
func BenchmarkEngineInviteAccept(b *testing.B) {
	t := &testing.T{}
	f := newEngine(t)
	f.rec.events = nil
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		id, err := f.e.Invite(ctx, alice, invite.InviteRequest{Invitees: []string{"bob"}, Data: "{}", Timeout: 30})
		if err != nil {
			b.Fatal(err)
		}
		if err := f.e.Accept(ctx, bob, id, ""); err != nil {
			b.Fatal(err)
		}
		f.rec.mu.Lock()
		f.rec.events = f.rec.events[:0]
		f.rec.mu.Unlock()
	}
}
