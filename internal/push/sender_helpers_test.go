package push_test

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/signald/signald/internal/leaktest"
	"github.com/signald/signald/internal/push"
)

// fakeClock is a sender's clock that tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time // guarded by mu
}

// newClock starts at the wall clock's current second, so that deadlines
// made from it also bound real requests.
func newClock() *fakeClock { return &fakeClock{now: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// noLeaks fails t if a goroutine started during t outlives it and its
// cleanups (which close the fakes). Call it first.
func noLeaks(t *testing.T) {
	t.Helper()
	leaktest.Check(t)
}

// ringMessage is a ring push as api/README.md §13 lists its fields, due to
// end 30 s after clock's now.
func ringMessage(clock *fakeClock, id string) push.Message {
	now := clock.Now()
	deadline := now.Add(30 * time.Second)
	return push.Message{
		ID: id,
		Fields: map[string]string{
			"type": "invite", "inviteID": "Q2ZJ7V3X4KQ5L6M7N8P9R2S3T4", "inviter": "alice", "groupID": "",
			"inviteeList": `["bob"]`, "data": `{"cmd":"videoCall"}`, "timeout": "30",
			"sentAt": strconv.FormatInt(now.UnixMilli(), 10), "deadline": strconv.FormatInt(deadline.UnixMilli(), 10),
			"title": "", "desc": "", "ext": "",
		},
		Deadline: deadline,
	}
}

// errClass names which of Sender's error classes err is.
func errClass(err error) string {
	var re *push.RetryError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, push.ErrUnregistered):
		return "unregistered"
	case errors.As(err, &re):
		return "retry"
	default:
		return "permanent"
	}
}

func bigString(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'x'
	}
	return string(b)
}
