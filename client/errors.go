package client

import (
	"errors"
	"fmt"

	"github.com/signald/signald/internal/protocol"
)

// Error is a request the server answered with a non-zero code
// (api/README.md §7). Branch on Code, or compare with errors.Is against the
// sentinels below, which match any *Error of the same code; Desc is for
// people.
type Error struct {
	Op   string // the op that failed, e.g. "invite"
	Code int
	Desc string
}

func (e *Error) Error() string {
	if e.Op == "" {
		return fmt.Sprintf("signald: code %d: %s", e.Code, e.Desc)
	}
	return fmt.Sprintf("signald: %s: code %d: %s", e.Op, e.Code, e.Desc)
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, client.ErrInviteEnded) holds for every 8010 reply.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func codeError(code int) *Error { return &Error{Code: code, Desc: protocol.Desc(code)} }

// The server's codes, for errors.Is. See api/README.md §7 for when each is
// answered and whether a retry can help.
var (
	ErrNotLoggedIn     = codeError(protocol.CodeNotLoggedIn)     // 6014; also returned without asking the server when the Client has no session
	ErrInvalidParams   = codeError(protocol.CodeInvalidParams)   // 6017
	ErrInviteEnded     = codeError(protocol.CodeInviteEnded)     // 8010: unknown inviteID, or this part of it has ended
	ErrNoPermission    = codeError(protocol.CodeNoPermission)    // 8011
	ErrTooManyPending  = codeError(protocol.CodeTooManyPending)  // 8012
	ErrTooManyActive   = codeError(protocol.CodeTooManyActive)   // 8013
	ErrTooManyInvitees = codeError(protocol.CodeTooManyInvitees) // 10005
	ErrNotMember       = codeError(protocol.CodeNotMember)       // 10007
	ErrGroupNotFound   = codeError(protocol.CodeGroupNotFound)   // 10010
	ErrRateLimited     = codeError(protocol.CodeRateLimited)     // 60018
	ErrSigExpired      = codeError(protocol.CodeSigExpired)      // 70001
	ErrSigEmpty        = codeError(protocol.CodeSigEmpty)        // 70002
	ErrSigInvalid      = codeError(protocol.CodeSigInvalid)      // 70003
	ErrSigWrongUser    = codeError(protocol.CodeSigWrongUser)    // 70013
	ErrDataTooLarge    = codeError(protocol.CodeDataTooLarge)    // 80002
	ErrInternal        = codeError(protocol.CodeInternal)        // 90994: may or may not have taken effect
)

// Errors of the Client itself, raised without a reply from the server.
var (
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("signald: client closed")
	// ErrAlreadyLoggedIn: Login on a Client that has a session; Logout first.
	ErrAlreadyLoggedIn = errors.New("signald: already logged in")
	// ErrReconnecting: the session is between two connections. A request
	// fails with it at once when Options.FailWhileReconnecting is set, and
	// otherwise when its ctx ends before the session is back (the error
	// then wraps ctx's error too). Nothing was sent.
	ErrReconnecting = errors.New("signald: reconnecting")
	// ErrConnectionLost: the connection ended after the request was sent
	// and before its reply. The request may or may not have taken effect:
	// check with GetSignalingInfo before repeating a state change.
	ErrConnectionLost = errors.New("signald: connection lost before the reply; the request may or may not have taken effect")
)

// isLoginFatal reports whether a login refused with code can never succeed
// as it is: a userSig that needs replacing, or a malformed userID or
// deviceID.
func isLoginFatal(code int) bool {
	switch code {
	case protocol.CodeSigExpired, protocol.CodeSigEmpty, protocol.CodeSigInvalid, protocol.CodeSigWrongUser, protocol.CodeInvalidParams:
		return true
	}
	return false
}
