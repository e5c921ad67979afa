// Package protocol is signald's wire protocol, version 1: the frames a
// client and the server exchange over the WebSocket at /v1/ws. It is shared
// by the server and by clients written in Go (tests, the load tool) and knows
// nothing of how requests are served.
//
// The flow of one connection:
//
//	client                                  server
//	  | --- {"id":1,"op":"login",...} -------> |  must come first, within the login deadline
//	  | <-- {"id":1,"code":0,"data":{...}} --- |
//	  | <-- pending onReceiveNewInvitation --- |  invitations rung while the user was away
//	  | --- {"id":2,"op":"invite",...} ------> |
//	  | <-- {"id":2,"code":0,"data":"<id>"} -- |
//	  | <-- {"event":"onInviteeAccepted",...}  |  events, at any time, never with an id
//
// Every frame is one UTF-8 text frame holding one JSON object. Requests carry
// a positive "id" and an "op" with the op's parameters beside it; each gets
// exactly one reply with the same id. The full contract is api/README.md.
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Version is the protocol version this package speaks.
const Version = 1

// Ops a client may send.
const (
	OpLogin            = "login"
	OpInvite           = "invite"
	OpInviteInGroup    = "inviteInGroup"
	OpCancel           = "cancel"
	OpAccept           = "accept"
	OpReject           = "reject"
	OpModifyInvitation = "modifyInvitation"
	OpGetSignalingInfo = "getSignalingInfo"
	OpPing             = "ping"
	// Devices and offline push (api/README.md §13).
	OpSetOfflinePushConfig = "setOfflinePushConfig"
	OpDoBackground         = "doBackground"
	OpDoForeground         = "doForeground"
)

// Reply codes. The numbers are Tencent Cloud IM's where one fits, so that an
// app written against V2TIMSignalingManager needs no new error handling.
const (
	CodeOK              = 0
	CodeNotLoggedIn     = 6014
	CodeInvalidParams   = 6017
	CodeInviteEnded     = 8010 // unknown inviteID, or this part of it has ended
	CodeNoPermission    = 8011
	CodeTooManyPending  = 8012 // an invitee is pending in too many invitations
	CodeTooManyActive   = 8013 // the inviter has too many active invitations
	CodeTooManyInvitees = 10005
	CodeNotMember       = 10007
	CodeGroupNotFound   = 10010
	CodeRateLimited     = 60018
	CodeSigExpired      = 70001
	CodeSigEmpty        = 70002
	CodeSigInvalid      = 70003
	CodeSigWrongUser    = 70013
	CodeDataTooLarge    = 80002
	CodeInternal        = 90994 // the request may or may not have taken effect
)

// descs are the desc of each code's reply: one text per code, the same on
// every store and instance, so that a client may show it and a test may
// compare it. Why a request was refused in detail goes to the server's
// log (debug level), not to the wire: an error's text depends on the layer
// that raised it.
var descs = map[int]string{
	CodeOK:              "",
	CodeNotLoggedIn:     "not logged in",
	CodeInvalidParams:   "invalid parameters",
	CodeInviteEnded:     "invitation unknown or already ended",
	CodeNoPermission:    "no permission for this invitation",
	CodeTooManyPending:  "an invitee has too many pending invitations",
	CodeTooManyActive:   "too many active invitations",
	CodeTooManyInvitees: "too many invitees",
	CodeNotMember:       "not a member of the group",
	CodeGroupNotFound:   "group not found",
	CodeRateLimited:     "rate limit exceeded",
	CodeSigExpired:      "userSig expired",
	CodeSigEmpty:        "userSig empty",
	CodeSigInvalid:      "userSig invalid",
	CodeSigWrongUser:    "userSig issued for another userID",
	CodeDataTooLarge:    "data larger than 12 KiB",
	CodeInternal:        "internal error; the request may or may not have taken effect",
}

// Desc returns the desc of a reply with code.
func Desc(code int) string {
	if d, ok := descs[code]; ok {
		return d
	}
	return "error " + strconv.Itoa(code)
}

// Codes returns every reply code, in increasing order.
func Codes() []int {
	codes := make([]int, 0, len(descs))
	for c := range descs {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	return codes
}

// ErrBadParam is wrapped by every parameter decoding error: the request gets
// CodeInvalidParams.
var ErrBadParam = errors.New("invalid parameter")

// Request is one decoded client frame. Parameters are decoded on demand by
// the typed getters, so that each op takes exactly the fields it knows and a
// field of the wrong JSON type is reported by name.
type Request struct {
	ID     int64
	Op     string
	fields []field
}

// DecodeRequest parses a client frame. It fails (and the reply has id 0)
// when the frame is not a JSON object or has no positive integer id. A
// missing or non-string op decodes as Op "" so that the caller can answer
// with the request's id.
func DecodeRequest(frame []byte) (*Request, error) {
	fields, err := splitObject(frame)
	if err != nil {
		return nil, fmt.Errorf("frame is not a JSON object: %w", ErrBadParam)
	}
	r := &Request{fields: fields}
	id, ok, err := r.wholeNumber("id")
	if err != nil || !ok || id <= 0 {
		return nil, fmt.Errorf("id must be a positive integer: %w", ErrBadParam)
	}
	r.ID = id
	r.Op, _, _ = r.optString("op")
	return r, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// lookup returns a present, non-null field.
func (r *Request) lookup(name string) (json.RawMessage, bool) {
	for i := len(r.fields) - 1; i >= 0; i-- { // the last of duplicate keys wins
		if f := r.fields[i]; string(f.key) == name {
			if isNull(f.val) {
				return nil, false
			}
			return f.val, true
		}
	}
	return nil, false
}

// Has reports whether a parameter is present and not null.
func (r *Request) Has(name string) bool {
	_, ok := r.lookup(name)
	return ok
}

func (r *Request) optString(name string) (string, bool, error) {
	raw, ok := r.lookup(name)
	if !ok {
		return "", false, nil
	}
	s, ok := unquote(raw)
	if !ok {
		return "", false, fmt.Errorf("%s must be a string: %w", name, ErrBadParam)
	}
	return s, true, nil
}

// String returns a required string parameter.
func (r *Request) String(name string) (string, error) {
	s, ok, err := r.optString(name)
	if err == nil && !ok {
		err = fmt.Errorf("%s is required: %w", name, ErrBadParam)
	}
	return s, err
}

// OptString returns an optional string parameter, "" when absent or null.
func (r *Request) OptString(name string) (string, error) {
	s, _, err := r.optString(name)
	return s, err
}

// wholeNumber decodes a JSON number that is a whole number in int64 range
// (7 and 7.0 are, 7.5 and "7" are not).
func (r *Request) wholeNumber(name string) (int64, bool, error) {
	raw, ok := r.lookup(name)
	if !ok {
		return 0, false, nil
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return 0, false, fmt.Errorf("%s must be a number: %w", name, ErrBadParam)
	}
	// The frame passed json.Valid, so raw is a well-formed JSON number.
	if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return i, true, nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false, fmt.Errorf("%s must be a whole number: %w", name, ErrBadParam)
	}
	return int64(f), true, nil
}

// Int returns an optional whole-number parameter, def when absent or null.
func (r *Request) Int(name string, def int64) (int64, error) {
	n, ok, err := r.wholeNumber(name)
	if err != nil || !ok {
		return def, err
	}
	return n, nil
}

// Bool returns an optional boolean parameter, def when absent or null.
func (r *Request) Bool(name string, def bool) (bool, error) {
	raw, ok := r.lookup(name)
	if !ok {
		return def, nil
	}
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return def, fmt.Errorf("%s must be true or false: %w", name, ErrBadParam)
}

// StringList returns a required array-of-strings parameter.
func (r *Request) StringList(name string) ([]string, error) {
	raw, ok := r.lookup(name)
	if !ok {
		return nil, fmt.Errorf("%s is required: %w", name, ErrBadParam)
	}
	var items []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return nil, fmt.Errorf("%s must be an array of strings: %w", name, ErrBadParam)
	}
	out := make([]string, len(items))
	for i, it := range items {
		s, ok := unquote(it)
		if !ok {
			return nil, fmt.Errorf("%s must be an array of strings: %w", name, ErrBadParam)
		}
		out[i] = s
	}
	return out, nil
}

// PushInfo is the optional offlinePushInfo object of invite and inviteInGroup.
type PushInfo struct {
	Title       string `json:"title"`
	Desc        string `json:"desc"`
	Ext         string `json:"ext"`
	DisablePush bool   `json:"disablePush"`
}

// PushInfo returns the optional offlinePushInfo parameter. Unknown keys are
// ignored (vendor SDKs carry more than signald uses); known keys of the wrong
// type are an error.
func (r *Request) PushInfo(name string) (PushInfo, error) {
	var p PushInfo
	raw, ok := r.lookup(name)
	if !ok {
		return p, nil
	}
	if raw[0] != '{' {
		return p, fmt.Errorf("%s must be an object: %w", name, ErrBadParam)
	}
	sub, err := DecodeObject(raw)
	if err != nil {
		return p, fmt.Errorf("%s must be an object: %w", name, ErrBadParam)
	}
	if p.Title, err = sub.OptString("title"); err == nil {
		if p.Desc, err = sub.OptString("desc"); err == nil {
			if p.Ext, err = sub.OptString("ext"); err == nil {
				p.DisablePush, err = sub.Bool("disablePush", false)
			}
		}
	}
	if err != nil {
		return PushInfo{}, fmt.Errorf("%s.%w", name, err)
	}
	return p, nil
}

// DecodeObject parses any JSON object for the typed getters, without the
// id requirement of a request.
func DecodeObject(raw []byte) (*Request, error) {
	fields, err := splitObject(raw)
	if err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", ErrBadParam)
	}
	return &Request{fields: fields}, nil
}

// Reply answers one request.
type Reply struct {
	ID   int64  `json:"id"`
	Code int    `json:"code"`
	Desc string `json:"desc"`
	Data any    `json:"data"`
}

// Encode returns the reply as a frame.
func (r Reply) Encode() []byte {
	b, err := json.Marshal(r)
	if err != nil { // Data is always one of this package's types
		panic(fmt.Sprintf("protocol: encode reply: %v", err))
	}
	return b
}

// LoginData is the data of a successful login reply.
type LoginData struct {
	UserID     string `json:"userID"`
	ServerTime int64  `json:"serverTime"`
	// LastEventID is the newest kept event's ID for this user ("" if none).
	LastEventID string `json:"lastEventID"`
	// Recovered is present only when the login carried lastEventID.
	Recovered *bool `json:"recovered,omitempty"`
}

// PingData is the data of a ping reply.
type PingData struct {
	ServerTime int64 `json:"serverTime"`
}

// SignalingInfo is the data of a getSignalingInfo reply.
type SignalingInfo struct {
	InviteID       string            `json:"inviteID"`
	GroupID        string            `json:"groupID"`
	Inviter        string            `json:"inviter"`
	InviteeList    []string          `json:"inviteeList"`
	Data           string            `json:"data"`
	Timeout        int               `json:"timeout"`
	OnlineUserOnly bool              `json:"onlineUserOnly"`
	CreatedAt      int64             `json:"createdAt"`
	Deadline       int64             `json:"deadline"`
	States         map[string]string `json:"states"`
}

// Event is a server frame that is not a reply. Only the fields of its kind
// are set; the others are left out of the frame.
type Event struct {
	Event       string   `json:"event"`
	InviteID    string   `json:"inviteID"`
	Inviter     *string  `json:"inviter,omitempty"`
	GroupID     *string  `json:"groupID,omitempty"`
	InviteeList []string `json:"inviteeList,omitempty"`
	Invitee     *string  `json:"invitee,omitempty"`
	Data        *string  `json:"data,omitempty"`
	Timeout     *int     `json:"timeout,omitempty"`
	EventID     string   `json:"eventID,omitempty"`
}

// Encode returns the event as a frame.
func (e Event) Encode() []byte {
	b, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("protocol: encode event: %v", err))
	}
	return b
}

// Frame is what a Go client reads: a reply (ID > 0, or a reply to a frame
// without a usable id: ID 0 and Event "") or an event.
type Frame struct {
	ID          int64           `json:"id"`
	Code        int             `json:"code"`
	Desc        string          `json:"desc"`
	Data        json.RawMessage `json:"data"`
	Event       string          `json:"event"`
	InviteID    string          `json:"inviteID"`
	Inviter     string          `json:"inviter"`
	GroupID     string          `json:"groupID"`
	InviteeList []string        `json:"inviteeList"`
	Invitee     string          `json:"invitee"`
	Timeout     int             `json:"timeout"`
	EventID     string          `json:"eventID"`
}

// IsEvent reports whether the frame is an event rather than a reply.
func (f *Frame) IsEvent() bool { return f.Event != "" }

// EventData returns an event's data field (which Frame keeps raw because in
// replies it can be any JSON value).
func (f *Frame) EventData() string {
	var s string
	_ = json.Unmarshal(f.Data, &s)
	return s
}
