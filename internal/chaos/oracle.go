package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// History is everything the oracle looks at: what the devices sent and
// received, and the final state of every invitation.
type History struct {
	Start    time.Time // the run's start: record times are relative to it
	Devices  []DeviceID
	Requests []RequestRecord
	Events   []EventRecord // each connection's in the order they arrived
	Logins   []LoginRecord
	Finals   map[string]Final // by inviteID
	Ignore   map[string]bool  // inviteIDs left out (the warm-up's)
	Faults   []FaultRecord    // for the details only
	Closes   []CloseRecord    // for digging only
}

// The event kinds of api/README.md §6.
const (
	evNew       = "onReceiveNewInvitation"
	evAccepted  = "onInviteeAccepted"
	evRejected  = "onInviteeRejected"
	evCancelled = "onInvitationCancelled"
	evTimeout   = "onInvitationTimeout"
	evModified  = "onInvitationModified"
)

// logical names one event independently of who receives it and under
// which eventID: its kind, its invitation, and what tells apart two events
// of that kind on one invitation (the invitee of an accept or reject, the
// data of a change).
type logical struct {
	kind, inviteID, who string
}

func (l logical) String() string {
	if l.who == "" {
		return l.kind + " of " + l.inviteID
	}
	return fmt.Sprintf("%s(%s) of %s", l.kind, l.who, l.inviteID)
}

func keyOf(e EventRecord) logical {
	switch e.Kind {
	case evAccepted, evRejected:
		return logical{e.Kind, e.InviteID, e.Invitee}
	case evModified:
		return logical{e.Kind, e.InviteID, e.Data}
	}
	return logical{e.Kind, e.InviteID, ""}
}

// received is what one device got of one logical event: the first record
// under each eventID.
type received map[string]EventRecord

// expectation is one logical event §6 promises, given the final states.
type expectation struct {
	key      logical
	audience []string // users
	// actors are the devices whose own request, answered 0, caused it:
	// their connection got the reply instead, so it is not required of
	// them.
	actors map[DeviceID]bool
	// unsure are requests that may have caused it but whose outcome their
	// device could not know (no reply, 90994).
	unsure []RequestRecord
}

// checker is one run of Check.
type checker struct {
	h           *History
	rep         *Report
	byUser      map[string][]DeviceID
	recv        map[DeviceID]map[logical]received
	connEvents  map[DeviceID]map[int][]EventRecord
	unrecovered map[DeviceID]bool
	reqsOf      map[string][]RequestRecord // by inviteID
	eventsOf    map[string][]EventRecord   // by inviteID
	reported    map[string]bool            // inconsistencies already counted, by what they are about
}

// Check is the oracle. It counts, per device, the events §6 promises given
// the final states that never arrived (lost), events kept twice or out of
// order (duplicated), and disagreements between final states, replies and
// events (inconsistent). The rules:
//
//   - Every invitation a reply or an event names is checked, with the
//     final states getSignalingInfo gave; one it cannot read, or that still
//     has a pending invitee, is inconsistent.
//   - Expected per user: onReceiveNewInvitation by every invitee;
//     onInviteeAccepted/Rejected(v) by the inviter and every invitee, for
//     each v in that state; onInvitationCancelled by the inviter and every
//     invitee if any invitee is cancelled; one onInvitationTimeout by the
//     inviter and the invitees in state timeout, listing exactly those;
//     onInvitationModified(data) by the inviter and every invitee for every
//     change that happened (answered 0, or proven by its data being the
//     final one or by any device having received it).
//   - Every device of such a user must have received it, on any of its
//     connections, except the device whose own request, answered 0, caused
//     it; and except a device that could not know whether its own request
//     caused it (no reply, 90994) if, on the connection it sent it on, it
//     went on to process later events (it then resumed past it, as the
//     protocol lets it). A device ever answered recovered:false is counted
//     unrecovered instead, and not held to anything.
//   - Duplicated: one device getting one logical event under two eventIDs,
//     or a connection getting an eventID not greater than the one before.
//     One eventID on two connections of a device is allowed (§9).
//   - Inconsistent, besides the above: an accept, reject or cancel answered
//     0 whose effect the final states lack; an accepted, rejected or
//     cancelled state although every request that could have made it was
//     refused (8010 and the like: the reply said it did not happen); two
//     successful answers for one invitee, or two successful cancels; an event that asserts what the
//     final states contradict, or reaches a user it is not for; an event
//     without eventID; an event of a warm-up invitation.
func Check(h *History) *Report {
	c := &checker{
		h: h, rep: &Report{},
		byUser:      make(map[string][]DeviceID),
		recv:        make(map[DeviceID]map[logical]received),
		connEvents:  make(map[DeviceID]map[int][]EventRecord),
		unrecovered: make(map[DeviceID]bool),
		reqsOf:      make(map[string][]RequestRecord),
		eventsOf:    make(map[string][]EventRecord),
		reported:    make(map[string]bool),
	}
	for _, r := range h.Requests {
		if r.InviteID != "" {
			c.reqsOf[r.InviteID] = append(c.reqsOf[r.InviteID], r)
		}
	}
	for _, e := range h.Events {
		c.eventsOf[e.InviteID] = append(c.eventsOf[e.InviteID], e)
	}
	for _, d := range h.Devices {
		c.byUser[d.User] = append(c.byUser[d.User], d)
		c.recv[d] = make(map[logical]received)
		c.connEvents[d] = make(map[int][]EventRecord)
	}
	c.checkLogins()
	c.checkEvents()
	for _, id := range c.invitations() {
		c.checkInvitation(id)
	}
	return c.rep
}

// checkLogins finds the devices ever answered recovered:false.
func (c *checker) checkLogins() {
	for _, l := range c.h.Logins {
		if l.Resume && l.Code == 0 && !l.Recovered && !c.unrecovered[l.Device] {
			c.unrecovered[l.Device] = true
			c.rep.Unrecovered++
			c.rep.addUnrecovered(fmt.Sprintf("%v: resume on connection %d at %s after eventID %q answered recovered:false (its events are not counted)",
				l.Device, l.Conn, at(l.At), l.After))
		}
	}
}

// checkEvents indexes what each device received and checks each
// connection's order.
func (c *checker) checkEvents() {
	type connKey struct {
		d    DeviceID
		conn int
	}
	lastOn := make(map[connKey]EventRecord)
	for _, e := range c.h.Events {
		if _, ok := c.recv[e.Device]; !ok {
			c.inconsistent("device:"+e.Device.String(), "an event reached %v, which is no device of the run: %s", e.Device, describeEvent(e))
			continue
		}
		c.connEvents[e.Device][e.Conn] = append(c.connEvents[e.Device][e.Conn], e)
		if c.h.Ignore[e.InviteID] {
			c.inconsistent("warmup:"+e.Device.String()+":"+e.EventID, "%v got %s, of a warm-up invitation that ended before the device first logged in", e.Device, describeEvent(e))
		}
		if e.EventID == "" {
			c.inconsistent(fmt.Sprintf("noid:%v:%d:%s", e.Device, e.Conn, keyOf(e)), "%v got %s without eventID on connection %d at %s", e.Device, keyOf(e), e.Conn, at(e.At))
			continue
		}
		k := connKey{e.Device, e.Conn}
		if prev, ok := lastOn[k]; ok && e.EventID <= prev.EventID {
			what := "after"
			if e.EventID == prev.EventID {
				what = "again after"
			}
			c.rep.Duplicated++
			c.rep.addDuplicated(fmt.Sprintf("%v, connection %d: eventID %s (%s) at %s came %s eventID %s (%s) at %s",
				e.Device, e.Conn, e.EventID, keyOf(e), at(e.At), what, prev.EventID, keyOf(prev), at(prev.At)))
		}
		if prev, ok := lastOn[k]; !ok || e.EventID > prev.EventID {
			lastOn[k] = e
		}
		r := c.recv[e.Device][keyOf(e)]
		if r == nil {
			r = make(received)
			c.recv[e.Device][keyOf(e)] = r
		}
		if _, ok := r[e.EventID]; !ok {
			r[e.EventID] = e
		}
	}
	for _, d := range c.h.Devices {
		keys := make([]logical, 0, len(c.recv[d]))
		for k := range c.recv[d] {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			r := c.recv[d][k]
			if len(r) < 2 {
				continue
			}
			ids := make([]string, 0, len(r))
			for id := range r {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			var parts []string
			for _, id := range ids {
				parts = append(parts, fmt.Sprintf("%s (connection %d, %s)", id, r[id].Conn, at(r[id].At)))
			}
			c.rep.Duplicated += len(r) - 1
			c.rep.addDuplicated(fmt.Sprintf("%v got %s under %d eventIDs: %s", d, k, len(r), strings.Join(parts, ", ")))
		}
	}
}

// invitations returns every inviteID a reply or an event names, but the
// ignored ones, in order.
func (c *checker) invitations() []string {
	set := make(map[string]bool)
	for id := range c.reqsOf {
		set[id] = true
	}
	for id := range c.eventsOf {
		set[id] = true
	}
	var out []string
	for id := range set {
		if id != "" && !c.h.Ignore[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// proof says what shows that the invitation exists.
func (c *checker) proof(id string) string {
	for _, r := range c.reqsOf[id] {
		if r.Code == 0 {
			return fmt.Sprintf("%s by %v answered 0 at %s", r.Op, r.Device, at(r.Answered))
		}
	}
	if evs := c.eventsOf[id]; len(evs) > 0 {
		e := evs[0]
		return fmt.Sprintf("%v got %s at %s", e.Device, e.Kind, at(e.At))
	}
	return "a request names it"
}

func (c *checker) checkInvitation(id string) {
	fin, ok := c.h.Finals[id]
	if !ok || fin.Info == nil {
		why := "was not read"
		if ok {
			why = fmt.Sprintf("as %s answered %d %q", fin.AskedAs, fin.Code, fin.Desc)
		}
		c.inconsistent("get:"+id, "getSignalingInfo of %s %s, though %s", id, why, c.proof(id))
		return
	}
	inv := fin.Info
	var pending []string
	for _, v := range inv.InviteeList {
		switch inv.States[v] {
		case "pending":
			pending = append(pending, v)
		case "accepted", "rejected", "timeout", "cancelled":
		default:
			c.inconsistent("state:"+id+":"+v, "%s: invitee %s has state %q", id, v, inv.States[v])
		}
	}
	if len(pending) > 0 {
		c.inconsistent("pending:"+id, "%s still has pending invitees %v at the end (deadline %s, states %v)", id, pending, c.epoch(inv.Deadline), inv.States)
	}
	reqs := c.reqsOf[id]
	c.checkReplies(inv, reqs)
	c.checkEventClaims(inv, reqs)
	for _, x := range c.expectations(inv, reqs) {
		c.checkDelivery(inv, x)
	}
}

// unsure reports whether a request's device could not know its outcome.
func unsure(r RequestRecord) bool { return r.Code == CodeNoReply || r.Code == protocol.CodeInternal }

// checkReplies compares every successful accept, reject and cancel with
// the final states.
func (c *checker) checkReplies(inv *protocol.SignalingInfo, reqs []RequestRecord) {
	answers := make(map[string][]RequestRecord) // invitee → accepts and rejects answered 0
	var cancels []RequestRecord
	for _, r := range reqs {
		if r.Code != 0 {
			continue
		}
		u := r.Device.User
		switch r.Op {
		case protocol.OpAccept, protocol.OpReject:
			want := map[string]string{protocol.OpAccept: "accepted", protocol.OpReject: "rejected"}[r.Op]
			if got := inv.States[u]; got != want {
				c.inconsistent("reply:"+inv.InviteID+":"+u+":"+r.Op, "%s by %v answered 0 at %s, but %s's final state in %s is %q", r.Op, r.Device, at(r.Answered), u, inv.InviteID, got)
			}
			answers[u] = append(answers[u], r)
		case protocol.OpCancel:
			if !anyState(inv, "cancelled") {
				c.inconsistent("reply:"+inv.InviteID+":cancel", "cancel by %v answered 0 at %s, but no invitee of %s is cancelled (%v)", r.Device, at(r.Answered), inv.InviteID, inv.States)
			}
			cancels = append(cancels, r)
		}
	}
	// A state that only a user's own request makes, reached although every
	// such request was refused: the reply said it did not happen.
	refused := func(op, u string) []RequestRecord {
		var out []RequestRecord
		for _, r := range reqs {
			if r.Op != op || (u != "" && r.Device.User != u) {
				continue
			}
			if r.Code == 0 || unsure(r) {
				return nil
			}
			out = append(out, r)
		}
		return out
	}
	for _, v := range inv.InviteeList {
		op := map[string]string{"accepted": protocol.OpAccept, "rejected": protocol.OpReject}[inv.States[v]]
		if op == "" {
			continue
		}
		if rs := refused(op, v); len(rs) > 0 {
			c.inconsistent("refused:"+inv.InviteID+":"+v, "%s's final state in %s is %q, but every %s it sent was refused: %s", v, inv.InviteID, inv.States[v], op, describeRequests(rs))
		}
	}
	if anyState(inv, "cancelled") {
		if rs := refused(protocol.OpCancel, ""); len(rs) > 0 {
			c.inconsistent("refused:"+inv.InviteID+":cancel", "%s has cancelled invitees, but every cancel was refused: %s", inv.InviteID, describeRequests(rs))
		}
	}
	for u, rs := range answers {
		if len(rs) > 1 {
			c.inconsistent("twice:"+inv.InviteID+":"+u, "%s's part in %s was answered twice successfully: %s", u, inv.InviteID, describeRequests(rs))
		}
	}
	if len(cancels) > 1 {
		c.inconsistent("twice:"+inv.InviteID+":cancel", "%s was cancelled twice successfully: %s", inv.InviteID, describeRequests(cancels))
	}
}

// checkEventClaims checks every event of the invitation against the final
// states, and that it reached only users it is for.
func (c *checker) checkEventClaims(inv *protocol.SignalingInfo, reqs []RequestRecord) {
	id := inv.InviteID
	participant := func(u string) bool { return u == inv.Inviter || slices.Contains(inv.InviteeList, u) }
	timedOut := usersIn(inv, "timeout")
	asked := make(map[string]bool) // data of every modifyInvitation sent
	for _, r := range reqs {
		if r.Op == protocol.OpModifyInvitation {
			asked[r.Data] = true
		}
	}
	for _, e := range c.eventsOf[id] {
		u, k := e.Device.User, keyOf(e)
		if !participant(u) {
			c.inconsistent("audience:"+k.String()+":"+u, "%v got %s, but %s is neither inviter nor invitee of %s", e.Device, k, u, id)
			continue
		}
		switch e.Kind {
		case evNew:
			if !slices.Contains(inv.InviteeList, u) {
				c.inconsistent("audience:"+k.String()+":"+u, "%v got %s, but %s is not an invitee", e.Device, k, u)
			}
			if e.Inviter != inv.Inviter || e.GroupID != inv.GroupID || !sameSet(e.InviteeList, inv.InviteeList) {
				c.inconsistent("claim:"+k.String(), "%v got %s naming inviter %q, group %q, invitees %v; getSignalingInfo says %q, %q, %v",
					e.Device, k, e.Inviter, e.GroupID, e.InviteeList, inv.Inviter, inv.GroupID, inv.InviteeList)
			}
		case evAccepted, evRejected:
			want := map[string]string{evAccepted: "accepted", evRejected: "rejected"}[e.Kind]
			if got := inv.States[e.Invitee]; got != want {
				c.inconsistent("claim:"+k.String(), "%v got %s at %s, but %s's final state is %q", e.Device, k, at(e.At), e.Invitee, got)
			}
		case evCancelled:
			if !anyState(inv, "cancelled") {
				c.inconsistent("claim:"+k.String(), "%v got %s at %s, but no invitee is cancelled (%v)", e.Device, k, at(e.At), inv.States)
			}
		case evTimeout:
			if !sameSet(e.InviteeList, timedOut) {
				c.inconsistent("claim:"+k.String(), "%v got %s listing %v at %s, but the invitees in state timeout are %v", e.Device, k, e.InviteeList, at(e.At), timedOut)
			}
			if u != inv.Inviter && !slices.Contains(timedOut, u) {
				c.inconsistent("audience:"+k.String()+":"+u, "%v got %s, but %s neither invited nor timed out", e.Device, k, u)
			}
		case evModified:
			if !asked[e.Data] {
				c.inconsistent("claim:"+k.String(), "%v got %s, a change nobody asked for", e.Device, k)
			}
		default:
			c.inconsistent("kind:"+e.Kind, "%v got an event of unknown kind %q", e.Device, e.Kind)
		}
	}
}

// expectations lists the events §6 promises for the invitation.
func (c *checker) expectations(inv *protocol.SignalingInfo, reqs []RequestRecord) []expectation {
	id := inv.InviteID
	everyone := append([]string{inv.Inviter}, inv.InviteeList...)
	caused := func(x *expectation, match func(RequestRecord) bool) {
		x.actors = make(map[DeviceID]bool)
		for _, r := range reqs {
			if !match(r) {
				continue
			}
			if r.Code == 0 {
				x.actors[r.Device] = true
			} else if unsure(r) {
				x.unsure = append(x.unsure, r)
			}
		}
	}
	var out []expectation
	out = append(out, expectation{key: logical{evNew, id, ""}, audience: inv.InviteeList})
	for _, v := range inv.InviteeList {
		var kind, op string
		switch inv.States[v] {
		case "accepted":
			kind, op = evAccepted, protocol.OpAccept
		case "rejected":
			kind, op = evRejected, protocol.OpReject
		default:
			continue
		}
		x := expectation{key: logical{kind, id, v}, audience: everyone}
		caused(&x, func(r RequestRecord) bool { return r.Op == op && r.Device.User == v })
		out = append(out, x)
	}
	if anyState(inv, "cancelled") {
		x := expectation{key: logical{evCancelled, id, ""}, audience: everyone}
		caused(&x, func(r RequestRecord) bool { return r.Op == protocol.OpCancel })
		out = append(out, x)
	}
	if t := usersIn(inv, "timeout"); len(t) > 0 {
		out = append(out, expectation{key: logical{evTimeout, id, ""}, audience: append([]string{inv.Inviter}, t...)})
	}
	for _, data := range c.changes(inv, reqs) {
		x := expectation{key: logical{evModified, id, data}, audience: everyone}
		caused(&x, func(r RequestRecord) bool { return r.Op == protocol.OpModifyInvitation && r.Data == data })
		out = append(out, x)
	}
	return out
}

// changes returns the data of every modifyInvitation known to have taken
// effect: answered 0, or (answer unknown) its data is the final one or
// some device received its event. Each change's data is unique.
func (c *checker) changes(inv *protocol.SignalingInfo, reqs []RequestRecord) []string {
	var out []string
	for _, r := range reqs {
		if r.Op != protocol.OpModifyInvitation || slices.Contains(out, r.Data) {
			continue
		}
		happened := r.Code == 0
		if !happened && unsure(r) {
			happened = inv.Data == r.Data || c.anyoneGot(logical{evModified, inv.InviteID, r.Data})
		}
		if happened {
			out = append(out, r.Data)
		}
	}
	return out
}

func (c *checker) anyoneGot(k logical) bool {
	for _, m := range c.recv {
		if len(m[k]) > 0 {
			return true
		}
	}
	return false
}

// checkDelivery counts the devices of x's audience that never got x.
func (c *checker) checkDelivery(inv *protocol.SignalingInfo, x expectation) {
	for _, u := range x.audience {
		for _, d := range c.byUser[u] {
			if x.actors[d] || c.unrecovered[d] || len(c.recv[d][x.key]) > 0 {
				continue
			}
			if c.excused(d, x) {
				c.rep.Excused++
				continue
			}
			c.rep.Lost++
			if len(c.rep.LostDetails) < maxDetails {
				c.rep.lostItems = append(c.rep.lostItems, lostItem{user: u, key: x.key})
			}
			c.rep.addLost(c.describeLoss(inv, d, x))
		}
	}
}

// excused reports whether d may have resumed past x legitimately: one of
// its own requests that may have caused x got no usable answer, and the
// connection it was sent on went on to deliver events newer than x (or,
// when x's eventID for this user is unknown, any event after the request).
// The server leaves x out on the connection that acted, and the device,
// not knowing it acted, then resumes after those newer events.
func (c *checker) excused(d DeviceID, x expectation) bool {
	idForUser := ""
	for _, other := range c.byUser[d.User] {
		for id := range c.recv[other][x.key] {
			idForUser = id
		}
	}
	for _, r := range x.unsure {
		if r.Device != d {
			continue
		}
		for _, e := range c.connEvents[d][r.Conn] {
			if e.EventID == "" {
				continue
			}
			if (idForUser != "" && e.EventID > idForUser) || (idForUser == "" && e.At >= r.Sent) {
				return true
			}
		}
	}
	return false
}

// describeLoss says who missed what, who got it, and which faults were
// near, so that a loss can be looked up in the instances' logs.
func (c *checker) describeLoss(inv *protocol.SignalingInfo, d DeviceID, x expectation) string {
	var got []string
	first := time.Duration(-1)
	for _, u := range x.audience {
		for _, o := range c.byUser[u] {
			for id, e := range c.recv[o][x.key] {
				got = append(got, fmt.Sprintf("%v %s %s", o, at(e.At), id))
				if first < 0 || e.At < first {
					first = e.At
				}
			}
		}
	}
	sort.Strings(got)
	ref := first
	if x.key.kind == evTimeout || (ref < 0 && inv.Deadline > 0) {
		ref = c.relative(inv.Deadline)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v never got %s (inviter %s, invitees %v, states %v, created %s, deadline %s)",
		d, x.key, inv.Inviter, inv.InviteeList, inv.States, c.epoch(inv.CreatedAt), c.epoch(inv.Deadline))
	if len(got) == 0 {
		b.WriteString("; no device of its audience got it")
	} else {
		fmt.Fprintf(&b, "; got by %s", strings.Join(got, ", "))
	}
	var near []string
	for _, f := range c.h.Faults {
		if f.At+f.Took >= ref-5*time.Second && f.At <= ref+2*time.Second {
			near = append(near, fmt.Sprintf("%s %s at %s (took %s)", f.Kind, f.Target, at(f.At), f.Took.Round(time.Millisecond)))
		}
	}
	if len(near) > 0 {
		fmt.Fprintf(&b, "; faults near: %s", strings.Join(near, ", "))
	}
	return b.String()
}

// inconsistent counts one inconsistency, once per what (several devices
// seeing one wrong event make one).
func (c *checker) inconsistent(what, format string, args ...any) {
	if c.reported[what] {
		return
	}
	c.reported[what] = true
	c.rep.Inconsistent++
	c.rep.addInconsistent(fmt.Sprintf(format, args...))
}

// relative turns ms since the epoch into run time.
func (c *checker) relative(ms int64) time.Duration { return time.UnixMilli(ms).Sub(c.h.Start) }

func (c *checker) epoch(ms int64) string {
	if ms == 0 {
		return "none"
	}
	return at(c.relative(ms))
}

// at formats a run time.
func at(d time.Duration) string { return fmt.Sprintf("+%.3fs", d.Seconds()) }

func anyState(inv *protocol.SignalingInfo, state string) bool {
	for _, v := range inv.InviteeList {
		if inv.States[v] == state {
			return true
		}
	}
	return false
}

func usersIn(inv *protocol.SignalingInfo, state string) []string {
	var out []string
	for _, v := range inv.InviteeList {
		if inv.States[v] == state {
			out = append(out, v)
		}
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func describeRequests(rs []RequestRecord) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%s by %v sent %s answered %d at %s", r.Op, r.Device, at(r.Sent), r.Code, at(r.Answered)))
	}
	return strings.Join(parts, ", ")
}

func describeEvent(e EventRecord) string {
	return fmt.Sprintf("%s eventID %q on connection %d at %s", keyOf(e), e.EventID, e.Conn, at(e.At))
}
