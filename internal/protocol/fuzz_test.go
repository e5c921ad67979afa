package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
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

// FuzzSplitMatchesStdlib holds the hand-written object splitter to
// encoding/json: the same frames are objects, with the same members and the
// same raw values (last duplicate wins). Invalid UTF-8 is left out: the
// splitter keeps such bytes as they are, where encoding/json replaces them.
func FuzzSplitMatchesStdlib(f *testing.F) {
	for _, s := range []string{`{"id":1,"op":"ping"}`, `{"a":{"b":[1,"}"]},"c":"\"q\"","a":2}`, `{"\u0069d":3}`, ` { } `, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if !utf8.Valid(frame) {
			return
		}
		var want map[string]json.RawMessage
		stdErr := json.Unmarshal(frame, &want)
		fields, err := splitObject(frame)
		if (stdErr != nil || want == nil) != (err != nil) {
			t.Fatalf("%q: encoding/json error %v (nil map %v), splitObject error %v", frame, stdErr, want == nil, err)
		}
		if err != nil {
			return
		}
		got := map[string][]byte{}
		for _, fl := range fields {
			got[string(fl.key)] = fl.val
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d distinct members, encoding/json %d", frame, len(got), len(want))
		}
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				t.Fatalf("%q: member %q = %q, encoding/json %q", frame, k, got[k], v)
			}
		}
	})
}
