// Package bus carries events to the live connections of their users on
// every instance and keeps each user's recent events for resume: the Bus
// interface, its in-memory implementation (MemBus) and the eventID helpers.
// The Redis implementation is package redisbus; both pass package bustest.
package bus

import (
	"bytes"
	"context"
	"errors"
)

// Origin is the connection that caused an event: the instance it is on and
// its session there. Its own device gets a reply instead of the event.
type Origin struct {
	Node    string
	Session uint64
}

// Envelope is one event frame on its way to a set of users.
type Envelope struct {
	Users []string
	// Frame is the event as a JSON object. For a kept event the bus adds the
	// user's "eventID" member before the closing brace.
	Frame []byte
	// Keep: keep the event for resume and give it an eventID. Events of
	// onlineUserOnly invitations are not kept.
	Keep bool
	// InviteID, set for onReceiveNewInvitation, lets a later fresh login
	// find the eventID under which each invitee was rung.
	InviteID string
	Except   Origin
	Kind     string // the event's name, for metrics
	// Once, when set, is a key unique to this event: each user receives it at
	// most once, however often it is published. A timeout announced again
	// by another instance, because the first announcer died before it could
	// say it had finished, is not delivered twice.
	Once string
	// Presence asks Publish to report each user's foreground devices
	// (Reach.Foreground), which decide who is pushed for a ring.
	Presence bool
	// Listed, when set, says that the frame lists users that only the step
	// publishing it decides (a timeout's, those it timed out): Frame is then
	// the frame listing nobody, Listed.Prefix + Listed.Suffix, and the step
	// writes the users, as JSON strings separated by commas, between them.
	// Only for an event a store publishes in its step (redisbus's
	// PreparePublish); Publish refuses it.
	Listed *Listed
}

// Listed is how a frame lists users left to the step: see Envelope.Listed.
type Listed struct{ Prefix, Suffix string }

// ErrListed is Publish's answer to an Envelope with Listed set.
var ErrListed = errors.New("bus: an event whose users the step lists can only be published in that step")

// Reach is what a Publish found of one user, on every instance.
type Reach struct {
	// Online: the user has a live connection somewhere (true too when the
	// event had been published to the user before, Once).
	Online bool
	// Foreground lists the user's devices with a foreground connection
	// somewhere, when Envelope.Presence asked; connections without a
	// deviceID are not in it.
	Foreground []string
}

// Bus carries events to the live connections of their users on every
// instance, and keeps each user's recent events so that a device that lost
// its connection can resume. Implementations: MemBus (one process) and
// redisbus (many instances sharing a Redis).
//
// For one user, kept events get increasing eventIDs (in byte-wise order)
// and reach each of that user's connections in that order, each with the
// ID of the user's kept event before it (hub.Delivery.Prev), so that a
// connection can tell that it missed one (a Pub/Sub gap) and replay it.
type Bus interface {
	// Publish keeps the event (when env.Keep) and delivers it to every live
	// connection of env.Users on every instance except env.Except. It
	// reports, by index of env.Users, what it found of each.
	Publish(ctx context.Context, env Envelope) ([]Reach, error)
	// SetForeground records whether user's device has a foreground
	// connection on this instance, for the Reach of other instances'
	// publishes. A bus on one instance needs none of it.
	SetForeground(ctx context.Context, user, device string, foreground bool) error
	// Watch makes this instance receive user's events until the matching
	// Unwatch (calls are counted). It returns once events published after
	// it are sure to arrive.
	Watch(ctx context.Context, user string) error
	Unwatch(user string)
	// Replay returns user's kept events after the one with ID after, oldest
	// first, and whether that is all of them: false when after is not an ID
	// this bus issued to user, or older than what is still kept. With after
	// "" it returns every kept event, and whether none was ever dropped.
	Replay(ctx context.Context, user, after string) (events []Kept, recovered bool, err error)
	// Last returns the ID of user's newest kept event, "" if none.
	Last(ctx context.Context, user string) (string, error)
	// Lasts is Last for many users at once (one round trip on Redis).
	Lasts(ctx context.Context, users []string) ([]string, error)
	// RungAs returns, for each of inviteIDs, the eventID under which user's
	// onReceiveNewInvitation was kept ("" when no longer known).
	RungAs(ctx context.Context, user string, inviteIDs []string) ([]string, error)
}

// Kept is a kept event as Replay returns it.
type Kept struct {
	Frame []byte // with its eventID
	// Origin is the connection that caused the event (Envelope.Except),
	// zero for none: a connection catching up on its own sequence skips
	// its own events, as it skipped them live.
	Origin Origin
}

// Frames returns the frames of events.
func Frames(events []Kept) [][]byte {
	out := make([][]byte, len(events))
	for i, e := range events {
		out[i] = e.Frame
	}
	return out
}

// ErrUnavailable wraps failures to reach the bus's backend.
var ErrUnavailable = errors.New("event bus unavailable")

// eventIDKey is what WithEventID inserts before an eventID.
var eventIDKey = []byte(`,"eventID":"`)

// WithEventID returns frame (a JSON object) with an "eventID" member added
// before its closing brace. IDs are plain ASCII, so no escaping is needed.
func WithEventID(frame []byte, id string) []byte {
	out := make([]byte, 0, len(frame)+len(id)+len(eventIDKey)+2)
	out = append(out, frame[:len(frame)-1]...)
	out = append(out, eventIDKey...)
	out = append(out, id...)
	return append(out, `"}`...)
}

// EventIDOf returns the eventID WithEventID put at the end of frame, "" if
// none. Buses compare eventIDs as strings: for one user a later event's ID
// is greater byte-wise.
func EventIDOf(frame []byte) string {
	i := bytes.LastIndex(frame, eventIDKey)
	if i < 0 || len(frame) < i+len(eventIDKey)+2 {
		return ""
	}
	return string(frame[i+len(eventIDKey) : len(frame)-2])
}
