package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/signald/signald/internal/protocol"
)

// Frame is one server frame, reduced to the fields the bench looks at. The
// byte slices alias the connection's read buffer: they are valid only while
// the handler that got the frame runs, so a handler copies what it keeps
// (string(f.InviteID)). This way reading a frame allocates nothing in the
// common case, where a server frame's strings hold no escapes.
type Frame struct {
	ID       int64  // 0 for events
	Code     int    // reply code
	Event    []byte // event name; empty for replies
	InviteID []byte
	Desc     []byte
	Data     []byte // the raw JSON value of "data" (a string, an object, null)
	EventID  []byte // a kept event's ID (PROTOCOL.md §9); empty when not kept
	Size     int    // bytes of the whole frame (what the server keeps of a kept event)
}

// EventKind names the events the bench reacts to.
type EventKind uint8

// Events of PROTOCOL.md §6.
const (
	EvNone EventKind = iota // a reply
	EvNewInvitation
	EvAccepted
	EvRejected
	EvCancelled
	EvTimeout
	EvOther
)

// Kind classifies the frame without allocating (the compiler turns
// string(bytes) in a switch into a plain comparison).
func (f *Frame) Kind() EventKind {
	if len(f.Event) == 0 {
		return EvNone
	}
	switch string(f.Event) {
	case "onReceiveNewInvitation":
		return EvNewInvitation
	case "onInviteeAccepted":
		return EvAccepted
	case "onInviteeRejected":
		return EvRejected
	case "onInvitationCancelled":
		return EvCancelled
	case "onInvitationTimeout":
		return EvTimeout
	}
	return EvOther
}

// DataString returns data when it is a JSON string (an invite reply's
// inviteID), else "".
func (f *Frame) DataString() string {
	s, err := stringValue(f.Data)
	if err != nil {
		return ""
	}
	return string(s)
}

var errFrame = errors.New("malformed frame")

// ParseFrame fills f from one server frame. It is a scanner, not a
// validator: it walks the top-level members of the object, keeps the values
// of the fields Frame has and skips the rest (nested objects and arrays
// included) without decoding them. encoding/json would do the same work
// through reflection and allocate every string; on a busy run this parse is
// the bench's hottest code.
func ParseFrame(b []byte, f *Frame) error {
	*f = Frame{Size: len(b)}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errFrame
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errFrame
		}
		end, err := skipString(b, i)
		if err != nil {
			return err
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return errFrame
		}
		i = skipSpace(b, i+1)
		end, err = skipValue(b, i)
		if err != nil {
			return err
		}
		if err := f.set(key, b[i:end]); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return errFrame
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return nil
		default:
			return errFrame
		}
	}
}

func (f *Frame) set(key, val []byte) error {
	var err error
	switch string(key) {
	case "id":
		f.ID, err = intValue(val)
	case "code":
		var c int64
		c, err = intValue(val)
		f.Code = int(c)
	case "event":
		f.Event, err = stringValue(val)
	case "inviteID":
		f.InviteID, err = stringValue(val)
	case "desc":
		f.Desc, err = stringValue(val)
	case "data":
		f.Data = val
	case "eventID":
		f.EventID, err = stringValue(val)
	}
	return err
}

// intValue parses a JSON integer; null is 0.
func intValue(v []byte) (int64, error) {
	if string(v) == "null" {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, errFrame
	}
	return n, nil
}

// stringValue returns the contents of a JSON string value (null is empty).
// Only a string with escapes costs an allocation.
func stringValue(v []byte) ([]byte, error) {
	if len(v) == 0 || string(v) == "null" {
		return nil, nil
	}
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, errFrame
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, errFrame
	}
	return []byte(s), nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errFrame
}

// skipValue returns the index just past the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errFrame
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errFrame
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' &&
			b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		if j == i {
			return 0, errFrame
		}
		return j, nil
	}
}

// appendString appends s as a JSON string. User and invitation IDs are
// plain ASCII, so the loop rarely does more than copy.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
		i++
	}
	return append(b, '"')
}

func appendHead(b []byte, id int64, op string) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"op":"`...)
	b = append(b, op...)
	return append(b, '"')
}

// AppendInvite appends a one-to-one invite request.
func AppendInvite(b []byte, id int64, invitee, data string, timeout int) []byte {
	b = appendHead(b, id, protocol.OpInvite)
	b = append(b, `,"invitee":`...)
	b = appendString(b, invitee)
	b = append(b, `,"data":`...)
	b = appendString(b, data)
	b = append(b, `,"timeout":`...)
	b = strconv.AppendInt(b, int64(timeout), 10)
	return append(b, '}')
}

// AppendInviteInGroup appends a group invite; inviteeList is the JSON array
// of invitees, encoded once per run (see EncodeList).
func AppendInviteInGroup(b []byte, id int64, groupID string, inviteeList []byte, data string, timeout int) []byte {
	b = appendHead(b, id, protocol.OpInviteInGroup)
	b = append(b, `,"groupID":`...)
	b = appendString(b, groupID)
	b = append(b, `,"inviteeList":`...)
	b = append(b, inviteeList...)
	b = append(b, `,"data":`...)
	b = appendString(b, data)
	b = append(b, `,"timeout":`...)
	b = strconv.AppendInt(b, int64(timeout), 10)
	return append(b, '}')
}

// AppendAnswer appends an op that takes only an inviteID: accept, reject,
// cancel.
func AppendAnswer(b []byte, id int64, op, inviteID string) []byte {
	b = appendHead(b, id, op)
	b = append(b, `,"inviteID":`...)
	b = appendString(b, inviteID)
	return append(b, '}')
}

// AppendLogin appends a login request.
func AppendLogin(b []byte, id int64, userID, userSig string) []byte {
	b = appendHead(b, id, protocol.OpLogin)
	b = append(b, `,"userID":`...)
	b = appendString(b, userID)
	b = append(b, `,"userSig":`...)
	b = appendString(b, userSig)
	return append(b, '}')
}

// EncodeList returns a JSON array of strings.
func EncodeList(items []string) []byte {
	b := []byte{'['}
	for i, s := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}
