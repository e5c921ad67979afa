package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/signald/signald/internal/protocol"
)

func ptr[T any](v T) *T { return &v }

// serverFrames are frames as the server encodes them, plus hand-written ones
// with spacing, escapes and nesting the server never sends but JSON allows.
func serverFrames() [][]byte {
	frames := [][]byte{
		protocol.Reply{ID: 7, Code: 0, Data: "Q2ZJ7V3X4KQ5L6M7N8P9R2S3T4"}.Encode(),
		protocol.Reply{ID: 1, Data: protocol.LoginData{UserID: "alice", ServerTime: 1764100000000}}.Encode(),
		protocol.Reply{ID: 9, Code: 8010, Desc: `invitation "x" ended`}.Encode(),
		protocol.Reply{ID: 0, Code: 6017, Desc: "frame is not a JSON object"}.Encode(),
		protocol.Reply{ID: 3, Data: protocol.SignalingInfo{InviteID: "i", InviteeList: []string{"a", "b"},
			States: map[string]string{"a": "pending", "}": "{"}}}.Encode(),
		protocol.Event{Event: "onReceiveNewInvitation", InviteID: "abc", Inviter: ptr("alice"), GroupID: ptr(""),
			InviteeList: []string{"bob", "carol"}, Data: ptr(`{"cmd":"videoCall","x":[1,{"y":"]"}]}`), Timeout: ptr(30), EventID: "00000042"}.Encode(),
		protocol.Event{Event: "onInviteeAccepted", InviteID: "abc", Invitee: ptr("bob"), Data: ptr("")}.Encode(),
		protocol.Event{Event: "onInvitationCancelled", InviteID: "id\\with\"escapes\u2028", Inviter: ptr("ünïcode"), Data: ptr("\x01\n")}.Encode(),
		protocol.Event{Event: "onInvitationTimeout", InviteID: "t", InviteeList: []string{"bob"}}.Encode(),
		[]byte(" { \"event\" : \"onInviteeRejected\" ,\n\t\"inviteID\":\"r\", \"data\" : null , \"extra\":[[],{},true,false,-1.5e3] } "),
		[]byte(`{}`),
		[]byte(`{"id":null,"code":null,"data":{"nested":{"deep":["\"}"]}},"desc":"\u00e9"}`),
	}
	return frames
}

func TestParseFrameMatchesEncodingJSON(t *testing.T) {
	for _, raw := range serverFrames() {
		var want protocol.Frame
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("test frame %s: %v", raw, err)
		}
		var got Frame
		if err := ParseFrame(raw, &got); err != nil {
			t.Fatalf("ParseFrame(%s): %v", raw, err)
		}
		if got.ID != want.ID || got.Code != want.Code || string(got.Event) != want.Event ||
			string(got.InviteID) != want.InviteID || string(got.Desc) != want.Desc || string(got.EventID) != want.EventID {
			t.Errorf("ParseFrame(%s) = id %d code %d event %q invite %q desc %q; encoding/json: %+v",
				raw, got.ID, got.Code, got.Event, got.InviteID, got.Desc, want)
		}
		if w := strings.TrimSpace(string(want.Data)); w != "" && w != string(got.Data) {
			t.Errorf("ParseFrame(%s).Data = %s, want %s", raw, got.Data, w)
		}
		if want.ID > 0 && !want.IsEvent() {
			var s string
			if json.Unmarshal(want.Data, &s) == nil && got.DataString() != s {
				t.Errorf("DataString = %q, want %q", got.DataString(), s)
			}
		}
	}
}

func TestParseFrameKind(t *testing.T) {
	for ev, want := range map[string]EventKind{
		"onReceiveNewInvitation": EvNewInvitation, "onInviteeAccepted": EvAccepted,
		"onInviteeRejected": EvRejected, "onInvitationCancelled": EvCancelled,
		"onInvitationTimeout": EvTimeout, "onInvitationModified": EvOther,
	} {
		var f Frame
		if err := ParseFrame(protocol.Event{Event: ev, InviteID: "x"}.Encode(), &f); err != nil || f.Kind() != want {
			t.Errorf("%s: kind %v err %v, want %v", ev, f.Kind(), err, want)
		}
	}
	var f Frame
	if err := ParseFrame([]byte(`{"id":1,"code":0}`), &f); err != nil || f.Kind() != EvNone {
		t.Errorf("reply: kind %v err %v", f.Kind(), err)
	}
}

func TestParseFrameRejectsMalformed(t *testing.T) {
	for _, raw := range []string{
		``, `[]`, `"x"`, `{`, `{"id"}`, `{"id":}`, `{"id":1`, `{"id":1,}x`, `{"id":"1"}`, `{"code":1.5}`,
		`{"event":"unterminated}`, `{"data":{"a":[1,2}`, `{"id":1 "code":2}`, `{id:1}`, `{"inviteID":5}`,
	} {
		var f Frame
		if err := ParseFrame([]byte(raw), &f); err == nil {
			t.Errorf("ParseFrame(%q) accepted: %+v", raw, f)
		}
	}
}

func TestParseFrameDoesNotAllocate(t *testing.T) {
	raw := protocol.Event{Event: "onReceiveNewInvitation", InviteID: "Q2ZJ7V3X4KQ5L6M7N8P9R2S3T4", Inviter: ptr("bench-c-1"),
		GroupID: ptr(""), InviteeList: []string{"bench-e-1"}, Data: ptr(`{"cmd":"videoCall"}`), Timeout: ptr(30)}.Encode()
	var f Frame
	allocs := testing.AllocsPerRun(100, func() {
		if ParseFrame(raw, &f) != nil || f.Kind() != EvNewInvitation {
			panic("parse")
		}
	})
	if allocs != 0 {
		t.Fatalf("ParseFrame allocates %v times per frame", allocs)
	}
}

func TestRequestsDecodeOnTheServer(t *testing.T) {
	odd := "a\"b\\c\n\x01é\u2028"
	check := func(raw []byte, op string, want map[string]any) {
		t.Helper()
		r, err := protocol.DecodeRequest(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if r.Op != op {
			t.Fatalf("%s: op %q", raw, r.Op)
		}
		for k, v := range want {
			var got any
			var err error
			switch v := v.(type) {
			case string:
				got, err = r.String(k)
			case int64:
				got, err = r.Int(k, -1)
			case []string:
				var l []string
				l, err = r.StringList(k)
				got = fmt.Sprint(l)
				want[k] = fmt.Sprint(v)
			}
			if err != nil || got != want[k] {
				t.Errorf("%s: %s = %v (%v), want %v", raw, k, got, err, want[k])
			}
		}
	}
	check(AppendInvite(nil, 5, odd, `{"cmd":"videoCall"}`, 30), protocol.OpInvite,
		map[string]any{"invitee": odd, "data": `{"cmd":"videoCall"}`, "timeout": int64(30)})
	check(AppendAnswer([]byte("garbage-is-kept-out"[:0]), 6, protocol.OpAccept, odd), protocol.OpAccept,
		map[string]any{"inviteID": odd})
	check(AppendLogin(nil, 1, "u1", "tok.en.sig"), protocol.OpLogin, map[string]any{"userID": "u1", "userSig": "tok.en.sig"})
	check(AppendInviteInGroup(nil, 8, "g", EncodeList([]string{"a", odd}), "", 0), protocol.OpInviteInGroup,
		map[string]any{"groupID": "g", "inviteeList": []string{"a", odd}, "data": "", "timeout": int64(0)})
	// Invalid UTF-8 becomes U+FFFD rather than an undecodable frame.
	if r, err := protocol.DecodeRequest(AppendInvite(nil, 1, "\xff", "", 1)); err != nil {
		t.Fatal(err)
	} else if s, _ := r.String("invitee"); s != "\ufffd" {
		t.Fatalf("invalid UTF-8 encoded as %q", s)
	}
}

func FuzzParseFrame(f *testing.F) {
	for _, raw := range serverFrames() {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got Frame
		if ParseFrame(raw, &got) != nil {
			return
		}
		// Whatever the scanner accepts that is also valid JSON must agree
		// with encoding/json on the fields it reads. A map keeps keys exact
		// (a struct would match "ID" to "id" as well).
		var m map[string]json.RawMessage
		if !utf8.Valid(raw) || json.Unmarshal(raw, &m) != nil {
			return
		}
		var id, code int64
		var event, inviteID string
		for k, p := range map[string]any{"id": &id, "code": &code, "event": &event, "inviteID": &inviteID} {
			if v, ok := m[k]; ok && json.Unmarshal(v, p) != nil {
				return
			}
		}
		if got.ID != id || int64(got.Code) != code || string(got.Event) != event || string(got.InviteID) != inviteID {
			t.Fatalf("%q: scanner %+v, encoding/json %v", raw, got, m)
		}
	})
}

func TestAppendStringRandomRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		b := make([]rune, rng.IntN(12))
		for i := range b {
			b[i] = rune(rng.IntN(0x3000))
		}
		s := string(b)
		var back string
		if err := json.Unmarshal(appendString(nil, s), &back); err != nil || back != s {
			t.Fatalf("%q -> %s -> %q (%v)", s, appendString(nil, s), back, err)
		}
	}
}
