package chaos

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// The oracle's cases run on made-up histories: alice (two devices) calls,
// bob (one device) and carol (one device) are called.
var (
	alice0 = DeviceID{"alice", 0}
	alice1 = DeviceID{"alice", 1}
	bob0   = DeviceID{"bob", 0}
	carol0 = DeviceID{"carol", 0}
)

// story builds a History step by step; times go up by one second a step.
type story struct {
	h   History
	now time.Duration
}

func newStory() *story {
	return &story{h: History{
		Start:   time.UnixMilli(1_000_000),
		Devices: []DeviceID{alice0, alice1, bob0, carol0},
		Finals:  map[string]Final{},
		Ignore:  map[string]bool{},
	}}
}

func (s *story) tick() time.Duration { s.now += time.Second; return s.now }

func (s *story) req(d DeviceID, conn int, op, id, data string, code int) *story {
	t := s.tick()
	s.h.Requests = append(s.h.Requests, RequestRecord{Device: d, Conn: conn, Op: op, InviteID: id, Data: data, Code: code, Sent: t, Answered: t})
	return s
}

// ev records an event; who is the invitee of an accept or reject, the data
// of a change, or the inviteeList (comma-separated) of a timeout.
func (s *story) ev(d DeviceID, conn int, eventID, kind, id, who string) *story {
	e := EventRecord{Device: d, Conn: conn, Kind: kind, EventID: eventID, InviteID: id, At: s.tick()}
	switch kind {
	case evNew:
		e.Inviter, e.InviteeList = "alice", strings.Split(who, ",")
	case evAccepted, evRejected:
		e.Invitee = who
	case evModified:
		e.Data = who
	case evTimeout:
		e.InviteeList = strings.Split(who, ",")
	case evCancelled:
		e.Inviter = "alice"
	}
	s.h.Events = append(s.h.Events, e)
	return s
}

func (s *story) login(d DeviceID, conn int, recovered bool) *story {
	s.h.Logins = append(s.h.Logins, LoginRecord{Device: d, Conn: conn, Resume: true, After: "x", Code: 0, Recovered: recovered, At: s.tick()})
	return s
}

// final sets the final states: states is "bob=accepted,carol=timeout".
func (s *story) final(id, states string) *story {
	info := &protocol.SignalingInfo{InviteID: id, Inviter: "alice", States: map[string]string{}, Data: "d0", Deadline: 1_010_000, CreatedAt: 1_000_000}
	for _, kv := range strings.Split(states, ",") {
		k, v, _ := strings.Cut(kv, "=")
		info.InviteeList = append(info.InviteeList, k)
		info.States[k] = v
	}
	s.h.Finals[id] = Final{Info: info, AskedAs: "alice"}
	return s
}

// acceptedCall is alice calling bob on alice0, bob accepting on bob0, and
// everyone getting what §6 promises; cases change it.
func acceptedCall() *story {
	return newStory().
		req(alice0, 1, protocol.OpInvite, "A", "d0", 0).
		ev(bob0, 1, "01", evNew, "A", "bob").
		req(bob0, 1, protocol.OpAccept, "A", "", 0).
		ev(alice0, 1, "11", evAccepted, "A", "bob").
		ev(alice1, 1, "11", evAccepted, "A", "bob").
		final("A", "bob=accepted")
}

func TestCheck(t *testing.T) {
	type want struct{ lost, dup, inc, unrec, excused int }
	cases := []struct {
		name string
		s    *story
		want want
	}{
		{"every event delivered", acceptedCall(), want{}},
		{"the accepting device may get its own event on a later connection", acceptedCall().
			ev(bob0, 2, "11", evAccepted, "A", "bob"), want{}},
		{"a device missing an accept", newStory().
			req(alice0, 1, protocol.OpInvite, "A", "d0", 0).
			ev(bob0, 1, "01", evNew, "A", "bob").
			req(bob0, 1, protocol.OpAccept, "A", "", 0).
			ev(alice0, 1, "11", evAccepted, "A", "bob").
			final("A", "bob=accepted"), want{lost: 1}},
		{"the same event on two connections of a device", acceptedCall().
			ev(alice1, 2, "11", evAccepted, "A", "bob"), want{}},
		{"the same eventID twice on one connection", acceptedCall().
			ev(alice1, 1, "11", evAccepted, "A", "bob"), want{dup: 1}},
		{"an eventID going down on one connection", acceptedCall().
			ev(alice1, 1, "05", evNew, "B", "alice"), want{dup: 1, inc: 1}}, // and B unknown to getSignalingInfo
		{"one event kept twice", acceptedCall().
			ev(alice1, 2, "12", evAccepted, "A", "bob"), want{dup: 1}},
		{"an accept answered 0 that did not happen", newStory().
			req(alice0, 1, protocol.OpInvite, "A", "d0", 0).
			ev(bob0, 1, "01", evNew, "A", "bob").
			req(bob0, 1, protocol.OpAccept, "A", "", 0).
			ev(alice0, 1, "11", evTimeout, "A", "bob").
			ev(alice1, 1, "11", evTimeout, "A", "bob").
			ev(bob0, 1, "12", evTimeout, "A", "bob").
			final("A", "bob=timeout"), want{inc: 1}},
		{"two successful answers", acceptedCall().
			req(bob0, 1, protocol.OpReject, "A", "", 0), want{inc: 2}}, // reject's effect missing, and twice
		{"a timeout listing the wrong invitees", newStory().
			req(alice0, 1, protocol.OpInviteInGroup, "A", "d0", 0).
			ev(bob0, 1, "01", evNew, "A", "bob,carol").
			ev(carol0, 1, "01", evNew, "A", "bob,carol").
			ev(alice0, 1, "11", evTimeout, "A", "bob").
			ev(alice1, 1, "11", evTimeout, "A", "bob").
			ev(bob0, 1, "12", evTimeout, "A", "bob").
			ev(carol0, 1, "12", evTimeout, "A", "bob").
			final("A", "bob=timeout,carol=timeout"), want{inc: 1}},
		{"a timeout missing for one of two invitees", newStory().
			req(alice0, 1, protocol.OpInviteInGroup, "A", "d0", 0).
			ev(bob0, 1, "01", evNew, "A", "bob,carol").
			ev(carol0, 1, "01", evNew, "A", "bob,carol").
			ev(alice0, 1, "11", evTimeout, "A", "bob,carol").
			ev(bob0, 1, "12", evTimeout, "A", "bob,carol").
			final("A", "bob=timeout,carol=timeout"), want{lost: 2}}, // alice1, carol0
		{"still pending at the end", newStory().
			req(alice0, 1, protocol.OpInvite, "A", "d0", 0).
			ev(bob0, 1, "01", evNew, "A", "bob").
			final("A", "bob=pending"), want{inc: 1}},
		{"an invitation getSignalingInfo cannot find", func() *story {
			s := newStory().req(alice0, 1, protocol.OpInvite, "A", "d0", 0)
			s.h.Finals["A"] = Final{Code: protocol.CodeInviteEnded, AskedAs: "alice"}
			return s
		}(), want{inc: 1}},
		{"an event without eventID", acceptedCall().
			ev(carol0, 1, "", evNew, "A", "bob"), want{inc: 2}}, // and carol is no invitee
		{"an unrecovered device is not owed anything", newStory().
			req(alice0, 1, protocol.OpInvite, "A", "d0", 0).
			ev(bob0, 1, "01", evNew, "A", "bob").
			req(bob0, 1, protocol.OpAccept, "A", "", 0).
			ev(alice0, 1, "11", evAccepted, "A", "bob").
			login(alice1, 2, false).
			final("A", "bob=accepted"), want{unrec: 1}},
		{"an accept without reply that took effect is owed to its device too", newStory().
			req(alice0, 1, protocol.OpInvite, "A", "d0", 0).
			ev(bob0, 1, "01", evNew, "A", "bob").
			req(bob0, 1, protocol.OpAccept, "A", "", CodeNoReply).
			ev(alice0, 1, "11", evAccepted, "A", "bob").
			ev(alice1, 1, "11", evAccepted, "A", "bob").
			final("A", "bob=accepted"), want{lost: 1}},
		{"unless its connection went on past it", newStory().
			req(alice0, 1, protocol.OpInvite, "A", "d0", 0).
			ev(bob0, 1, "01", evNew, "A", "bob").
			req(bob0, 1, protocol.OpAccept, "A", "", protocol.CodeInternal).
			ev(bob0, 1, "02", evNew, "B", "bob").
			ev(alice0, 1, "11", evAccepted, "A", "bob").
			ev(alice1, 1, "11", evAccepted, "A", "bob").
			final("A", "bob=accepted").
			req(alice0, 1, protocol.OpInvite, "B", "d1", 0).
			final("B", "bob=rejected").
			req(bob0, 1, protocol.OpReject, "B", "", 0).
			ev(alice0, 1, "12", evRejected, "B", "bob").
			ev(alice1, 1, "12", evRejected, "B", "bob"), want{excused: 1}},
		{"a cancel is owed to the inviter's other device", newStory().
			req(alice0, 1, protocol.OpInvite, "A", "d0", 0).
			ev(bob0, 1, "01", evNew, "A", "bob").
			req(alice0, 1, protocol.OpCancel, "A", "", 0).
			ev(bob0, 1, "02", evCancelled, "A", "").
			final("A", "bob=cancelled"), want{lost: 1}},
		{"a change proven by the final data is owed to everyone", newStory().
			req(alice0, 1, protocol.OpInvite, "A", "d0", 0).
			ev(bob0, 1, "01", evNew, "A", "bob").
			req(alice1, 1, protocol.OpModifyInvitation, "A", "d0", CodeNoReply).
			ev(bob0, 1, "02", evModified, "A", "d0").
			ev(bob0, 1, "03", evTimeout, "A", "bob").
			ev(alice0, 1, "11", evModified, "A", "d0").
			ev(alice0, 1, "12", evTimeout, "A", "bob").
			ev(alice1, 2, "12", evTimeout, "A", "bob").
			final("A", "bob=timeout"), want{lost: 1}}, // alice1, which sent it without learning the outcome
		{"a reject that took effect although it was refused", newStory().
			req(alice0, 1, protocol.OpInvite, "A", "d0", 0).
			ev(bob0, 1, "01", evNew, "A", "bob").
			req(bob0, 1, protocol.OpReject, "A", "", protocol.CodeInviteEnded).
			ev(alice0, 1, "11", evRejected, "A", "bob").
			ev(alice1, 1, "11", evRejected, "A", "bob").
			final("A", "bob=rejected"), want{lost: 1, inc: 1}}, // bob0 never hears of its own reject
		{"a cancel that took effect although it was refused", newStory().
			req(alice0, 1, protocol.OpInvite, "A", "d0", 0).
			ev(bob0, 1, "01", evNew, "A", "bob").
			req(alice0, 1, protocol.OpCancel, "A", "", protocol.CodeInviteEnded).
			ev(bob0, 1, "02", evCancelled, "A", "").
			ev(alice0, 2, "11", evCancelled, "A", "").
			ev(alice1, 1, "11", evCancelled, "A", "").
			final("A", "bob=cancelled"), want{inc: 1}},
		{"an accept refused on one device and made on the other", newStory().
			req(alice0, 1, protocol.OpInviteInGroup, "A", "d0", 0).
			ev(bob0, 1, "01", evNew, "A", "bob,carol").
			ev(carol0, 1, "01", evNew, "A", "bob,carol").
			req(bob0, 1, protocol.OpAccept, "A", "", 0).
			req(carol0, 1, protocol.OpAccept, "A", "", protocol.CodeInviteEnded).
			ev(alice0, 1, "11", evAccepted, "A", "bob").
			ev(alice1, 1, "11", evAccepted, "A", "bob").
			ev(carol0, 1, "02", evAccepted, "A", "bob").
			ev(alice0, 1, "12", evTimeout, "A", "carol").
			ev(alice1, 1, "12", evTimeout, "A", "carol").
			ev(carol0, 1, "03", evTimeout, "A", "carol").
			final("A", "bob=accepted,carol=timeout"), want{}},
		{"a change nobody asked for", acceptedCall().
			ev(bob0, 1, "02", evModified, "A", "zz"), want{inc: 1}},
		{"an event of a warm-up invitation", func() *story {
			s := acceptedCall().ev(bob0, 1, "03", evCancelled, "W", "")
			s.h.Ignore["W"] = true
			return s
		}(), want{inc: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := Check(&tc.s.h)
			got := want{rep.Lost, rep.Duplicated, rep.Inconsistent, rep.Unrecovered, rep.Excused}
			if got != tc.want {
				var b strings.Builder
				_ = rep.Print(&b)
				t.Errorf("got %+v, want %+v\n%s", got, tc.want, b.String())
			}
		})
	}
}

func TestParseFaults(t *testing.T) {
	for in, want := range map[string]string{
		"all": fmt.Sprint(AllFaults), "none": "[]", "": "[]",
		"drop, kill9,drop": "[drop kill9]",
	} {
		got, err := ParseFaults(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("ParseFaults(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := ParseFaults("kill"); err == nil {
		t.Error("ParseFaults(kill): no error")
	}
}
