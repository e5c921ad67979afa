package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/signald/signald/internal/apptest"
	"github.com/signald/signald/internal/protocol"
)

// The examples of api/README.md and api/asyncapi.yaml are held to frames
// recorded from a real signald, on each store: every reply, event and
// object they show must have the fields a real one has (no more, no fewer),
// of the same JSON types, with IDs shaped as the server issues them; every
// request they show must be one the server accepts the shape of.
//
// What is read from the documents:
//   - api/README.md: every ```json block (one or more JSON objects) and
//     every other block whose lines start with "→ " (sent) or "← "
//     (received), each such line holding one JSON object (a "# comment"
//     may follow it). In such a transcript a reply is of the op of the
//     request with its id shown before it in the same block.
//   - api/asyncapi.yaml: the examples of every message under
//     components/messages, each written as "payload: {...}", a JSON object
//     on one line (JSON is YAML flow style), so that this test needs no
//     YAML library. A payload written otherwise fails the test.

const (
	docREADME   = "api/README.md"
	docAsyncAPI = "api/asyncapi.yaml"
)

// inviteIDShape is what crypto/rand.Text returns, which the engine uses.
var inviteIDShape = regexp.MustCompile(`^[A-Z2-7]{26}$`)

// opParams are the parameters of each op (PROTOCOL.md §3 and §11), besides
// id and op.
var opParams = map[string][]string{
	protocol.OpLogin:                {"userID", "userSig", "lastEventID", "deviceID"},
	protocol.OpInvite:               {"invitee", "data", "timeout", "onlineUserOnly", "offlinePushInfo"},
	protocol.OpInviteInGroup:        {"groupID", "inviteeList", "data", "timeout", "onlineUserOnly", "offlinePushInfo"},
	protocol.OpCancel:               {"inviteID", "data"},
	protocol.OpAccept:               {"inviteID", "data"},
	protocol.OpReject:               {"inviteID", "data"},
	protocol.OpModifyInvitation:     {"inviteID", "data"},
	protocol.OpGetSignalingInfo:     {"inviteID"},
	protocol.OpPing:                 nil,
	protocol.OpSetOfflinePushConfig: {"platform", "token", "sandbox", "deviceID"},
	protocol.OpDoBackground:         nil,
	protocol.OpDoForeground:         nil,
}

// Kinds of server frame (and of other objects the documents show). Frames
// of one kind all have the same fields.
const (
	kindRequest       = "request"
	kindLogin         = "login reply"
	kindLoginResume   = "login reply (to a login with lastEventID)"
	kindInviteID      = "invite / inviteInGroup reply"
	kindSignalingInfo = "getSignalingInfo reply"
	kindPing          = "ping reply"
	kindNull          = "reply with data null (cancel, accept, reject, modifyInvitation, setOfflinePushConfig, doBackground, doForeground)"
	kindError         = "error reply"
	kindInvitation    = "invitation (getSignalingInfo reply data)"
	kindClaims        = "userSig claims"
	kindEventPrefix   = "event "
)

// replyKind is the kind of the successful reply to op.
func replyKind(op string, resume bool) string {
	switch op {
	case protocol.OpLogin:
		if resume {
			return kindLoginResume
		}
		return kindLogin
	case protocol.OpInvite, protocol.OpInviteInGroup:
		return kindInviteID
	case protocol.OpGetSignalingInfo:
		return kindSignalingInfo
	case protocol.OpPing:
		return kindPing
	}
	return kindNull
}

// rawObject is a JSON object with its fields kept raw, so that a field that is
// absent is told from one that is empty.
type rawObject map[string]json.RawMessage

func parseRawObject(raw []byte) (rawObject, error) {
	var o rawObject
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, err
	}
	if o == nil {
		return nil, fmt.Errorf("%s is not a JSON object", raw)
	}
	return o, nil
}

func (o rawObject) str(key string) (string, bool) {
	var s string
	raw, ok := o[key]
	if !ok || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func (o rawObject) int(key string) (int64, bool) {
	var n int64
	raw, ok := o[key]
	if !ok || json.Unmarshal(raw, &n) != nil {
		return 0, false
	}
	return n, true
}

// jsonTypeOf names the JSON type of a value; whole numbers are "integer".
func jsonTypeOf(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	if bytes.ContainsAny(raw, ".eE") {
		return "number"
	}
	return "integer"
}

// ---- the examples in the documents ----

// docExample is one object shown in a document.
type docExample struct {
	where string // file:line, and the example's name in asyncapi.yaml
	obj   rawObject
	kind  string // "" until classified
	// in a transcript, the reply of a request shown before it
	op     string
	resume bool
	// asyncapi.yaml: the message it is an example of
	message string
}

// readmeExamples returns the objects of api/README.md's JSON blocks and
// transcripts.
func readmeExamples(t *testing.T) []*docExample {
	t.Helper()
	lines := docLines(t, docREADME)
	var out []*docExample
	for i := 0; i < len(lines); i++ {
		lang, ok := strings.CutPrefix(lines[i], "```")
		if !ok {
			continue
		}
		start := i + 1
		end := start
		for end < len(lines) && !strings.HasPrefix(lines[end], "```") {
			end++
		}
		if end == len(lines) {
			t.Fatalf("%s:%d: a code block that never ends", docREADME, i+1)
		}
		block := lines[start:end]
		i = end
		switch {
		case strings.TrimSpace(lang) == "json":
			out = append(out, jsonBlock(t, start+1, block)...)
		case slices.ContainsFunc(block, isTranscriptLine):
			out = append(out, transcript(t, start+1, block)...)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no examples found", docREADME)
	}
	return out
}

func isTranscriptLine(l string) bool {
	return strings.HasPrefix(l, "→ ") || strings.HasPrefix(l, "← ")
}

func docLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile("../../" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\n")
}

// jsonBlock returns the objects of a ```json block whose first line is
// line first of the file.
func jsonBlock(t *testing.T, first int, block []string) []*docExample {
	t.Helper()
	text := strings.Join(block, "\n")
	dec := json.NewDecoder(strings.NewReader(text))
	var out []*docExample
	for {
		// The line where the value starts: after the whitespace that
		// precedes it.
		off := int(dec.InputOffset())
		off += len(text[off:]) - len(strings.TrimLeft(text[off:], " \t\n"))
		line := first + strings.Count(text[:off], "\n")
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return out
		}
		where := fmt.Sprintf("%s:%d", docREADME, line)
		if err != nil {
			t.Fatalf("%s: a json block that is not JSON: %v", where, err)
		}
		obj, err := parseRawObject(raw)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		out = append(out, &docExample{where: where, obj: obj})
	}
}

// transcript returns the frames of a block of "→ " and "← " lines.
func transcript(t *testing.T, first int, block []string) []*docExample {
	t.Helper()
	type req struct {
		op     string
		resume bool
	}
	sent := map[int64]req{}
	var out []*docExample
	for n, l := range block {
		where := fmt.Sprintf("%s:%d", docREADME, first+n)
		rest, isSent := strings.CutPrefix(l, "→ ")
		if !isSent {
			var ok bool
			if rest, ok = strings.CutPrefix(l, "← "); !ok {
				if strings.TrimSpace(l) != "" && !strings.HasPrefix(strings.TrimSpace(l), "#") {
					t.Fatalf("%s: a transcript line that is neither → nor ←: %q", where, l)
				}
				continue
			}
		}
		var raw json.RawMessage
		if err := json.NewDecoder(strings.NewReader(rest)).Decode(&raw); err != nil {
			t.Fatalf("%s: not a JSON frame: %v", where, err)
		}
		obj, err := parseRawObject(raw)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		ex := &docExample{where: where, obj: obj}
		id, _ := obj.int("id")
		if isSent {
			op, _ := obj.str("op")
			_, resume := obj["lastEventID"]
			sent[id] = req{op, resume}
		} else if _, isEvent := obj["event"]; !isEvent {
			if r, ok := sent[id]; ok {
				ex.op, ex.resume = r.op, r.resume
			}
		}
		out = append(out, ex)
	}
	return out
}

// asyncAPIExamples returns the example payloads of every message of
// api/asyncapi.yaml, and fails the test for a message without one.
func asyncAPIExamples(t *testing.T) []*docExample {
	t.Helper()
	lines := docLines(t, docAsyncAPI)
	indent := func(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }
	var out []*docExample
	var messages []string
	counts := map[string]int{}
	inMessages := false
	message, example := "", ""
	examplesIndent := -1 // of the current message's "examples:", -1 outside
	for i, l := range lines {
		trimmed := strings.TrimSpace(l)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		in := indent(l)
		switch {
		case l == "components:":
			continue
		case in == 2 && trimmed == "messages:":
			inMessages = true
			continue
		case in <= 2:
			inMessages = false
			continue
		}
		if !inMessages {
			continue
		}
		if in == 4 && strings.HasSuffix(trimmed, ":") {
			message = strings.TrimSuffix(trimmed, ":")
			messages = append(messages, message)
			examplesIndent = -1
			continue
		}
		if examplesIndent >= 0 && in <= examplesIndent {
			examplesIndent = -1
		}
		if trimmed == "examples:" {
			examplesIndent = in
			continue
		}
		if examplesIndent < 0 {
			continue
		}
		if name, ok := strings.CutPrefix(trimmed, "- name:"); ok {
			example = strings.TrimSpace(name)
			continue
		}
		item := strings.TrimPrefix(trimmed, "- ")
		payload, ok := strings.CutPrefix(item, "payload:")
		if !ok {
			continue
		}
		where := fmt.Sprintf("%s:%d (message %s, example %s)", docAsyncAPI, i+1, message, example)
		payload = strings.TrimSpace(payload)
		if !strings.HasPrefix(payload, "{") {
			t.Fatalf("%s: write the payload as a JSON object on the payload line, so that it can be checked", where)
		}
		obj, err := parseRawObject([]byte(payload))
		if err != nil {
			t.Fatalf("%s: the payload is not a JSON object: %v", where, err)
		}
		out = append(out, &docExample{where: where, obj: obj, message: message})
		counts[message]++
	}
	if len(messages) == 0 {
		t.Fatalf("%s: no messages under components/messages", docAsyncAPI)
	}
	for _, m := range messages {
		if counts[m] == 0 {
			t.Errorf("%s: message %s has no example payload", docAsyncAPI, m)
		}
	}
	return out
}

// classify sets ex.kind, or fails the test when the example is none of
// the kinds.
func classify(t *testing.T, ex *docExample) {
	t.Helper()
	o := ex.obj
	_, hasOp := o["op"]
	event, hasEvent := o["event"]
	code, hasCode := o.int("code")
	switch {
	case hasOp:
		ex.kind = kindRequest
	case hasEvent:
		var name string
		if json.Unmarshal(event, &name) != nil {
			t.Errorf("%s: event is not a string", ex.where)
			return
		}
		ex.kind = kindEventPrefix + name
	case hasCode && code != 0:
		ex.kind = kindError
	case hasCode && ex.op != "":
		ex.kind = replyKind(ex.op, ex.resume)
	case hasCode:
		// A reply shown without its request: its data tells which.
		data := o["data"]
		switch jsonTypeOf(data) {
		case "null":
			ex.kind = kindNull
		case "string":
			ex.kind = kindInviteID
		case "object":
			d, _ := parseRawObject(data)
			_, user := d["userID"]
			_, recovered := d["recovered"]
			_, states := d["states"]
			_, serverTime := d["serverTime"]
			switch {
			case user:
				ex.kind = replyKind(protocol.OpLogin, recovered)
			case states:
				ex.kind = kindSignalingInfo
			case serverTime:
				ex.kind = kindPing
			}
		}
	case o["states"] != nil && o["inviteID"] != nil:
		ex.kind = kindInvitation
	case o["sub"] != nil && o["exp"] != nil:
		ex.kind = kindClaims
	}
	if ex.kind == "" {
		t.Errorf("%s: cannot tell which frame this example is: %s", ex.where, asJSON(o))
		return
	}
	// An asyncapi.yaml example must be of its message.
	switch m := ex.message; {
	case m == "":
	case m == "reply":
		if !hasCode || hasEvent || hasOp {
			t.Errorf("%s: an example of the reply message that is not a reply", ex.where)
		}
	case strings.HasPrefix(m, "on"):
		if ex.kind != kindEventPrefix+m {
			t.Errorf("%s: an example of event %s that is a %s", ex.where, m, ex.kind)
		}
	default:
		if op, _ := o.str("op"); op != m {
			t.Errorf("%s: an example of request %s whose op is %q", ex.where, m, op)
		}
	}
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// ---- the frames of a real server ----

// recording holds the frames a real signald sent, by kind.
type recording struct {
	frames   map[string][]rawObject
	eventIDs map[string]string // shape → an example of an eventID the server issued
}

func newRecording() *recording {
	return &recording{frames: map[string][]rawObject{}, eventIDs: map[string]string{}}
}

// idShape maps every digit to 9 and every letter to a: two eventIDs have
// the same shape when they differ only in their digits and letters.
func idShape(id string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9':
			return '9'
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			return 'a'
		}
		return r
	}, id)
}

func (r *recording) add(t *testing.T, kind string, f rawObject) {
	t.Helper()
	r.frames[kind] = append(r.frames[kind], f)
	// The shapes of the IDs the server issues, which the documents'
	// examples must have.
	for _, o := range []rawObject{f, dataObject(f)} {
		if id, ok := o.str("inviteID"); ok && !inviteIDShape.MatchString(id) {
			t.Errorf("the server sent inviteID %q, not of the shape %s that api/ shows: update api/ and this test", id, inviteIDShape)
		}
		for _, key := range []string{"eventID", "lastEventID"} {
			if id, ok := o.str(key); ok && id != "" {
				r.eventIDs[idShape(id)] = id
			}
		}
	}
	if kind == kindInviteID {
		var id string
		if json.Unmarshal(f["data"], &id) != nil || !inviteIDShape.MatchString(id) {
			t.Errorf("the server answered an invite with data %s, not an inviteID of the shape %s", f["data"], inviteIDShape)
		}
	}
}

// dataObject returns a reply's data when it is an object.
func dataObject(f rawObject) rawObject {
	if _, isEvent := f["event"]; isEvent || jsonTypeOf(f["data"]) != "object" {
		return nil
	}
	d, _ := parseRawObject(f["data"])
	return d
}

// wireConn is a WebSocket connection that keeps every frame as the server
// sent it: the test client decodes frames into protocol.Frame, which cannot
// tell an absent field from an empty one.
type wireConn struct {
	t       *testing.T
	rec     *recording // nil: record nothing
	ws      *websocket.Conn
	in      chan []byte
	stop    chan struct{} // closed to stop the reader
	done    chan struct{}
	err     error       // why the reader stopped; set before done is closed
	pending []rawObject // frames read while waiting for another
	lastID  int64
}

func dialWire(t *testing.T, dm *daemon, rec *recording) *wireConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, dm.ws, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(1 << 20)
	w := &wireConn{t: t, rec: rec, ws: ws, in: make(chan []byte, 4096), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				w.err = err
				return
			}
			select {
			case w.in <- b:
			case <-w.stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(w.stop)
		_ = ws.CloseNow()
		<-w.done
	})
	return w
}

// read returns the next frame, recording it when it is an event.
func (w *wireConn) read() rawObject {
	w.t.Helper()
	select {
	case b := <-w.in:
		f, err := parseRawObject(b)
		if err != nil {
			w.t.Fatalf("the server sent a frame that is not a JSON object: %q", b)
		}
		if name, ok := f.str("event"); ok && w.rec != nil {
			kind := kindEventPrefix + name
			if _, kept := f["eventID"]; !kept {
				kind += " (not kept)"
			}
			w.rec.add(w.t, kind, f)
		}
		return f
	case <-w.done:
		w.t.Fatalf("connection closed: %v", w.err)
	case <-time.After(waitFor):
		w.t.Fatal("no frame from the server")
	}
	return nil
}

// reply waits for the reply with id, keeping the events read meanwhile.
func (w *wireConn) reply(id int64) rawObject {
	w.t.Helper()
	for {
		f := w.read()
		if _, isEvent := f["event"]; !isEvent {
			if got, _ := f.int("id"); got == id {
				return f
			}
		}
		w.pending = append(w.pending, f)
	}
}

// call sends a request and returns its reply, recorded under its kind.
func (w *wireConn) call(op string, params map[string]any) rawObject {
	w.t.Helper()
	w.lastID++
	req := map[string]any{"id": w.lastID, "op": op}
	maps.Copy(req, params)
	f := w.send(req)
	if w.rec != nil {
		kind := kindError
		if code, _ := f.int("code"); code == 0 {
			_, resume := params["lastEventID"]
			kind = replyKind(op, resume)
		}
		w.rec.add(w.t, kind, f)
	}
	return f
}

// send writes req as it is and returns its reply, unrecorded.
func (w *wireConn) send(req map[string]any) rawObject {
	w.t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
	id, _ := req["id"].(int64)
	return w.reply(id)
}

// mustCall calls op and requires code 0.
func (w *wireConn) mustCall(op string, params map[string]any) rawObject {
	w.t.Helper()
	f := w.call(op, params)
	if code, _ := f.int("code"); code != 0 {
		w.t.Fatalf("%s %v: %s, want code 0", op, params, asJSON(f))
	}
	return f
}

// await returns the event of kind about inviteID, reading on as needed.
func (w *wireConn) await(kind, inviteID string) rawObject {
	w.t.Helper()
	match := func(f rawObject) bool {
		e, _ := f.str("event")
		id, _ := f.str("inviteID")
		return e == kind && id == inviteID
	}
	if i := slices.IndexFunc(w.pending, match); i >= 0 {
		f := w.pending[i]
		w.pending = slices.Delete(w.pending, i, i+1)
		return f
	}
	for {
		f := w.read()
		if match(f) {
			return f
		}
		w.pending = append(w.pending, f)
	}
}

func (w *wireConn) login(dm *daemon, user string, extra map[string]any) rawObject {
	w.t.Helper()
	params := map[string]any{"userID": user, "userSig": dm.token(user)}
	maps.Copy(params, extra)
	return w.mustCall(protocol.OpLogin, params)
}

// recordFrames drives one signald through every op and every event, and
// records what it sends.
func recordFrames(t *testing.T, dm *daemon, rec *recording) {
	t.Helper()
	mustAdmin(t, dm, "PUT", "/v1/groups/team-42/members", `{"members":["alice","bob","carol"]}`)
	expectCode := func(f rawObject, code int64) {
		t.Helper()
		if got, _ := f.int("code"); got != code {
			t.Fatalf("got %s, want code %d", asJSON(f), code)
		}
	}

	stranger := dialWire(t, dm, rec)
	expectCode(stranger.call(protocol.OpPing, nil), protocol.CodeNotLoggedIn)

	alice, bob, carol := dialWire(t, dm, rec), dialWire(t, dm, rec), dialWire(t, dm, rec)
	alice.login(dm, "alice", map[string]any{"deviceID": "alice-iphone"})
	bob.login(dm, "bob", nil)
	carol.login(dm, "carol", nil)
	alice.mustCall(protocol.OpPing, nil)
	alice.mustCall(protocol.OpSetOfflinePushConfig, map[string]any{"platform": "apns-voip", "token": strings.Repeat("8a1f", 16)})
	alice.mustCall(protocol.OpDoBackground, nil)
	alice.mustCall(protocol.OpDoForeground, nil)
	if err := alice.ws.Write(context.Background(), websocket.MessageText, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	malformed := alice.reply(0)
	expectCode(malformed, protocol.CodeInvalidParams)
	rec.add(t, kindError, malformed)

	inviteID := func(f rawObject) string {
		var id string
		_ = json.Unmarshal(f["data"], &id)
		return id
	}
	// Modified, accepted, then too late to cancel.
	id := inviteID(alice.mustCall(protocol.OpInvite, map[string]any{"invitee": "bob", "data": `{"cmd":"videoCall"}`, "timeout": 30}))
	ring := bob.await("onReceiveNewInvitation", id)
	bob.mustCall(protocol.OpGetSignalingInfo, map[string]any{"inviteID": id})
	alice.mustCall(protocol.OpModifyInvitation, map[string]any{"inviteID": id, "data": `{"cmd":"audioCall"}`})
	bob.await("onInvitationModified", id)
	bob.mustCall(protocol.OpAccept, map[string]any{"inviteID": id, "data": `{"camera":true}`})
	alice.await("onInviteeAccepted", id)
	expectCode(alice.call(protocol.OpCancel, map[string]any{"inviteID": id}), protocol.CodeInviteEnded)
	// Rejected.
	id = inviteID(alice.mustCall(protocol.OpInvite, map[string]any{"invitee": "bob", "data": ""}))
	bob.await("onReceiveNewInvitation", id)
	bob.mustCall(protocol.OpReject, map[string]any{"inviteID": id, "data": `{"reason":"busy"}`})
	alice.await("onInviteeRejected", id)
	// Cancelled.
	id = inviteID(alice.mustCall(protocol.OpInvite, map[string]any{"invitee": "bob", "data": ""}))
	bob.await("onReceiveNewInvitation", id)
	alice.mustCall(protocol.OpCancel, map[string]any{"inviteID": id})
	bob.await("onInvitationCancelled", id)
	// A group call nobody answers.
	groupID := inviteID(alice.mustCall(protocol.OpInviteInGroup, map[string]any{
		"groupID": "team-42", "inviteeList": []string{"bob", "carol"}, "data": "", "timeout": 1}))
	for _, c := range []*wireConn{bob, carol} {
		c.await("onReceiveNewInvitation", groupID)
	}
	for _, c := range []*wireConn{alice, bob, carol} {
		c.await("onInvitationTimeout", groupID)
	}

	// An invitation for those online only: its events are not kept, and
	// carry no eventID (api/README.md §2, §6 and §11 say so).
	id = inviteID(alice.mustCall(protocol.OpInvite, map[string]any{"invitee": "bob", "data": "", "onlineUserOnly": true}))
	online := bob.await("onReceiveNewInvitation", id)
	if _, ok := online["eventID"]; ok {
		t.Errorf("an event of an onlineUserOnly invitation with an eventID: %s", asJSON(online))
	}
	withID := maps.Clone(online)
	withID["eventID"] = ring["eventID"]
	if a, b := fieldShape(withID), fieldShape(ring); a != b {
		t.Errorf("an event of an onlineUserOnly invitation differs from a kept one by more than its eventID: %s and %s", asJSON(online), asJSON(ring))
	}
	alice.mustCall(protocol.OpCancel, map[string]any{"inviteID": id})

	// Bob's second device resumes after the first ring: everything since
	// is replayed, ended calls included.
	eventID, _ := ring.str("eventID")
	resumed := dialWire(t, dm, rec)
	f := resumed.login(dm, "bob", map[string]any{"lastEventID": eventID})
	if d := dataObject(f); string(d["recovered"]) != "true" {
		t.Fatalf("resume after %s: %s", eventID, asJSON(f))
	}
	resumed.await("onInvitationTimeout", groupID) // the last one kept
	// A fresh login of a user with kept events.
	dialWire(t, dm, rec).login(dm, "bob", nil)

	for _, k := range []string{kindLogin, kindLoginResume, kindInviteID, kindSignalingInfo, kindPing, kindNull, kindError} {
		if len(rec.frames[k]) == 0 {
			t.Fatalf("the scenario recorded no %s", k)
		}
	}

	// What a userSig carries, as the server's own minting makes it.
	parts := strings.Split(dm.token("alice"), ".")
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseRawObject(claims)
	if err != nil {
		t.Fatal(err)
	}
	rec.add(t, kindClaims, c)
}

// sendRequests sends every request example to the server: it must take
// its shape (any code but 6014 and 6017: an unknown inviteID or group is
// fine).
func sendRequests(t *testing.T, dm *daemon, backend string, examples []*docExample) {
	t.Helper()
	alice := dialWire(t, dm, nil)
	alice.login(dm, "alice", map[string]any{"deviceID": "alice-iphone"})
	for _, ex := range examples {
		if ex.kind != kindRequest {
			continue
		}
		req := map[string]any{}
		for k, v := range ex.obj {
			req[k] = v
		}
		op, _ := ex.obj.str("op")
		c := alice
		if op == protocol.OpLogin {
			c = dialWire(t, dm, nil)
			if user, ok := ex.obj.str("userID"); ok {
				if _, ok := ex.obj["userSig"]; ok {
					req["userSig"] = dm.token(user) // the example's is not signed
				}
			}
		}
		c.lastID++
		req["id"] = c.lastID
		f := c.send(req)
		code, _ := f.int("code")
		switch {
		case op == protocol.OpLogin && code != 0:
			t.Errorf("%s: the server (%s) refuses this login (signed for the test): %s", ex.where, backend, asJSON(f))
		case code == protocol.CodeInvalidParams || code == protocol.CodeNotLoggedIn:
			t.Errorf("%s: the server (%s) does not take this request: %s", ex.where, backend, asJSON(f))
		}
	}
}

// ---- the comparison ----

// checkExample compares one example with the recorded frames of its kind.
func checkExample(t *testing.T, rec *recording, ex *docExample) {
	t.Helper()
	if ex.kind == kindRequest {
		checkRequest(t, rec, ex)
		return
	}
	kind := ex.kind
	if kind == kindInvitation {
		kind = kindSignalingInfo
	}
	frames := rec.frames[kind]
	if len(frames) == 0 {
		t.Errorf("%s: the server sent no %s to compare this example with", ex.where, kind)
		return
	}
	real := frames[0]
	if ex.kind == kindInvitation {
		real = dataObject(real)
	}
	compareFields(t, ex.where, ex.kind, "", ex.obj, real)
	if d, rd := dataObject(ex.obj), dataObject(real); d != nil && rd != nil {
		compareFields(t, ex.where, ex.kind, "data.", d, rd)
	}
	checkIDs(t, rec, ex, ex.obj)
}

// compareFields reports the fields of doc that real has not, those real
// has that doc has not, and the fields of another JSON type.
func compareFields(t *testing.T, where, kind, prefix string, doc, real rawObject) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(real)) {
		if _, ok := doc[k]; !ok {
			t.Errorf("%s: %s: missing field %q (a real server sends it: %s)", where, kind, prefix+k, asJSON(real))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(doc)) {
		r, ok := real[k]
		if !ok {
			t.Errorf("%s: %s: extra field %q (a real server does not send it: %s)", where, kind, prefix+k, asJSON(real))
			continue
		}
		if got, want := jsonTypeOf(doc[k]), jsonTypeOf(r); got != want {
			t.Errorf("%s: %s: field %q is %s %s, a real server sends %s %s", where, kind, prefix+k, aOrAn(got), got, aOrAn(want), want)
			continue
		}
		if jsonTypeOf(r) == "array" {
			var de, re []json.RawMessage
			_ = json.Unmarshal(doc[k], &de)
			_ = json.Unmarshal(r, &re)
			for _, e := range de {
				if len(re) > 0 && jsonTypeOf(e) != jsonTypeOf(re[0]) {
					t.Errorf("%s: %s: field %q holds %s %s, a real server's holds %s", where, kind, prefix+k, aOrAn(jsonTypeOf(e)), jsonTypeOf(e), jsonTypeOf(re[0]))
				}
			}
		}
	}
}

func aOrAn(typ string) string {
	if strings.IndexByte("aeiou", typ[0]) >= 0 {
		return "an"
	}
	return "a"
}

// checkIDs holds the IDs of an example to the shapes the server issues.
func checkIDs(t *testing.T, rec *recording, ex *docExample, obj rawObject) {
	t.Helper()
	for _, o := range []rawObject{obj, dataObject(obj)} {
		if id, ok := o.str("inviteID"); ok && !inviteIDShape.MatchString(id) {
			t.Errorf("%s: inviteID %q is not like one the server issues (%s, e.g. AQ5TQDCXAMACYK4G7HDF2UNIRD)", ex.where, id, inviteIDShape)
		}
		for _, key := range []string{"eventID", "lastEventID"} {
			id, ok := o.str(key)
			if !ok || (id == "" && key == "lastEventID" && ex.kind != kindRequest) {
				continue
			}
			if _, real := rec.eventIDs[idShape(id)]; !real {
				t.Errorf("%s: %s %q is not like one the server issues (%s)", ex.where, key, id, strings.Join(slices.Sorted(maps.Values(rec.eventIDs)), " or "))
			}
		}
	}
	if ex.kind == kindInviteID {
		var id string
		if json.Unmarshal(obj["data"], &id) != nil || !inviteIDShape.MatchString(id) {
			t.Errorf("%s: inviteID %s is not like one the server issues (%s)", ex.where, obj["data"], inviteIDShape)
		}
	}
}

// checkRequest holds a request example to the op's parameters.
func checkRequest(t *testing.T, rec *recording, ex *docExample) {
	t.Helper()
	op, _ := ex.obj.str("op")
	params, known := opParams[op]
	if !known {
		t.Errorf("%s: unknown op %q", ex.where, op)
		return
	}
	if id, ok := ex.obj.int("id"); !ok || id < 1 {
		t.Errorf("%s: request %s: id %s is not a positive integer", ex.where, op, ex.obj["id"])
	}
	for _, k := range slices.Sorted(maps.Keys(ex.obj)) {
		if k != "id" && k != "op" && !slices.Contains(params, k) {
			t.Errorf("%s: request %s: extra field %q (%s takes %s)", ex.where, op, k, op, strings.Join(params, ", "))
		}
	}
	checkIDs(t, rec, ex, ex.obj)
}

// checkAsyncAPICoverage requires asyncapi.yaml to show every kind of frame.
func checkAsyncAPICoverage(t *testing.T, rec *recording, examples []*docExample) {
	t.Helper()
	shown := map[string]bool{}
	for _, ex := range examples {
		shown[ex.kind] = true
	}
	for _, k := range slices.Sorted(maps.Keys(rec.frames)) {
		if strings.HasSuffix(k, "(not kept)") || k == kindClaims {
			continue
		}
		if !shown[k] {
			t.Errorf("%s: no example of a %s", docAsyncAPI, k)
		}
	}
}

// checkRecordedConsistent requires every recorded frame of a kind to have the
// fields of the first, of the same types: else the documents could not
// show one shape.
func checkRecordedConsistent(t *testing.T, rec *recording) {
	t.Helper()
	for kind, frames := range rec.frames {
		for _, f := range frames[1:] {
			if a, b := fieldShape(frames[0]), fieldShape(f); a != b {
				t.Errorf("the server sends %s in two shapes: %s and %s", kind, a, b)
			}
		}
	}
}

// fieldShape lists the fields of f and their types, and those of its data
// when it is a reply with an object.
func fieldShape(f rawObject) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(f)) {
		fmt.Fprintf(&b, "%s:%s ", k, jsonTypeOf(f[k]))
	}
	if d := dataObject(f); d != nil {
		b.WriteString("data{ " + fieldShape(d) + "}")
	}
	return b.String()
}

// replyCodes are every code a reply can carry (package protocol).
var replyCodes = []int{
	protocol.CodeOK, protocol.CodeNotLoggedIn, protocol.CodeInvalidParams, protocol.CodeInviteEnded,
	protocol.CodeNoPermission, protocol.CodeTooManyPending, protocol.CodeTooManyActive,
	protocol.CodeTooManyInvitees, protocol.CodeNotMember, protocol.CodeGroupNotFound,
	protocol.CodeRateLimited, protocol.CodeSigExpired, protocol.CodeSigEmpty, protocol.CodeSigInvalid,
	protocol.CodeSigWrongUser, protocol.CodeDataTooLarge, protocol.CodeInternal,
}

// TestAPIDocsListEveryCode: the code table of api/README.md §7 has a row
// for each reply code, and the ErrorCode schema of api/asyncapi.yaml lists
// each; neither names a code the server does not have.
func TestAPIDocsListEveryCode(t *testing.T) {
	want := slices.Sorted(slices.Values(replyCodes))
	row := regexp.MustCompile("^\\| `(\\d+)` \\|")
	var readme []int
	for _, l := range docLines(t, docREADME) {
		if m := row.FindStringSubmatch(l); m != nil {
			var n int
			fmt.Sscan(m[1], &n)
			readme = append(readme, n)
		}
	}
	// §5 repeats the userSig codes in a table of its own.
	if got := slices.Compact(slices.Sorted(slices.Values(readme))); !slices.Equal(got, want) {
		t.Errorf("%s: the code tables have rows for %v; the server's codes are %v", docREADME, got, want)
	}

	lines := docLines(t, docAsyncAPI)
	i := slices.Index(lines, "    ErrorCode:")
	if i < 0 || i+2 >= len(lines) {
		t.Fatalf("%s: no ErrorCode schema", docAsyncAPI)
	}
	enum, ok := strings.CutPrefix(strings.TrimSpace(lines[i+2]), "enum:")
	var listed []int
	if !ok || json.Unmarshal([]byte(strings.TrimSpace(enum)), &listed) != nil {
		t.Fatalf("%s:%d: want the ErrorCode enum as a flow list of numbers, got %q", docAsyncAPI, i+3, lines[i+2])
	}
	if got := slices.Sorted(slices.Values(listed)); !slices.Equal(got, want) {
		t.Errorf("%s:%d: ErrorCode lists %v; the server's codes are %v", docAsyncAPI, i+3, got, want)
	}
}

func TestAPIDocsMatchTheServer(t *testing.T) {
	apptest.CheckLeaks(t)
	readme, async := readmeExamples(t), asyncAPIExamples(t)
	all := append(slices.Clone(readme), async...)
	for _, ex := range all {
		classify(t, ex)
	}
	if t.Failed() {
		t.FailNow()
	}
	rec := newRecording()
	for _, backend := range apptest.Backends {
		o, _ := withPush(t, apptest.Options(t, backend))
		dm := startDaemon(t, o)
		recordFrames(t, dm, rec)
		sendRequests(t, dm, backend, all)
		dm.stop()
	}
	checkRecordedConsistent(t, rec)
	for _, ex := range all {
		checkExample(t, rec, ex)
	}
	checkAsyncAPICoverage(t, rec, async)
	if testing.Verbose() {
		t.Logf("checked %d examples of %s and %d of %s against %d recorded frames; eventIDs issued: %v",
			len(readme), docREADME, len(async), docAsyncAPI, countRecorded(rec), slices.Sorted(maps.Values(rec.eventIDs)))
	}
}

func countRecorded(rec *recording) int {
	n := 0
	for _, f := range rec.frames {
		n += len(f)
	}
	return n
}
