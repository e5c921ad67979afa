package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/signald/signald/internal/auth"
	"github.com/signald/signald/internal/device"
	"github.com/signald/signald/internal/group"
	"github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/protocol"
)

// codeTable is the one place where domain errors become wire codes. The
// first entry that matches wins; an error that matches none is internal.
var codeTable = []struct {
	err  error
	code int
}{
	{protocol.ErrBadParam, protocol.CodeInvalidParams},
	{invite.ErrInvalid, protocol.CodeInvalidParams},
	{device.ErrInvalid, protocol.CodeInvalidParams},
	{invite.ErrDataTooLarge, protocol.CodeDataTooLarge},
	{invite.ErrTooManyInvitees, protocol.CodeTooManyInvitees},
	{group.ErrNotFound, protocol.CodeGroupNotFound},
	{invite.ErrNotMember, protocol.CodeNotMember},
	{invite.ErrNotFound, protocol.CodeInviteEnded},
	{invite.ErrForbidden, protocol.CodeNoPermission},
	{invite.ErrEnded, protocol.CodeInviteEnded},
	{invite.ErrRateLimited, protocol.CodeRateLimited},
	{invite.ErrTooManyActive, protocol.CodeTooManyActive},
	{invite.ErrTooManyPending, protocol.CodeTooManyPending},
	{auth.ErrEmpty, protocol.CodeSigEmpty},
	{auth.ErrExpired, protocol.CodeSigExpired},
	{auth.ErrWrongUser, protocol.CodeSigWrongUser},
	{auth.ErrInvalid, protocol.CodeSigInvalid},
	{invite.ErrUnavailable, protocol.CodeInternal},
	{device.ErrUnavailable, protocol.CodeInternal},
}

// codeOf returns the wire code and its one desc for err (protocol.Desc;
// 10007 adds the user api/README.md §4 says it names).
// The error's own text, which depends on the store and layer that raised
// it, is logged by the caller, never sent.
func codeOf(err error) (int, string) {
	if err == nil {
		return protocol.CodeOK, ""
	}
	for _, e := range codeTable {
		if errors.Is(err, e.err) {
			// The protocol has 10007 name the first user not in the group.
			if nm := (*invite.NotMemberError)(nil); errors.As(err, &nm) {
				return e.code, fmt.Sprintf("%s: %q", protocol.Desc(e.code), nm.User)
			}
			return e.code, protocol.Desc(e.code)
		}
	}
	return protocol.CodeInternal, protocol.Desc(protocol.CodeInternal)
}

// statusTable is the admin API's counterpart of codeTable: the HTTP status
// of each domain error. An error that matches none is the store's: 503.
var statusTable = []struct {
	err    error
	status int
}{
	{invite.ErrInvalid, http.StatusBadRequest},
	{device.ErrInvalid, http.StatusBadRequest},
	{group.ErrNotFound, http.StatusNotFound},
}

// adminFail answers an admin request that failed with err: its status from
// statusTable and its text, or 503 for a store that failed, logged with its
// cause (which may name hosts or keys, so it is not sent), since the
// caller cannot tell whether it took effect and an operator must know.
func (s *Server) adminFail(w http.ResponseWriter, r *http.Request, err error) {
	for _, e := range statusTable {
		if errors.Is(err, e.err) {
			msg := err.Error()
			if e.status == http.StatusNotFound {
				msg = e.err.Error()
			}
			adminError(w, e.status, msg)
			return
		}
	}
	s.log.ErrorContext(r.Context(), "admin API: store failed", "method", r.Method, "path", bounded(r.URL.Path), "err", err)
	adminError(w, http.StatusServiceUnavailable, "store unavailable; the request may or may not have taken effect")
}
