package server

import (
	"errors"

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

// codeOf returns the wire code and description for err. Internal errors
// get a fixed description: their text may name hosts or keys.
func codeOf(err error) (int, string) {
	if err == nil {
		return protocol.CodeOK, ""
	}
	for _, e := range codeTable {
		if errors.Is(err, e.err) {
			if e.code == protocol.CodeInternal {
				break
			}
			return e.code, err.Error()
		}
	}
	return protocol.CodeInternal, "internal error; the request may or may not have taken effect"
}
