// Package client is the Go client of signald (api/README.md), for a Go
// backend, a bot, or a test. It has two levels.
//
// # Client: a session, typed
//
// Client is one user's session, named and shaped after Tencent Cloud IM's
// V2TIMSignalingManager, as the TypeScript SDK in clients/js is:
//
//	c, _ := client.New("wss://signald.example.com/v1/ws", client.Options{
//		Listener: client.Listener{
//			OnReceiveNewInvitation: func(ev client.ReceiveNewInvitationEvent) { … },
//			OnInviteeAccepted:      func(ev client.InviteeAcceptedEvent) { … },
//		},
//	})
//	defer c.Close()
//	_, err := c.Login(ctx, client.LoginOptions{UserID: "alice", UserSig: sig})
//	inviteID, err := c.Invite(ctx, "bob", `{"cmd":"videoCall"}`, client.InviteOptions{Timeout: 30 * time.Second})
//
// Each op (Invite, InviteInGroup, Accept, Reject, Cancel, ModifyInvitation,
// GetSignalingInfo, SetOfflinePushConfig, DoBackground, DoForeground, Ping)
// waits for its reply as long as its ctx allows (Options.RequestTimeout,
// 10 s, when ctx has no deadline). A reply with a non-zero code is an
// *Error; errors.Is(err, client.ErrInviteEnded) and the other sentinels
// compare codes.
//
// The six events reach the Listener one at a time, in the order the server
// sent them, each at most once: an event that comes twice around a
// reconnect (same eventID) is dropped, and so is a second
// onReceiveNewInvitation for an invitation the Listener was already rung
// for. The events of onlineUserOnly invitations carry no eventID; but for a
// second ring, they are never dropped.
//
// # Reconnect and resume
//
// After Login the Client keeps the session alive. When the connection
// ends — dropped by the network, unanswered pings (Options.PingInterval),
// or closed by the server — it logs in again on a new connection after a
// backoff with jitter (Options.Backoff), with lastEventID set to the newest
// eventID the Listener has returned from, so that the server replays what
// was missed meanwhile (api/README.md §11). Listener.OnConnectionStateChanged
// sees StateReconnecting (with the close code, and the wait) and then
// StateConnected, before the replayed events.
//
//   - 1012 (service restart): the instance is shutting down (or missed
//     events it can no longer replay itself). The first attempt comes after
//     a random part of Backoff.Initial, and a load balancer sends it to
//     another instance.
//   - 1008 (policy violation: too slow to read, over the rate limit): the
//     Client waits at least about Backoff.Policy (10 s) rather than
//     hammering, and reports the close code and the server's reason in the
//     StateChange.
//   - A re-login refused for the userSig (700xx) or as malformed (6017) ends
//     the session (StateDisconnected with the *Error), unless
//     LoginOptions.RefreshUserSig provides a new userSig. Other refusals
//     (60018, 90994) are tried again with backoff.
//
// When the server cannot replay (StateChange.Recovered false: what was
// missed is no longer kept), it rings the user again for every invitation
// still waiting for it; those the Listener has already had are dropped as
// duplicates, and the app should refresh what it shows with
// GetSignalingInfo. After a login that replayed nothing (a fresh one, or
// not recovered), the login reply's lastEventID becomes the point to resume
// from once everything that login sent has been processed. A user for
// whom the server keeps no event at all yet has no such point: if its
// connection drops before its first event, the re-login is a fresh one,
// rung only for what still waits for it. The last processed eventID is
// kept in an EventIDStore (a MemoryStore by default; one that persists
// lets a restarted process resume).
//
// A request made while the Client is between two connections waits for the
// next login, up to its ctx's deadline, and then fails with an error that
// is both ErrReconnecting and ctx's error; with Options.FailWhileReconnecting
// it fails at once with ErrReconnecting. Either way it was not sent. A
// request whose connection ends after it was sent fails with
// ErrConnectionLost: it may or may not have taken effect, and is not sent
// again (check with GetSignalingInfo before repeating a state change).
// Without a session (before Login, after Logout) requests fail with
// ErrNotLoggedIn.
//
// # Conn: frames
//
// Conn is one WebSocket connection and nothing more: Call sends a request
// (an op and its parameters as a map) and returns the reply Frame, whatever
// its code; Next returns the events and unmatched replies in arrival order;
// Done, CloseStatus and Err say how the connection ended; WriteRaw sends
// any bytes. It neither logs in by itself, nor reconnects, nor drops
// duplicates. signald's end-to-end tests drive the server through it frame
// by frame, and the Client is built on it.
package client
