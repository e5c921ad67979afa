package bench

// The kept events the memory scenario's invitations leave: the server keeps
// every event of an invitation for each of its users (so that a client can
// resume after a reconnect), bounded per user by count and bytes, and here
// nobody can see them (the invitees are offline). Their bytes are
// estimated from the calibrated frame sizes with the server's trimming
// emulated.

// The server's default per-user bounds the estimate assumes
// (SIGNALD_EVENTS_KEPT, SIGNALD_EVENTS_KEPT_BYTES).
const (
	serverEventsKept      = 100
	serverEventsKeptBytes = 256 << 10
)

// keptBytes emulates one user's bounds: events of the given frame sizes,
// oldest first, appended one by one, the oldest dropped while more than
// keep or more than keepBytes bytes are kept (the newest always stays). It
// returns the bytes left kept.
func keptBytes(sizes []int, keep, keepBytes int) int64 {
	var kept []int
	total := 0
	for _, s := range sizes {
		kept = append(kept, s)
		total += s
		over := 0
		for over < len(kept)-1 && (len(kept)-over > keep || total > keepBytes) {
			total -= kept[over]
			over++
		}
		kept = kept[over:]
	}
	return int64(total)
}

// pendingKept estimates the kept frames of a batch of pending invitations
// with size bytes of data: each invitee keeps its rings. 0 when not
// calibrated.
func pendingKept(cal *calibration, b *batch, size int) int64 {
	if cal == nil {
		return 0
	}
	byInvitee := map[string][]int{}
	for _, x := range b.all() {
		n := cal.ringSize(size, x.conn.User, x.invitee)
		if n == 0 {
			return 0
		}
		byInvitee[x.invitee] = append(byInvitee[x.invitee], n)
	}
	var total int64
	for _, sizes := range byInvitee {
		total += keptBytes(sizes, serverEventsKept, serverEventsKeptBytes)
	}
	return total
}

// floodKept estimates the kept frames a flood leaves once every invitation
// has timed out: each invitee its ring and its onInvitationTimeout, each
// inviter the onInvitationTimeout of its invitations, within the per-user
// bounds. Zeros when not calibrated.
func floodKept(cal *calibration, b *batch, size int) (invitees, inviters int64) {
	if cal == nil {
		return 0, 0
	}
	for _, ms := range b.byInviter {
		var atInviter []int
		for _, x := range ms {
			ring := cal.ringSize(size, x.conn.User, x.invitee)
			toInvitee, toInviter := cal.timeoutSizes(x.invitee)
			if ring == 0 || toInvitee == 0 || toInviter == 0 {
				return 0, 0
			}
			invitees += keptBytes([]int{ring, toInvitee}, serverEventsKept, serverEventsKeptBytes)
			atInviter = append(atInviter, toInviter)
		}
		inviters += keptBytes(atInviter, serverEventsKept, serverEventsKeptBytes)
	}
	return invitees, inviters
}

// cancelledKept estimates the kept frames a batch of pending invitations
// with size bytes of data leaves once cancelled: each invitee keeps its
// rings, then its onInvitationCancelled, and each inviter the
// onInvitationCancelled of its invitations (an event is kept for every
// user it is about, its author included). 0 when not calibrated.
func cancelledKept(cal *calibration, b *batch, size int) int64 {
	if cal == nil {
		return 0
	}
	rings, cancels := map[string][]int{}, map[string][]int{}
	var total int64
	for _, ms := range b.byInviter {
		var atInviter []int
		for _, x := range ms {
			r, c := cal.ringSize(size, x.conn.User, x.invitee), cal.cancelSize(x.conn.User)
			if r == 0 || c == 0 {
				return 0
			}
			rings[x.invitee] = append(rings[x.invitee], r)
			cancels[x.invitee] = append(cancels[x.invitee], c)
			atInviter = append(atInviter, c)
		}
		total += keptBytes(atInviter, serverEventsKept, serverEventsKeptBytes)
	}
	for u, sizes := range rings {
		total += keptBytes(append(sizes, cancels[u]...), serverEventsKept, serverEventsKeptBytes)
	}
	return total
}
