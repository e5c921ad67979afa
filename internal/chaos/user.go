package chaos

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// user places calls from its devices while the load lasts. What its
// devices do when rung is theirs (device.onFrame); the cancels and
// modifications of its own calls are scheduled on the device that acts.
type user struct {
	name    string
	devices []*device
	group   string   // its group
	mates   []string // the other members of its group
	others  []string // every other user
	env     *env
	rng     *rand.Rand // owned by drive
	calls   int        // owned by drive
}

// drive places a call every CallEveryMin–CallEveryMax until ctx ends, the
// first one after a random part of that, so that users do not call in
// step.
func (u *user) drive(ctx context.Context) {
	cfg := u.env.cfg
	wait := time.Duration(u.rng.Int64N(int64(cfg.CallEveryMax)))
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		u.call(ctx)
		wait = cfg.CallEveryMin + time.Duration(u.rng.Int64N(int64(cfg.CallEveryMax-cfg.CallEveryMin)+1))
	}
}

// tag is the data of a call: unique, so that an invitation can be told by
// its data even when its invite reply was lost.
type tag struct {
	Call string `json:"call"`
	Mod  int    `json:"mod,omitempty"` // the how-manieth modification
}

func (t tag) String() string {
	b, _ := json.Marshal(t)
	return string(b)
}

// call places one call from a random device that is online: a one-to-one
// invite, or an inviteInGroup to 2–3 members of the user's group, and
// sometimes schedules its cancel or a modification.
func (u *user) call(ctx context.Context) {
	d := u.pickOnline()
	if d == nil {
		return // every device is between two connections: the app waits
	}
	u.calls++
	id := tag{Call: u.name + "#" + strconv.Itoa(u.calls)}
	timeout := minTimeout + u.rng.IntN(maxTimeout-minTimeout+1)
	rec := RequestRecord{Op: protocol.OpInvite}
	params := map[string]any{"data": id.String(), "timeout": timeout}
	if u.rng.Float64() < groupShare && len(u.mates) >= 2 {
		n := min(2+u.rng.IntN(2), len(u.mates))
		perm := u.rng.Perm(len(u.mates))
		for _, i := range perm[:n] {
			rec.Invitees = append(rec.Invitees, u.mates[i])
		}
		rec.Op = protocol.OpInviteInGroup
		params["groupID"], params["inviteeList"] = u.group, rec.Invitees
	} else {
		rec.Invitees = []string{u.others[u.rng.IntN(len(u.others))]}
		params["invitee"] = rec.Invitees[0]
	}
	// The request is the device's: the end of the load does not cut it
	// short, so that its reply is not lost for that reason.
	f := d.send(d.actCtx, rec, params)
	if f == nil || f.Code != 0 {
		return
	}
	var inviteID string
	if err := json.Unmarshal(f.Data, &inviteID); err != nil || inviteID == "" {
		return
	}
	delay := func() time.Duration { return time.Duration(500+u.rng.IntN(2500)) * time.Millisecond }
	if u.rng.Float64() < cancelShare {
		by := u.devices[u.rng.IntN(len(u.devices))]
		by.schedule(delay(), func(ctx context.Context) {
			by.send(ctx, RequestRecord{Op: protocol.OpCancel, InviteID: inviteID}, map[string]any{"inviteID": inviteID, "data": "cancel by " + by.id.String()})
		})
	}
	if u.rng.Float64() < modifyShare {
		by := u.devices[u.rng.IntN(len(u.devices))]
		data := tag{Call: id.Call, Mod: 1}.String()
		by.schedule(delay(), func(ctx context.Context) {
			by.send(ctx, RequestRecord{Op: protocol.OpModifyInvitation, InviteID: inviteID}, map[string]any{"inviteID": inviteID, "data": data})
		})
	}
}

// pickOnline returns a random online device of the user, nil if none is.
func (u *user) pickOnline() *device {
	for _, i := range u.rng.Perm(len(u.devices)) {
		if u.devices[i].online() {
			return u.devices[i]
		}
	}
	return nil
}
