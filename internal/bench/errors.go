package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/coder/websocket"
)

// ErrorCounter counts failures by reason ("invite: code 60018", "dial:
// connection refused"). Errors are rare on a healthy run, so a mutex and a
// map are fine here; the total is atomic because the progress line reads it
// every second.
type ErrorCounter struct {
	mu    sync.Mutex
	m     map[string]int64 // guarded by mu
	total atomic.Int64
}

// Add counts one failure.
func (e *ErrorCounter) Add(reason string) {
	e.total.Add(1)
	e.mu.Lock()
	if e.m == nil {
		e.m = map[string]int64{}
	}
	e.m[reason]++
	e.mu.Unlock()
}

// Code counts a reply with a non-zero code to op.
func (e *ErrorCounter) Code(op string, code int) { e.Add(fmt.Sprintf("%s: code %d", op, code)) }

// Total returns how many failures were counted.
func (e *ErrorCounter) Total() int64 { return e.total.Load() }

// Snapshot returns a copy of the counts by reason.
func (e *ErrorCounter) Snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}

// classifyConnectErr reduces a dial or login error to a reason that does
// not vary per connection (no port numbers), so that a thousand failures
// make one line of the report.
func classifyConnectErr(err error) string {
	var le *LoginError
	switch {
	case errors.As(err, &le):
		return fmt.Sprintf("login: code %d", le.Code)
	case errors.Is(err, context.DeadlineExceeded):
		return "connect: timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "dial: connection refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "dial: no free local port (EADDRNOTAVAIL)"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "dial: too many open files"
	case errors.Is(err, syscall.ECONNRESET):
		return "connect: connection reset"
	}
	if s := websocket.CloseStatus(err); s != -1 {
		return fmt.Sprintf("connect: closed by server with status %d", s)
	}
	return "connect: " + lastPart(err.Error())
}

// classifyCloseErr reduces why an established connection ended.
func classifyCloseErr(err error) string {
	if s := websocket.CloseStatus(err); s != -1 {
		return fmt.Sprintf("connection closed by server: status %d", s)
	}
	if strings.Contains(err.Error(), "malformed frame") || strings.Contains(err.Error(), "binary frame") {
		return "server sent a bad frame"
	}
	return "connection lost: " + lastPart(err.Error())
}

// lastPart keeps the innermost message of a wrapped error chain, which is
// the part without addresses.
func lastPart(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
