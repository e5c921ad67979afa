package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// calibration is the size of the kept frames an invitation leaves, learnt
// from one invitation to an online user (the offline invitees of the
// scenario get the same frames, kept, but nobody sees them). The server
// counts a kept event as the bytes of its frame, eventID included, which
// is exactly what a connection receives; the bounds SIGNALD_EVENTS_KEPT_BYTES
// and SIGNALD_EVENTS_MAX_BYTES count the same bytes.
type calibration struct {
	invitee, inviter string      // the users of the calibration invitations
	ring             map[int]int // data size → onReceiveNewInvitation frame, as the invitee got it
	timeoutInvitee   int         // onInvitationTimeout of a one-invitee invitation at the invitee; 0: unknown
	timeoutInviter   int         // the same at the inviter
	cancelInvitee    int         // onInvitationCancelled (no data) at the invitee; 0: unknown
}

// ringSize estimates the ring of an invitation with size bytes of data from
// inviter to invitee: the calibration's, with the other user names (the
// frame holds both once: inviter and inviteeList). 0 when not calibrated.
func (c *calibration) ringSize(size int, inviter, invitee string) int {
	n, ok := c.ring[size]
	if !ok || n == 0 {
		return 0
	}
	return n - len(c.inviter) - len(c.invitee) + len(inviter) + len(invitee)
}

// timeoutSizes estimates the onInvitationTimeout frames of a one-invitee
// invitation to invitee, at the invitee and at the inviter (the frame
// holds the inviteeList). Zeros when not calibrated.
func (c *calibration) timeoutSizes(invitee string) (atInvitee, atInviter int) {
	adj := len(invitee) - len(c.invitee)
	if c.timeoutInvitee > 0 {
		atInvitee = c.timeoutInvitee + adj
	}
	if c.timeoutInviter > 0 {
		atInviter = c.timeoutInviter + adj
	}
	return atInvitee, atInviter
}

// cancelSize estimates the onInvitationCancelled an invitee gets when
// inviter cancels without data (the frame names the inviter). 0 when not
// calibrated.
func (c *calibration) cancelSize(inviter string) int {
	if c.cancelInvitee == 0 {
		return 0
	}
	return c.cancelInvitee - len(c.inviter) + len(inviter)
}

// calibrate learns the frame sizes: for each pending data size an invite
// to the online calibration invitee (then cancelled), and for the flood an
// invite with the flood's data and a 1 s timeout, whose timeout it awaits
// at both users. It returns what it learnt and the problems it met.
func (m *memRun) calibrate(ctx context.Context, inviteeConn, inviterConn *Conn, pendingSizes []int, floodSize int, flood bool) (*calibration, []string) {
	cal := &calibration{invitee: inviteeConn.User, inviter: inviterConn.User, ring: map[int]int{}}
	var problems []string
	ring := func(size, timeout int) (string, bool) {
		id, err := m.invite(ctx, inviterConn, inviteeConn.User, paddedData(size), timeout)
		if err != nil {
			problems = append(problems, fmt.Sprintf("invite with %d B of data: %v", size, err))
			return "", false
		}
		f, ok := m.awaitCal(ctx, inviteeConn.Index, EvNewInvitation, id, m.cfg.OpTimeout)
		if !ok {
			problems = append(problems, fmt.Sprintf("no onReceiveNewInvitation with %d B of data within -op-timeout", size))
			return id, false
		}
		cal.ring[size] = f.size
		return id, true
	}
	for _, size := range pendingSizes {
		if _, done := cal.ring[size]; done {
			continue
		}
		id, _ := ring(size, m.cfg.PendingTimeout)
		if id == "" {
			continue
		}
		r, err := m.call(ctx, inviterConn, func(rid int64) error { return inviterConn.SendAnswer(rid, protocol.OpCancel, id) })
		if err == nil && r.code != 0 {
			err = &codeError{op: protocol.OpCancel, code: r.code}
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("cancel: %v", err))
			continue
		}
		if f, ok := m.awaitCal(ctx, inviteeConn.Index, EvCancelled, id, m.cfg.OpTimeout); ok {
			cal.cancelInvitee = f.size
		} else {
			problems = append(problems, "no onInvitationCancelled within -op-timeout")
		}
	}
	if !flood {
		return cal, problems
	}
	id, ok := ring(floodSize, 1)
	if !ok {
		return cal, problems
	}
	// The timeout fires a second after the invite, at most a poll interval
	// late; the two events may come in either order.
	wait := m.cfg.OpTimeout + time.Second
	for _, who := range []struct {
		conn int
		size *int
		name string
	}{{inviteeConn.Index, &cal.timeoutInvitee, "invitee"}, {inviterConn.Index, &cal.timeoutInviter, "inviter"}} {
		f, ok := m.awaitCal(ctx, who.conn, EvTimeout, id, wait)
		if !ok {
			problems = append(problems, "no onInvitationTimeout at the "+who.name+" within -op-timeout + 1 s")
			continue
		}
		*who.size = f.size
	}
	return cal, problems
}

// awaitCal waits for event kind of inviteID at connection conn. Other
// frames of the calibration users are set aside and looked at again by the
// next wait.
func (m *memRun) awaitCal(ctx context.Context, conn int, kind EventKind, inviteID string, within time.Duration) (calFrame, bool) {
	t := time.NewTimer(within)
	defer t.Stop()
	var aside []calFrame
	defer func() {
		for _, f := range aside {
			select {
			case m.cal <- f:
			default:
			}
		}
	}()
	for {
		select {
		case f := <-m.cal:
			if f.conn == conn && f.kind == kind && f.inviteID == inviteID {
				return f, true
			}
			aside = append(aside, f)
		case <-t.C:
			return calFrame{}, false
		case <-ctx.Done():
			return calFrame{}, false
		}
	}
}
