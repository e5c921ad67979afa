package push

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/signald/signald/internal/device"
)

// Kinds of push jobs (the payload's "type").
const (
	KindRing = "invite" // a device rung for a new invitation
	KindEnd  = "end"    // a rung device told that its invitee's part ended
)

// Job is one push to one device for one invitation: durable, claimed by one
// instance at a time, tried until its deadline.
type Job struct {
	InviteID string
	User     string
	Device   string
	Kind     string // KindRing or KindEnd
	// Reg is the registration pushed, as it was when the job was made: a
	// token that moves meanwhile does not redirect a push already decided.
	Reg    device.Registration
	Reason string // KindEnd: accepted, rejected, cancelled or timeout
	// Deadline (ms) is when the push stops being worth sending: nothing is
	// sent after it.
	Deadline int64
	Attempts int // tries made so far
}

// Key identifies a job within its invitation: one per (user, device,
// kind), as netstrings, since IDs may hold any character.
func (j Job) Key() string {
	var b strings.Builder
	for _, s := range []string{j.User, j.Device, j.Kind} {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
		b.WriteByte(',')
	}
	return b.String()
}

// Outcomes of a finished job, for Finish.
const (
	OutcomeSent    = "sent"    // the platform accepted it
	OutcomeDead    = "dead"    // the token was dead: the registration is dropped
	OutcomeGaveUp  = "gave_up" // still failing at its deadline
	OutcomeFailed  = "failed"  // refused for good (a malformed request)
	OutcomeSkipped = "skipped" // no longer worth sending (the call ended first)
)

// Queue keeps push jobs, claimed with a lease like invitation deadlines, so
// that each (invitation, device, kind) is pushed by one instance at a time,
// and by another after the lease if that one dies. Implementations: the
// memory store and the Redis store, held to one contract suite (package
// push/queuetest). Every method may fail with an error wrapping
// ErrQueueUnavailable.
type Queue interface {
	// Add records jobs of inviteID, due at now, except those whose Key was
	// recorded before (due, claimed, or finished): adding the same job twice,
	// as an announcement made again does, pushes once. Everything of
	// inviteID may be forgotten at expires (ms).
	Add(ctx context.Context, inviteID string, jobs []Job, now, expires int64) error
	// Rung returns the ring jobs recorded for users of inviteID, finished or
	// not, so that their end can be pushed to the same devices.
	Rung(ctx context.Context, inviteID string, users []string) ([]Job, error)
	// Claim returns up to max jobs due at now and hides each from other
	// claimers for lease.
	Claim(ctx context.Context, now int64, lease time.Duration, max int) ([]Job, error)
	// Retry makes a claimed job due again at at (ms), with its Attempts as
	// given.
	Retry(ctx context.Context, j Job, at int64) error
	// Finish records a claimed job as done with outcome: it is never
	// claimed nor added again.
	Finish(ctx context.Context, j Job, outcome string) error
}

// ErrQueueUnavailable wraps failures to reach a Queue's backend.
var ErrQueueUnavailable = errors.New("push queue unavailable")
