package protocol

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecodeRequest holds the decoder to its promises on any input: no
// panic; either a request with a positive id or an ErrBadParam; and every
// getter answers a value or ErrBadParam. Seeds are in testdata/fuzz.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"op":"login","userID":"u","userSig":"x"}`,
		`{"id":2,"op":"invite","invitee":"bob","data":"","timeout":30,"onlineUserOnly":false,"offlinePushInfo":{"title":"t"}}`,
		`{"id":3,"op":"inviteInGroup","groupID":"g","inviteeList":["a","b"],"data":"d"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		r, err := DecodeRequest(frame)
		if err != nil {
			if !errors.Is(err, ErrBadParam) {
				t.Fatalf("error %v does not wrap ErrBadParam", err)
			}
			return
		}
		if r.ID <= 0 {
			t.Fatalf("accepted id %d", r.ID)
		}
		if !json.Valid(frame) {
			t.Fatalf("accepted invalid JSON %q", frame)
		}
		check := func(err error) {
			if err != nil && !errors.Is(err, ErrBadParam) {
				t.Fatalf("getter error %v does not wrap ErrBadParam", err)
			}
		}
		for _, name := range []string{"op", "userID", "invitee", "data", "timeout", "inviteeList", "offlinePushInfo", "onlineUserOnly"} {
			_, err := r.String(name)
			check(err)
			_, err = r.Int(name, 0)
			check(err)
			_, err = r.Bool(name, false)
			check(err)
			_, err = r.StringList(name)
			check(err)
			_, err = r.PushInfo(name)
			check(err)
		}
	})
}
