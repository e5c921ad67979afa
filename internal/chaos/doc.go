// Package chaos is signald's fault-injection harness: it starts Redis and
// several signald instances as processes, drives simulated users whose
// phones drop and resume their connections, injects faults while calls are
// rung, answered, cancelled and timed out, and then checks, device by
// device, that every event api/README.md §6 promises arrived, none twice, and
// that the final states agree with every reply. cmd/signald-chaos is its
// command line; TestChaosShort runs a short version in `make test`.
//
// # A run
//
//  1. Setup: redis-server with AOF (appendfsync always) on a free loopback
//     port in a directory of its own; Config.Instances signald instances
//     (`serve --dev`) sharing it; groups through the admin API.
//  2. Warm-up: every user is invited once and the invitation cancelled, so
//     that every user has a kept event before its devices log in. Without
//     one, a login's anchor (its reply's lastEventID) is "", which servers
//     before the outbox commit took for an unknown ID: a resume after it
//     was answered recovered:false, so a device that dropped before its
//     first event could not resume at all. Warm-up invitations are left out
//     of the check.
//  3. Login: every device logs in once without lastEventID, before any
//     call, and keeps the reply's lastEventID as its anchor.
//  4. Load: for Config.Duration (longer if a fault kind has not happened
//     yet), users place calls (invite, or inviteInGroup to 2–3 members),
//     timeouts of 2–8 s; rung devices accept, reject or ignore; inviters
//     sometimes cancel or modify. One fault every Config.FaultInterval:
//     kill -9 or SIGTERM of an instance (restarted on the same address),
//     a graceful Redis restart (down about 2 s), CLIENT KILL TYPE pubsub,
//     abrupt drops of 10–20 % of the client connections. Whenever a
//     connection closes, for whatever reason, its device reconnects to a
//     random live instance and logs in with lastEventID.
//  5. Drain: faults and calls stop; Redis and every instance are made to
//     run; the harness waits until every invitation has ended, has every
//     device resume once more, and waits until no event has arrived for a
//     while.
//  6. Check: getSignalingInfo of every invitation that a reply or an event
//     names gives its final states; the oracle (Check) compares them with
//     everything each device received and every reply.
//
// # What is counted
//
//   - lost: a (device, event) that §6 promises given the final states, and
//     that the device never received, on any connection.
//   - duplicated: one device receiving one logical event (kind, inviteID,
//     and the invitee of an accept or reject, or the data of a change)
//     under two eventIDs; or a connection receiving an eventID not greater
//     than the one before it.
//   - inconsistent: a final state that contradicts a reply or an event; an
//     invitation still pending at the end, or that getSignalingInfo cannot
//     find although a reply or an event proves it exists; an event without
//     eventID.
//
// Replies 90994 and requests left without a reply may or may not have
// taken effect: the final states decide. A device that was ever answered
// recovered:false on a resume is counted as unrecovered instead of losing
// events. See Check for the exact rules.
package chaos
