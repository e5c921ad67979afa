// Package redisstore keeps invitations, their deadlines and groups in Redis,
// so that any number of signald nodes share them. It is the only package
// that imports go-redis.
//
// # Keys
//
// Every key starts with Options.Prefix (default "signald:"). Keys of one
// invitation, user or group carry its ID as a hash tag, so that each Lua
// script touches one slot and the store runs unchanged on Redis Cluster:
//
//	<prefix>inv:{<id>}               hash: one invitation (fields below)
//	<prefix>deadlines                sorted set: invitation ID → ms when ClaimDue may next return it
//	<prefix>user:{<user>}:pending    sorted set: invitation ID → its Expires, for PendingFor
//	<prefix>group:{<group>}          set: the members, plus "" so that an empty group exists
//
// The invitation hash has the fields inviter, group, data, timeout (s), oo
// ("1" when OnlineUserOnly), created, deadline, expires, ended (ms, "0" for
// none), invitees (the invitees in order as netstrings, "3:bob,5:carol,";
// absent when Invitees is nil), pending (how many states are pending) and one
// field s:<user> per invitee with its state.
//
// Every change of an invitation is one script call (create.lua,
// transition.lua), so concurrent changes are serialised by Redis. Times are
// signald's, passed in by the caller, never Redis's: the key's expiry
// (PEXPIREAT at Expires) only collects garbage, and the scripts compare now
// with expires themselves. The deadline set and the per-user index live in
// other slots, so scripts cannot keep them in step: they are written before
// the invitation, and read as hints. A deadline whose invitation has ended or
// is gone is forgotten when its timeout finds so; an index entry leaves when
// PendingFor finds its invitation no longer pending for the user, or when
// its score, the invitation's Expires, has passed.
//
// It needs Redis 7.0 or later: the scripts start with a "#!lua" shebang, and
// Create uses PEXPIREAT NX and GT.
package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/invite"
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

// Store implements invite.Store and group.Store on Redis. It is safe for
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

func (s *Store) groupKey(id string) string { return s.prefix + "group:{" + id + "}" }

// The scripts. Each names every key it touches in KEYS, all of one hash
// slot. Their first line, "#!lua" (Redis 7), makes Redis hold them to that:
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
)

// Status codes returned by the scripts.
const (
	statusOK = iota
	statusNotFound
	statusForbidden
	statusEnded
	statusNotDue
	statusInvalid
	statusExists
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
