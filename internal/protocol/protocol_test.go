package protocol

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func TestDecodeRequestFrame(t *testing.T) {
	tests := []struct {
		frame string
		ok    bool
		id    int64
		op    string
	}{
		{`{"id":7,"op":"ping"}`, true, 7, "ping"},
		{`{"id":7.0,"op":"ping"}`, true, 7, "ping"},
		{`{"id":1e3,"op":"ping"}`, true, 1000, "ping"},
		{`{"id":7}`, true, 7, ""},
		{`{"id":7,"op":5}`, true, 7, ""},
		{`{"id":0,"op":"ping"}`, false, 0, ""},
		{`{"id":-1,"op":"ping"}`, false, 0, ""},
		{`{"id":7.5,"op":"ping"}`, false, 0, ""},
		{`{"id":"7","op":"ping"}`, false, 0, ""},
		{`{"id":null,"op":"ping"}`, false, 0, ""},
		{`{"op":"ping"}`, false, 0, ""},
		{`{"id":99999999999999999999999,"op":"ping"}`, false, 0, ""},
		{`[1,2]`, false, 0, ""},
		{`null`, false, 0, ""},
		{`"x"`, false, 0, ""},
		{`{"id":7,"op":"ping"} trailing`, false, 0, ""},
		{``, false, 0, ""},
		{`{`, false, 0, ""},
	}
	for _, tt := range tests {
		r, err := DecodeRequest([]byte(tt.frame))
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.frame, err, tt.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadParam) {
				t.Errorf("%s: error %v does not wrap ErrBadParam", tt.frame, err)
			}
			continue
		}
		if r.ID != tt.id || r.Op != tt.op {
			t.Errorf("%s: got id %d op %q, want %d %q", tt.frame, r.ID, r.Op, tt.id, tt.op)
		}
	}
}

func TestParams(t *testing.T) {
	r, err := DecodeRequest([]byte(`{"id":1,"op":"inviteInGroup","groupID":"g","inviteeList":["a","b"],
		"data":"","timeout":30,"onlineUserOnly":true,"nul":null,"bad":"30","f":30.5,"list":["a",1],
		"offlinePushInfo":{"title":"t","desc":"d","ext":"e","disablePush":true,"sound":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := r.String("groupID"); s != "g" || err != nil {
		t.Errorf("String(groupID) = %q, %v", s, err)
	}
	if s, err := r.String("data"); s != "" || err != nil {
		t.Errorf("String(data) = %q, %v (empty is allowed)", s, err)
	}
	for _, name := range []string{"missing", "nul", "timeout", "inviteeList"} {
		if _, err := r.String(name); !errors.Is(err, ErrBadParam) {
			t.Errorf("String(%s): err = %v, want ErrBadParam", name, err)
		}
	}
	if s, err := r.OptString("missing"); s != "" || err != nil {
		t.Errorf("OptString(missing) = %q, %v", s, err)
	}
	if n, err := r.Int("timeout", 5); n != 30 || err != nil {
		t.Errorf("Int(timeout) = %d, %v", n, err)
	}
	if n, err := r.Int("missing", 5); n != 5 || err != nil {
		t.Errorf("Int(missing) = %d, %v", n, err)
	}
	for _, name := range []string{"bad", "f", "groupID", "onlineUserOnly"} {
		if _, err := r.Int(name, 0); !errors.Is(err, ErrBadParam) {
			t.Errorf("Int(%s): err = %v, want ErrBadParam", name, err)
		}
	}
	if b, err := r.Bool("onlineUserOnly", false); !b || err != nil {
		t.Errorf("Bool = %v, %v", b, err)
	}
	if _, err := r.Bool("bad", false); !errors.Is(err, ErrBadParam) {
		t.Errorf("Bool(bad): %v", err)
	}
	if l, err := r.StringList("inviteeList"); !slices.Equal(l, []string{"a", "b"}) || err != nil {
		t.Errorf("StringList = %v, %v", l, err)
	}
	for _, name := range []string{"list", "groupID", "missing", "nul"} {
		if _, err := r.StringList(name); !errors.Is(err, ErrBadParam) {
			t.Errorf("StringList(%s): err = %v, want ErrBadParam", name, err)
		}
	}
	p, err := r.PushInfo("offlinePushInfo")
	if err != nil || p != (PushInfo{Title: "t", Desc: "d", Ext: "e", DisablePush: true}) {
		t.Errorf("PushInfo = %+v, %v", p, err)
	}
	for _, bad := range []string{`"x"`, `[1]`, `{"title":1}`, `{"disablePush":"yes"}`} {
		r, _ := DecodeRequest([]byte(`{"id":1,"p":` + bad + `}`))
		if _, err := r.PushInfo("p"); !errors.Is(err, ErrBadParam) {
			t.Errorf("PushInfo(%s): err = %v, want ErrBadParam", bad, err)
		}
	}
}

func TestEventEncodingKeepsEmptyFields(t *testing.T) {
	empty, zero := "", 0
	b := Event{Event: "onReceiveNewInvitation", InviteID: "i", Inviter: new(string), GroupID: &empty,
		InviteeList: []string{"bob"}, Data: &empty, Timeout: &zero}.Encode()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"event", "inviteID", "inviter", "groupID", "inviteeList", "data", "timeout"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s missing from %s", k, b)
		}
	}
	if _, ok := m["invitee"]; ok {
		t.Errorf("invitee present in %s", b)
	}
}
