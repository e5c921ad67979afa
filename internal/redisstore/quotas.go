package redisstore

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/redisscript"
)

// Admit implements invite.Quotas in one round trip when nobody is near a
// limit: admit.lua spends the budget, and the counts are bounds read from
// the indexes (ZCOUNT of entries not expired), which may still hold
// invitations that ended. Only a bound at the limit is made exact, by
// reading the invitations (and tidying the index).
func (s *Store) Admit(ctx context.Context, inviter string, invitees []string, now int64, l invite.Limits) error {
	interval := 1000 / l.Rate
	pipe := s.c.Pipeline()
	budget := pipe.EvalSha(ctx, admitScript.Hash(), []string{s.rateKey(inviter)},
		now, len(invitees), interval, float64(l.Burst)*interval)
	active, pending := s.countBounds(ctx, pipe, inviter, invitees, now)
	_, _ = pipe.Exec(ctx)
	if redis.HasErrorPrefix(budget.Err(), "NOSCRIPT") {
		budget = admitScript.Run(ctx, s.c, []string{s.rateKey(inviter)}, now, len(invitees), interval, float64(l.Burst)*interval)
	}
	ok, err := budget.Int64()
	if err != nil {
		return unavailable("admit "+inviter, err)
	}
	if ok != 1 {
		return rateLimited(len(invitees))
	}
	return s.checkCounts(ctx, inviter, invitees, now, l, active, pending)
}

func rateLimited(n int) error {
	return fmt.Errorf("%d invitees: %w", n, invite.ErrRateLimited)
}

// CreateAdmitted implements invite.AdmittingStore. On a single server (or
// Sentinel) it is one round trip, admitcreate.lua, unless a bound read from
// the indexes is at its limit: then the count is made exact, as Admit
// makes it, and the invitation created by Create. On Redis Cluster the
// keys are in too many slots for one script: it is Admit, then Create.
func (s *Store) CreateAdmitted(ctx context.Context, inv *invite.Invitation, announceBy int64, l invite.Limits) error {
	if !s.onePipeline {
		if err := s.Admit(ctx, inv.Inviter, inv.Invitees, inv.CreatedAt, l); err != nil {
			return err
		}
		return s.Create(ctx, inv, announceBy)
	}
	keys, args := s.admitCreateCall(inv, announceBy, l)
	status, err := admitCreateScript.Run(ctx, s.c, keys, args...).Int64()
	if err != nil {
		return unavailable("create "+inv.ID, err)
	}
	return s.admitted(ctx, inv, announceBy, l, status)
}

// CreateAdmittedPublishing implements invite.PublishingStore: on a single
// server, admitcreate.lua joined with the publisher's part (ev.Payload, a
// redisscript.Part: the bus's keeping and publishing of the ring for every
// invitee), so that the whole invite is one round trip. Elsewhere, or for
// a payload it does not know, it is CreateAdmitted, and the caller
// publishes.
func (s *Store) CreateAdmittedPublishing(ctx context.Context, inv *invite.Invitation, announceBy int64, l invite.Limits, ev invite.PreparedEvent) ([]any, bool, error) {
	part, ok := ev.Payload.(redisscript.Part)
	if !ok || !s.onePipeline || part.Users == nil {
		return nil, false, s.CreateAdmitted(ctx, inv, announceBy, l)
	}
	var after []any
	if ev.Complete {
		for token, a := range inv.Unannounced {
			if a.Action == invite.ActInvite {
				after = s.forgetEntry(inv.ID, token)
			}
		}
	}
	keys, args := s.admitCreateCall(inv, announceBy, l)
	keys, args = redisscript.Args(keys, args, after, part)
	v, err := redisscript.Join(admitCreateMain, part.Body).Script().Run(ctx, s.c, keys, args...).Result()
	if err != nil {
		return nil, false, unavailable("create "+inv.ID, err)
	}
	main, replies, ran, _, ok := redisscript.Reply(v)
	status, isInt := main.(int64)
	if !ok || !isInt {
		return nil, false, fmt.Errorf("redisstore: create %s: malformed script reply %v", inv.ID, v)
	}
	if status == statusOK {
		return replies, ran, nil // stored; the ring published unless ran is false
	}
	return nil, false, s.admitted(ctx, inv, announceBy, l, status)
}

// admitCreateCall is admitcreate.lua's keys and arguments for inv.
func (s *Store) admitCreateCall(inv *invite.Invitation, announceBy int64, l invite.Limits) ([]string, []any) {
	keys := make([]string, 0, 5+len(inv.Invitees))
	keys = append(keys, s.invKey(inv.ID), s.deadlinesKey(), s.announceKey(), s.rateKey(inv.Inviter), s.outgoingKey(inv.Inviter))
	for _, u := range inv.Invitees {
		keys = append(keys, s.pendingKey(u))
	}
	interval := 1000 / l.Rate
	fields := createArgs(inv) // Expires, the creation's entry, then the hash's fields
	args := make([]any, 0, 12+len(inv.Unannounced)+len(fields)-2)
	args = append(args, inv.CreatedAt, interval, float64(l.Burst)*interval, l.MaxActive, l.MaxPending,
		inv.ID, inv.Deadline, inv.Expires, boolField(!inv.OnlineUserOnly), announceBy, fields[1], len(inv.Unannounced))
	for token := range inv.Unannounced {
		args = append(args, token)
	}
	return keys, append(args, fields[2:]...)
}

// admitted finishes a CreateAdmitted whose script answered status.
func (s *Store) admitted(ctx context.Context, inv *invite.Invitation, announceBy int64, l invite.Limits, status int64) error {
	switch status {
	case statusOK:
		return nil
	case statusRateLimited:
		return rateLimited(len(inv.Invitees))
	case statusRecount:
		pipe := s.c.Pipeline()
		active, pending := s.countBounds(ctx, pipe, inv.Inviter, inv.Invitees, inv.CreatedAt)
		_, _ = pipe.Exec(ctx)
		if err := s.checkCounts(ctx, inv.Inviter, inv.Invitees, inv.CreatedAt, l, active, pending); err != nil {
			return err
		}
		return s.Create(ctx, inv, announceBy)
	}
	return fmt.Errorf("redisstore: create %s: %w", inv.ID, statusErr(status))
}

// countBounds queues on pipe the bounds of inviter's active invitations and
// of each invitee's pending ones: the entries of their indexes not expired
// at now, which may still hold invitations that ended.
func (s *Store) countBounds(ctx context.Context, pipe redis.Pipeliner, inviter string, invitees []string, now int64) (*redis.IntCmd, []*redis.IntCmd) {
	min := "(" + strconv.FormatInt(now, 10)
	active := pipe.ZCount(ctx, s.outgoingKey(inviter), min, "+inf")
	pending := make([]*redis.IntCmd, len(invitees))
	for i, u := range invitees {
		pending[i] = pipe.ZCount(ctx, s.pendingKey(u), min, "+inf")
	}
	return active, pending
}

// checkCounts checks the bounds countBounds read against l, and makes
// exact, by reading the invitations (and tidying the index), only a bound
// at its limit.
func (s *Store) checkCounts(ctx context.Context, inviter string, invitees []string, now int64, l invite.Limits, active *redis.IntCmd, pending []*redis.IntCmd) error {
	if n, err := active.Result(); err != nil {
		return unavailable("admit "+inviter, err)
	} else if n >= int64(l.MaxActive) {
		if n, err = s.activeBy(ctx, inviter, now); err != nil {
			return err
		}
		if n >= int64(l.MaxActive) {
			return fmt.Errorf("%d active invitations, at most %d: %w", n, l.MaxActive, invite.ErrTooManyActive)
		}
	}
	for i, u := range invitees {
		n, err := pending[i].Result()
		if err != nil {
			return unavailable("admit "+inviter, err)
		}
		if n < int64(l.MaxPending) {
			continue
		}
		invs, err := s.PendingFor(ctx, u, now)
		if err != nil {
			return err
		}
		if len(invs) >= l.MaxPending {
			return fmt.Errorf("%q is pending in %d invitations, at most %d: %w", u, len(invs), l.MaxPending, invite.ErrTooManyPending)
		}
	}
	return nil
}

// activeBy counts the invitations inviter made that are still active,
// and drops the others from its index.
func (s *Store) activeBy(ctx context.Context, inviter string, now int64) (int64, error) {
	key := s.outgoingKey(inviter)
	ids, err := s.c.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(now, 10), Max: "+inf"}).Result()
	if err != nil {
		return 0, unavailable("active by "+inviter, err)
	}
	pipe := s.c.Pipeline()
	states := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		states[i] = pipe.HMGet(ctx, s.invKey(id), fEnded, fExpires)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, unavailable("active by "+inviter, err)
	}
	var n int64
	var stale []any
	for i, st := range states {
		v := st.Val()
		ended, _ := v[0].(string)
		expires, _ := v[1].(string)
		exp, _ := strconv.ParseInt(expires, 10, 64)
		if ended == "0" && (exp == 0 || exp > now) {
			n++
		} else if ended != "" {
			stale = append(stale, ids[i]) // ended or dropped; a missing one may be under way
		}
	}
	if len(stale) > 0 {
		_ = s.c.ZRem(ctx, key, stale...).Err() // tidying only
	}
	return n, nil
}
