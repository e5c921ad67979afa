package bench

import (
	"fmt"
	"slices"
	"time"
)

// Timeout invitations (-timeout-pct) are sent with timeout 1 and never
// answered, so each lives about a second. Run through the pairs' one-at-a-
// time setups they would idle a pair for that second and starve the
// measured setups; instead they go the other way, from a pair's callee to
// its caller, and are tracked in a small per-pair list beside the pair's
// setup. Their frames cannot be mistaken for the setup's: the delivery
// arrives on the caller's connection (which never gets one otherwise), the
// invite reply has its own request id, and the timeout events name an
// inviteID that is not the setup's.

// maxTimeoutsPerPair bounds a pair's open timeout invitations, which keeps
// every lookup a scan of a short slice (no map).
const maxTimeoutsPerPair = 64

// timeoutInvite is one open timeout invitation, kept in p.timeouts.
type timeoutInvite struct {
	req      int64 // request id on the callee's connection
	inviteID string
	start    time.Time
	pending  uint8 // need* bits: the invitee is the caller, the inviter the callee
	measured bool
}

// startTimeout sends the next timeout invitation on the next live pair.
// It runs on the driver goroutine and never waits.
func (r *callsRun) startTimeout() {
	for range len(r.pairs) {
		p := r.pairs[r.nextTimeoutPair%len(r.pairs)]
		r.nextTimeoutPair++
		now := time.Now()
		p.mu.Lock()
		if p.dead {
			p.mu.Unlock()
			continue
		}
		if len(p.timeouts) >= maxTimeoutsPerPair {
			p.mu.Unlock()
			r.timeoutsSkipped.Add(1)
			return
		}
		id := p.callee.NextID()
		p.timeouts = append(p.timeouts, timeoutInvite{
			req: id, start: now, pending: kindNeeds[kindTimeout], measured: r.since(now) >= r.from.Load(),
		})
		r.activeTimeouts.Add(1)
		p.mu.Unlock()
		r.started[kindTimeout].Add(1)
		if err := p.callee.SendInvite(id, p.caller.User, r.data, 1); err != nil {
			p.mu.Lock()
			r.dropTimeout(p, func(t *timeoutInvite) bool { return t.req == id }, "invite(timeout 1): write failed: "+lastPart(err.Error()))
			p.mu.Unlock()
		}
		return
	}
}

// timeoutFrame matches a frame to one of p's timeout invitations, with
// p.mu held; onCaller says which connection of the pair got it (the caller
// is the invitee here). It returns false when none matches.
func (r *callsRun) timeoutFrame(p *pair, onCaller bool, f *Frame, now time.Time) bool {
	var i int
	switch k := f.Kind(); {
	case !onCaller && k == EvNone: // the invite reply, at the inviting callee
		i = slices.IndexFunc(p.timeouts, func(t timeoutInvite) bool { return t.req == f.ID })
		if i < 0 {
			return false
		}
		t := &p.timeouts[i]
		t.req = 0
		if f.Code != 0 {
			r.removeTimeout(p, i, fmt.Sprintf("invite(timeout 1): code %d", f.Code))
			return true
		}
		if id := f.DataString(); t.inviteID == "" {
			t.inviteID = id
		} else if t.inviteID != id {
			r.removeTimeout(p, i, "invite reply and onReceiveNewInvitation name different inviteIDs")
			return true
		}
		t.pending &^= needInviteReply
	case onCaller && k == EvNewInvitation:
		// By inviteID when the reply came first; else the oldest invitation
		// not yet delivered (the server keeps one sender's invitations to
		// one receiver in order).
		i = slices.IndexFunc(p.timeouts, func(t timeoutInvite) bool {
			return t.pending&needDelivery != 0 && t.inviteID == string(f.InviteID)
		})
		if i < 0 {
			i = slices.IndexFunc(p.timeouts, func(t timeoutInvite) bool { return t.pending&needDelivery != 0 && t.inviteID == "" })
		}
		if i < 0 {
			return false
		}
		t := &p.timeouts[i]
		if t.inviteID == "" {
			t.inviteID = string(f.InviteID)
		}
		if t.measured {
			r.delivery.Record(now.Sub(t.start))
		}
		r.countDelivery(now)
		t.pending &^= needDelivery
	case k == EvTimeout:
		i = slices.IndexFunc(p.timeouts, func(t timeoutInvite) bool { return t.inviteID != "" && t.inviteID == string(f.InviteID) })
		if i < 0 {
			return false
		}
		t := &p.timeouts[i]
		bit := needCalleeEvent // the invitee (the pair's caller) timed out
		if !onCaller {
			bit = needCallerEvent // the inviter (the pair's callee) learns it
		}
		if t.pending&bit == 0 {
			return false
		}
		if bit == needCallerEvent {
			r.timeoutsToCaller.Add(1)
			if t.measured {
				r.byKind[kindTimeout].Record(now.Sub(t.start))
				r.lateness.Record(max(now.Sub(t.start)-time.Second, 0))
			}
		}
		t.pending &^= bit
	default:
		return false
	}
	if p.timeouts[i].pending == 0 {
		p.timeouts = slices.Delete(p.timeouts, i, i+1)
		r.activeTimeouts.Add(-1)
		r.countCompletion(kindTimeout, now)
	}
	return true
}

// removeTimeout drops p.timeouts[i] as failed, with p.mu held.
func (r *callsRun) removeTimeout(p *pair, i int, reason string) {
	r.errs.Add(reason)
	p.timeouts = slices.Delete(p.timeouts, i, i+1)
	r.activeTimeouts.Add(-1)
}

// dropTimeout removes the first timeout invitation match accepts, as
// failed, with p.mu held.
func (r *callsRun) dropTimeout(p *pair, match func(*timeoutInvite) bool, reason string) {
	for i := range p.timeouts {
		if match(&p.timeouts[i]) {
			r.removeTimeout(p, i, reason)
			return
		}
	}
}

// expireTimeouts fails timeout invitations still open a second plus
// -op-timeout after they were sent, with p.mu held.
func (r *callsRun) expireTimeouts(p *pair, now time.Time) {
	limit := time.Second + r.cfg.OpTimeout
	for i := 0; i < len(p.timeouts); {
		t := p.timeouts[i]
		if now.Sub(t.start) <= limit {
			i++
			continue
		}
		r.lostEvents.Add(owedEvents(t.pending, kindTimeout))
		r.removeTimeout(p, i, "no "+missing(t.pending, kindTimeout)+" within a second plus -op-timeout")
	}
}
