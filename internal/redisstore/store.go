// Package redisstore keeps invitations, their deadlines, groups, device
// registrations and push jobs in Redis, so that any number of signald nodes
// share them. It is one of two Redis adapters, beside package redisbus (the
// event bus); package app makes the go-redis client both use.
//
// # Keys
//
// Every key starts with Options.Prefix (default "signald:"). Keys of one
// invitation, user, group or token carry its ID (a token, its hash) as a
// hash tag, so that each Lua script touches one slot and the store runs
// unchanged on Redis Cluster:
//
//	<prefix>inv:{<id>}               hash: one invitation (fields below)
//	<prefix>deadlines                sorted set: invitation ID → ms when ClaimDue may next return it
//	<prefix>user:{<user>}:pending    sorted set: invitation ID → its Expires, for PendingFor
//	<prefix>user:{<user>}:out        sorted set: the user's own invitations → their Expires, for Admit
//	<prefix>user:{<user>}:rate       string: when the user's invite budget is whole again (ms), for Admit
//	<prefix>group:{<group>}          set: the members, plus "" so that an empty group exists
//	<prefix>dev:{u:<user>}           hash: the user's device registrations (see Devices)
//	<prefix>tok:{<sha256 hex>}       string: the owner of one (platform, token) (see Devices)
//	<prefix>push:{<id>}              hash: the push jobs of one invitation (see Push jobs)
//	<prefix>pushq                    sorted set: push job → ms when Claim may next return it
//
// The invitation hash has the fields inviter, group, data, timeout (s), oo
// ("1" when OnlineUserOnly), created, deadline, expires, ended (ms, "0" for
// none), invitees (the invitees in order as netstrings, "3:bob,5:carol,";
// absent when Invitees is nil), pending (how many states are pending), seq
// (how many announcements were recorded), push (the offlinePushInfo as
// netstrings, absent when empty), one field s:<user> per invitee with its
// state, and one field a:<token> per outbox entry (the netstrings of its
// seq, action, actor, data, origin node, session and device), until
// announced; an entry forgotten (announced.lua, or forgetLua in its own
// step) leaves an empty field d:<token>, its done marker.
//
// Every change of an invitation is one script call (create.lua,
// transition.lua; on a single server admitcreate.lua, which also spends
// the invite budget and writes the index entries, joined by package
// redisscript with the bus's publish.lua for every invitee, so that an
// invite is one round trip), so concurrent changes are serialised by
// Redis. Times are
// signald's, passed in by the caller, never Redis's: the key's expiry
// (PEXPIREAT at Expires) only collects garbage, and the scripts compare now
// with expires themselves. The deadline set and the per-user index live in
// other slots, so scripts cannot keep them in step: they are written before
// the invitation, and read as hints. A deadline whose invitation has ended or
// is gone is forgotten when its timeout finds so (on a single server the
// transition that ends an invitation removes it at once); an index entry leaves when
// PendingFor finds its invitation no longer pending for the user, or when
// its score, the invitation's Expires, has passed.
//
// # Devices
//
// A registration (device.Store) is a field of its user's hash: the field is
// the netstrings of device ID and platform, the value the netstrings of
// token, sandbox ("1" or "0"), updated (ms) and version. The token index key
// is named by the SHA-256 of the netstrings of platform and token (a token
// may be 4 KiB; the same string on two platforms is two tokens) and holds
// the netstrings of the user and device that own it and of a version, which
// rises with every Register of the token (tokset.lua). The index is what
// says who owns a token: Devices returns a registration only when its
// token's entry names its device, so a registration left behind is never
// pushed, and a token has at most one device pushed.
//
// A move touches two users, so two slots, and Register is a sequence of
// one-slot steps: (1) tokset.lua points the index at the device under a new
// version and returns the entry it replaced; (2) devput.lua writes the
// registration with that version (unless the device wrote the same token
// under a higher one meanwhile) and returns the one it replaced; (3)
// devdel.lua removes the registration (1) displaced if it still holds the
// token under that version or a lower one, tokdel.lua the index entry of a
// token (2) replaced if it still names the device under that version or a
// lower one, and the index is read again; (4) if it no longer names the
// device, a later Register displaced this one, maybe before (2) wrote it, and
// devdel.lua removes it as (3) would have. Versions keep a late step from
// removing a registration made since: the index serialises the Registers
// of a token, so whichever takes it last ends with its registration, and
// every one it displaced is removed by the displacer's (3) or its own (4).
//
// A Register that dies after (1) leaves the index naming a device that
// has no registration of the token (nothing pushed until it registers
// again; if it had one, that one is pushed); after (1) or (2), the
// displaced registration is left in its user's hash, never pushed, until
// that device registers again or is removed. Unregister and RemoveDevice
// remove the registration first, then its index entry if that still names
// the device under the same version or a lower one (a Register of the same
// token under way keeps it); Drop, only if the token is still the one
// dropped, and the entry if it names the device. Each of those steps alone
// leaves nothing pushed that should not be.
//
// # Push jobs
//
// The jobs of one invitation (push.Queue) are fields of its hash, named by
// the job key k, the netstrings of user, device and kind (Job.Key's
// newline-joined form would confuse IDs holding newlines): j<k> the job
// (netstrings of the registration's user, device, platform, token, sandbox,
// updated, the reason and the deadline), s<k> its state ("p" pending, or "f"
// and the outcome), a<k> its attempts; r<netstring of user> lists the
// devices of the user's ring jobs, for Rung; x is the latest expires given
// to Add, after which Claim treats the hash as gone (Redis collects it then
// by PEXPIREAT). A job is in the due set as the netstrings of invitation ID,
// user, device and kind, scored by when it is next due. Finished jobs stay
// in the hash until it expires, so that Add still ignores them.
//
// The hash and the due set are in different slots. Add records the jobs
// first (pushadd.lua, which answers which of the given jobs are pending),
// then enters those in the due set with ZADD NX, so that a job is never in
// the set before its record: a claimer can drop an entry without a record
// as a leftover (of an expired hash) without racing an Add under way. An
// Add that dies in between leaves pending records without an entry, which
// the same Add made again (as an announcement taken over is) enters; jobs
// claimed or finished meanwhile keep their entry or stay out. Claim runs
// claim.lua on the due set, then reads the records, and removes from the set
// the entries whose record is finished, missing or past x. Finish marks the
// record finished, then removes the entry: dying in between leaves an entry
// that Claim drops after the lease. Retry updates the attempts and moves an
// existing entry (ZADD XX), in either order.
//
// It needs Redis 7.0 or later: the scripts start with a "#!lua" shebang, and
// Create uses PEXPIREAT NX and GT.
package redisstore

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/device"
	"github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/redisscript"
)

// DefaultPrefix is the key prefix when Options.Prefix is empty.
const DefaultPrefix = "signald:"

// Options configure a Store.
type Options struct {
	// Client is the Redis to use: a *redis.Client (single server or
	// Sentinel failover) or a *redis.ClusterClient. Required. The Store does
	// not close it.
	Client redis.UniversalClient
	// Prefix starts every key; DefaultPrefix when empty. It must not
	// contain '{' or '}', which would change the keys' hash tags.
	Prefix string
}

func (o *Options) validate() error {
	if o.Client == nil {
		return errors.New("redisstore: Options.Client is required")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return fmt.Errorf("redisstore: Options.Prefix %q contains a brace", o.Prefix)
	}
	return nil
}

// Store implements invite.Store, group.Store, device.Store and push.Queue
// on Redis. It is safe for
// concurrent use, and any number of Stores, in any number of processes, may
// share one Redis and prefix.
type Store struct {
	c      redis.UniversalClient
	prefix string
	// onePipeline is true when a pipeline goes to one server in order
	// (*redis.Client), so that Create can send its index entries and its
	// script in one round trip and still have them applied in that order.
	onePipeline bool
}

// New returns a Store on o.Client. It does not contact Redis; see Ping.
func New(o Options) (*Store, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	_, single := o.Client.(*redis.Client)
	return &Store{c: o.Client, prefix: o.Prefix, onePipeline: single}, nil
}

// Ping reports whether Redis answers. Errors wrap invite.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

func (s *Store) invKey(id string) string { return s.prefix + "inv:{" + id + "}" }

func (s *Store) deadlinesKey() string { return s.prefix + "deadlines" }

// announceKey is the sorted set of changes not yet announced (member
// "<inviteID>\n<token>", score: when another instance may take over).
func (s *Store) announceKey() string { return s.prefix + "announce" }

func (s *Store) pendingKey(user string) string { return s.prefix + "user:{" + user + "}:pending" }

// outgoingKey is the sorted set of an inviter's invitations (ID → Expires),
// for the active-invitations quota.
func (s *Store) outgoingKey(user string) string { return s.prefix + "user:{" + user + "}:out" }

// rateKey holds when a user's invite budget is whole again (admit.lua).
func (s *Store) rateKey(user string) string { return s.prefix + "user:{" + user + "}:rate" }

func (s *Store) groupKey(id string) string { return s.prefix + "group:{" + id + "}" }

func (s *Store) devKey(user string) string { return s.prefix + "dev:{u:" + user + "}" }

// tokKey is the index key of a token on a platform: hashed, since a token
// may be 4 KiB, and hex, which holds no brace.
func (s *Store) tokKey(p device.Platform, token string) string {
	sum := sha256.Sum256([]byte(encodeList([]string{string(p), token})))
	return s.prefix + "tok:{" + hex.EncodeToString(sum[:]) + "}"
}

func (s *Store) pushKey(inviteID string) string { return s.prefix + "push:{" + inviteID + "}" }

func (s *Store) pushQueueKey() string { return s.prefix + "pushq" }

// The scripts. Each names every key it touches in KEYS, all of one hash
// slot, except admitcreate.lua, which runs on a single server only (and
// transition.lua given the deadline set there). Their first line, "#!lua" (Redis 7), makes Redis hold them to that:
// Redis Cluster refuses a script with a shebang that touches keys of two
// slots, and Redis refuses it before it starts, rather than at its first
// write, when out of memory.
var (
	//go:embed create.lua
	createLua    string
	createScript = redis.NewScript(createLua)

	//go:embed transition.lua
	transitionLua    string
	transitionScript = redis.NewScript(transitionLua)

	//go:embed claim.lua
	claimLua    string
	claimScript = redis.NewScript(claimLua)

	//go:embed admit.lua
	admitLua    string
	admitScript = redis.NewScript(admitLua)

	//go:embed announced.lua
	announcedLua    string
	announcedScript = redis.NewScript(announcedLua)

	//go:embed admitcreate.lua
	admitCreateLua    string
	admitCreateScript = redis.NewScript(admitCreateLua)

	//go:embed tokset.lua
	toksetLua    string
	toksetScript = redis.NewScript(toksetLua)

	//go:embed devput.lua
	devputLua    string
	devputScript = redis.NewScript(devputLua)

	//go:embed devdel.lua
	devdelLua    string
	devdelScript = redis.NewScript(devdelLua)

	//go:embed devremove.lua
	devremoveLua    string
	devremoveScript = redis.NewScript(devremoveLua)

	//go:embed tokdel.lua
	tokdelLua    string
	tokdelScript = redis.NewScript(tokdelLua)

	//go:embed pushadd.lua
	pushaddLua    string
	pushaddScript = redis.NewScript(pushaddLua)

	//go:embed pushmark.lua
	pushmarkLua    string
	pushmarkScript = redis.NewScript(pushmarkLua)

	//go:embed pushrung.lua
	pushrungLua    string
	pushrungScript = redis.NewScript(pushrungLua)
)

// The scripts joined with the bus's part (package redisscript), on a
// single server only. Their After forgets a change's outbox entry when the
// caller says nothing else remains to be done for it (no offline pushes):
// X is {the outbox set, its member, the invitation's hash, the entry's
// field, its done marker}, or empty to keep the entry. The marker (field
// d:<token>, empty) stays with the invitation, so that the same request
// sent again after its answer was lost (go-redis does across a reconnect)
// is still recognised as applied, as the entry itself would be. It is
// written only in place of an entry that was there, as announced.lua does:
// an invitation that ended past its retention is gone by then (its
// PEXPIREAT in the past), and a marker would make a hash of it again, with
// no expiry and nothing else in it.
var (
	admitCreateMain = redisscript.Main{Body: admitCreateLua, Audience: createdAudience, After: forgetLua}
	transitionMain  = redisscript.Main{Body: transitionLua, Audience: changeAudience, After: forgetLua}
)

const forgetLua = `if #X == 5 then
  redis.call('ZREM', X[1], X[2])
  if redis.call('HDEL', X[3], X[4]) == 1 then
    redis.call('HSET', X[3], X[5], '')
  end
end`

// createdAudience: the invitees given, once admitcreate.lua stored the
// invitation (or found it stored by this very call).
const createdAudience = `if r ~= 0 then
  return nil
end
return users, false`

// changeAudience: the inviter and every invitee, read from the invitation
// transition.lua returns, once the change is applied; for a timeout the
// inviter and the invitees it timed out (transition.lua's changed, in the
// invitees' order), who are also the users its frame lists. They hear it
// only live when the invitation was sent with onlineUserOnly. Nobody, when
// an earlier change is still in the outbox: its event goes first, and the
// caller announces them in order.
const changeAudience = `if r[1] ~= 0 then
  return nil
end
local f = {}
local flat = r[4]
for i = 1, #flat, 2 do
  f[flat[i]] = flat[i + 1]
end
local own = 'a:' .. ARGV[6]
for k in pairs(f) do
  if string.sub(k, 1, 2) == 'a:' and k ~= own then
    return nil
  end
end
local out = {f['inviter']}
if ARGV[1] == 'timeout' then
  for _, u in ipairs(r[3]) do
    out[#out + 1] = u
  end
  return out, f['oo'] == '1', r[3]
end
local s = f['invitees'] or ''
local i = 1
while i <= #s do
  local colon = string.find(s, ':', i, true)
  local n = tonumber(string.sub(s, i, colon - 1))
  out[#out + 1] = string.sub(s, colon + 1, colon + n)
  i = colon + n + 2
end
return out, f['oo'] == '1'`

// Status codes returned by the scripts.
const (
	statusOK = iota
	statusNotFound
	statusForbidden
	statusEnded
	statusNotDue
	statusInvalid
	statusExists
	statusRateLimited // admitcreate.lua only
	statusRecount     // admitcreate.lua only: see there
)

var statusErrs = map[int64]error{
	statusNotFound:  invite.ErrNotFound,
	statusForbidden: invite.ErrForbidden,
	statusEnded:     invite.ErrEnded,
	statusNotDue:    invite.ErrNotDue,
	statusInvalid:   invite.ErrInvalid,
	statusExists:    invite.ErrExists,
}

func statusErr(status int64) error {
	if err, ok := statusErrs[status]; ok {
		return err
	}
	return fmt.Errorf("unknown script status %d", status)
}

// unavailable wraps an error of the Redis client (network, timeout, or an
// error reply) so that it matches invite.ErrUnavailable and still matches
// what it was (context.Canceled, ...).
func unavailable(op string, err error) error {
	return fmt.Errorf("redisstore: %s: %w: %w", op, invite.ErrUnavailable, err)
}
