package chaos

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// DeviceID names one device: a user's phone (0) or its second device (1).
type DeviceID struct {
	User  string
	Index int
}

func (d DeviceID) String() string { return fmt.Sprintf("%s/d%d", d.User, d.Index) }

// CodeNoReply is the code recorded for a request that got no reply: the
// connection ended first, or the reply took longer than requestTimeout.
const CodeNoReply = -1

// RequestRecord is one request a device sent and how it was answered.
type RequestRecord struct {
	Device   DeviceID
	Conn     int    // the device's connection number, from 1
	Op       string // protocol.Op*
	InviteID string // the invitation it is about; for invite and inviteInGroup, the reply's, if any
	Data     string // the data sent (a tag that names the call for invites, unique for modifies)
	Invitees []string
	Code     int           // reply code, or CodeNoReply
	Sent     time.Duration // since the run started
	Answered time.Duration // since the run started; when Code is CodeNoReply, when it was given up
}

// EventRecord is one event frame a device received.
type EventRecord struct {
	Device      DeviceID
	Conn        int // the device's connection number, from 1
	Kind        string
	EventID     string
	InviteID    string
	Inviter     string
	GroupID     string
	Invitee     string
	InviteeList []string
	Data        string
	At          time.Duration // since the run started
}

// LoginRecord is one login a device made.
type LoginRecord struct {
	Device      DeviceID
	Conn        int
	Instance    string // the node it connected to
	Resume      bool   // it carried lastEventID
	After       string // the lastEventID it carried
	Code        int    // reply code, or CodeNoReply
	Recovered   bool   // the reply's recovered (resumes answered 0)
	LastEventID string // the reply's lastEventID (the anchor)
	At          time.Duration
}

// CloseRecord is the end of one of a device's logged-in connections.
type CloseRecord struct {
	Device DeviceID
	Conn   int
	Status int    // WebSocket close code, -1 when none (dropped, or closed by the device)
	Reason string // what ended it
	At     time.Duration
}

// FaultRecord is one fault the injector caused.
type FaultRecord struct {
	Kind   FaultKind
	Target string // the instance, "redis", or how many connections
	At     time.Duration
	Took   time.Duration // until what was stopped was back
}

// journal records everything the devices and the injector did, for the
// oracle. Every method is safe for concurrent use; a connection's events
// are appended by its one reader, so their order in events is the order of
// arrival.
type journal struct {
	start     time.Time
	lastEvent atomic.Int64 // UnixNano of the newest event received

	mu       sync.Mutex
	requests []RequestRecord // guarded by mu
	events   []EventRecord   // guarded by mu
	logins   []LoginRecord   // guarded by mu
	faults   []FaultRecord   // guarded by mu
	closes   []CloseRecord   // guarded by mu
}

func newJournal() *journal {
	j := &journal{start: time.Now()}
	j.lastEvent.Store(j.start.UnixNano())
	return j
}

func (j *journal) now() time.Duration { return time.Since(j.start) }

func (j *journal) request(r RequestRecord) {
	j.mu.Lock()
	j.requests = append(j.requests, r)
	j.mu.Unlock()
}

func (j *journal) event(e EventRecord) {
	j.lastEvent.Store(time.Now().UnixNano())
	j.mu.Lock()
	j.events = append(j.events, e)
	j.mu.Unlock()
}

func (j *journal) login(l LoginRecord) {
	j.mu.Lock()
	j.logins = append(j.logins, l)
	j.mu.Unlock()
}

func (j *journal) closed(c CloseRecord) {
	j.mu.Lock()
	j.closes = append(j.closes, c)
	j.mu.Unlock()
}

func (j *journal) fault(f FaultRecord) {
	j.mu.Lock()
	j.faults = append(j.faults, f)
	j.mu.Unlock()
}

// touch restarts the quiet period, as if an event had just arrived.
func (j *journal) touch() { j.lastEvent.Store(time.Now().UnixNano()) }

// quietSince is how long no event has arrived (or since touch).
func (j *journal) quietSince() time.Duration {
	return time.Since(time.Unix(0, j.lastEvent.Load()))
}

// snapshot copies what was recorded into a History (without final
// states).
func (j *journal) snapshot() *History {
	j.mu.Lock()
	defer j.mu.Unlock()
	return &History{
		Start:    j.start,
		Requests: append([]RequestRecord(nil), j.requests...),
		Events:   append([]EventRecord(nil), j.events...),
		Logins:   append([]LoginRecord(nil), j.logins...),
		Faults:   append([]FaultRecord(nil), j.faults...),
		Closes:   append([]CloseRecord(nil), j.closes...),
	}
}

// knownInvitations returns, for every inviteID a successful reply or an
// event names, the user who can ask getSignalingInfo about it.
func (j *journal) knownInvitations() map[string]string {
	j.mu.Lock()
	defer j.mu.Unlock()
	known := make(map[string]string)
	for _, r := range j.requests {
		if r.InviteID != "" { // from a reply or an event
			if _, ok := known[r.InviteID]; !ok {
				known[r.InviteID] = r.Device.User
			}
		}
	}
	for _, e := range j.events {
		if e.InviteID != "" {
			if _, ok := known[e.InviteID]; !ok {
				known[e.InviteID] = e.Device.User
			}
		}
	}
	return known
}
