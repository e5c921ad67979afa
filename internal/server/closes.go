package server

import (
	"strings"

	"github.com/coder/websocket"
)

// closeReason is why the server ends a connection: the close code and text
// its client sees, and the reason label under which
// signald_connections_closed_by_server_total counts it.
type closeReason struct {
	code  websocket.StatusCode
	text  string
	label string
	help  string // what the label means, for the metric's HELP
}

var (
	closeLoginDeadline = closeReason{websocket.StatusPolicyViolation, "login deadline passed", "login_deadline", "no login within the login deadline"}
	closeLoginFailed   = closeReason{websocket.StatusPolicyViolation, "login failed", "login_failed", "a login refused (its reply says why)"}
	closeNoLogin       = closeReason{websocket.StatusPolicyViolation, "log in first", "no_login", "more frames than a stranger may send before logging in"}
	closeTooSlow       = closeReason{websocket.StatusPolicyViolation, "too slow", "too_slow", "the send queue was full: the client does not read"}
	closeRateLimit     = closeReason{websocket.StatusPolicyViolation, "request rate limit exceeded", "rate_limit", "requests refused by the rate limit in a row"}
	closeResume        = closeReason{websocket.StatusServiceRestart, "reconnect and resume", "resume", "missed events no longer kept, or too many arrived during a catch-up: the client resumes"}
	closeShutdown      = closeReason{websocket.StatusServiceRestart, "server restart", "shutdown", "the server shut down"}
	closeInvalidUTF8   = closeReason{websocket.StatusInvalidFramePayloadData, "text frame is not valid UTF-8", "invalid_utf8", "a text frame that is not UTF-8"}
	// The library answers a frame over the read limit with 1009 itself.
	closeTooBig = closeReason{websocket.StatusMessageTooBig, "", "too_big", "a frame over the read limit"}
	// A connection its client ended, or that broke: nothing is sent,
	// nothing counted as closed by the server.
	closePeerGone = closeReason{code: -1}
)

// A client that did not take one frame within the write timeout is
// dropped without a close frame: none could be written.
var closeWriteTimeout = closeReason{websocket.StatusPolicyViolation, "", "write_timeout", "a frame not taken within the write timeout: dropped without a close frame, counted as a slow client too"}

// closeReasons are every reason the server closes a connection for.
var closeReasons = []closeReason{closeLoginDeadline, closeLoginFailed, closeNoLogin, closeTooSlow,
	closeRateLimit, closeResume, closeShutdown, closeInvalidUTF8, closeTooBig, closeWriteTimeout}

// closedHelp is the HELP of signald_connections_closed_by_server_total: it
// names every reason.
func closedHelp() string {
	var b strings.Builder
	b.WriteString("Connections the server closed, by reason: ")
	for i, r := range closeReasons {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(r.label + " (" + r.help + ")")
	}
	b.WriteString(". Connections their client ended are not counted.")
	return b.String()
}
