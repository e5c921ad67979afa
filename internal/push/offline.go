package push

import (
	"context"
	"log/slog"

	"github.com/signald/signald/internal/invite"
)

// LogPusher records offline push requests in the log. It stands where a
// gateway to APNs or FCM will go: signald decides when a push is due (an
// invitee of an invitation not sent onlineUserOnly, with no live
// connection); delivering it is a vendor integration not yet built.
type LogPusher struct {
	Logger *slog.Logger
}

// RequestPush implements invite.OfflinePusher.
func (p LogPusher) RequestPush(ctx context.Context, user string, inv *invite.Invitation, info invite.PushInfo) {
	p.Logger.LogAttrs(ctx, slog.LevelDebug, "offline push requested",
		slog.String("user", user), slog.String("inviteID", inv.ID),
		slog.String("title", info.Title), slog.String("desc", info.Desc))
}
