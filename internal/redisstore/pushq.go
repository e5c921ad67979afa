package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/device"
	"github.com/signald/signald/internal/push"
)

// Store keeps push jobs too; the key layout and the order of the steps are
// in the package comment (Push jobs).
var _ push.Queue = (*Store)(nil)

// Fields of an invitation's push hash; a job's fields are the letter and
// its job key.
const (
	pfJob      = "j"
	pfState    = "s"
	pfAttempts = "a"
	pfRung     = "r" // + the netstring of a user: the devices of its ring jobs
	pfExpires  = "x"

	pushPending     = "p"
	pushFinished    = "f" // + the outcome
	pushMarkAttempt = pfAttempts
	pushMarkState   = pfState
)

// jobKey names a job within its invitation: the netstrings of user, device
// and kind, which, unlike Job.Key, no ID can make ambiguous.
func jobKey(j push.Job) string { return encodeList([]string{j.User, j.Device, j.Kind}) }

// pushMember is a job's member of the due set: the netstring of its
// invitation's ID, then its job key.
func pushMember(inviteID string, j push.Job) string {
	return encodeList([]string{inviteID}) + jobKey(j)
}

func encodeJob(j push.Job) string {
	return encodeList([]string{j.Reg.User, j.Reg.Device, string(j.Reg.Platform), j.Reg.Token,
		boolField(j.Reg.Sandbox), strconv.FormatInt(j.Reg.Updated, 10), j.Reason, strconv.FormatInt(j.Deadline, 10)})
}

// decodeJob rebuilds a job from its invitation, its job key (decoded) and
// the fields j and a of its record.
func decodeJob(inviteID string, key []string, enc, attempts string) (push.Job, error) {
	f, err := decodeList(enc)
	if err != nil || len(f) != 8 || len(key) != 3 {
		return push.Job{}, fmt.Errorf("malformed push job %q", enc)
	}
	updated, err1 := strconv.ParseInt(f[5], 10, 64)
	deadline, err2 := strconv.ParseInt(f[7], 10, 64)
	n, err3 := strconv.Atoi(attempts)
	if err := errors.Join(err1, err2, err3); err != nil {
		return push.Job{}, fmt.Errorf("malformed push job %q (attempts %q): %w", enc, attempts, err)
	}
	return push.Job{
		InviteID: inviteID, User: key[0], Device: key[1], Kind: key[2],
		Reg: device.Registration{User: f[0], Device: f[1], Platform: device.Platform(f[2]), Token: f[3],
			Sandbox: f[4] == "1", Updated: updated},
		Reason: f[6], Deadline: deadline, Attempts: n,
	}, nil
}

// queueUnavailable wraps an error of the Redis client as unavailable does,
// for push.Queue.
func queueUnavailable(op string, err error) error {
	return fmt.Errorf("redisstore: %s: %w: %w", op, push.ErrQueueUnavailable, err)
}

// Add implements push.Queue in two round trips: the records, then the due
// set entries of those pending (see the package comment).
func (s *Store) Add(ctx context.Context, inviteID string, jobs []push.Job, now, expires int64) error {
	if len(jobs) == 0 {
		return nil
	}
	op := "add push jobs of " + inviteID
	args := make([]any, 0, 1+5*len(jobs))
	args = append(args, expires)
	for _, j := range jobs {
		ring := ""
		if j.Kind == push.KindRing {
			ring = pfRung + encodeList([]string{j.User})
		}
		args = append(args, jobKey(j), ring, encodeList([]string{j.Device}), encodeJob(j), j.Attempts)
	}
	pending, err := pushaddScript.Run(ctx, s.c, []string{s.pushKey(inviteID)}, args...).StringSlice()
	if err != nil {
		return queueUnavailable(op, err)
	}
	if len(pending) == 0 {
		return nil
	}
	prefix := encodeList([]string{inviteID})
	members := make([]redis.Z, len(pending))
	for i, k := range pending {
		members[i] = redis.Z{Score: float64(now), Member: prefix + k}
	}
	if err := s.c.ZAddNX(ctx, s.pushQueueKey(), members...).Err(); err != nil {
		return queueUnavailable(op, err)
	}
	return nil
}

// Rung implements push.Queue in one script call: ordered by user, then
// device.
func (s *Store) Rung(ctx context.Context, inviteID string, users []string) ([]push.Job, error) {
	op := "rung of " + inviteID
	args := []any{encodeList([]string{push.KindRing})}
	seen := make(map[string]bool, len(users))
	for _, u := range users {
		if !seen[u] {
			seen[u] = true
			args = append(args, encodeList([]string{u}))
		}
	}
	if len(args) == 1 {
		return nil, nil
	}
	flat, err := pushrungScript.Run(ctx, s.c, []string{s.pushKey(inviteID)}, args...).StringSlice()
	if err != nil {
		return nil, queueUnavailable(op, err)
	}
	var out []push.Job
	for i := 0; i+2 < len(flat); i += 3 {
		key, err := decodeList(flat[i])
		if err != nil {
			return nil, fmt.Errorf("redisstore: %s: malformed job key %q", op, flat[i])
		}
		j, err := decodeJob(inviteID, key, flat[i+1], flat[i+2])
		if err != nil {
			return nil, fmt.Errorf("redisstore: %s: %w", op, err)
		}
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b push.Job) int {
		return cmp.Or(strings.Compare(a.User, b.User), strings.Compare(a.Device, b.Device))
	})
	return out, nil
}

// Claim implements push.Queue: claim.lua on the due set, then the records
// of the members claimed, one HMGET per invitation in one pipeline. Members
// whose record is finished, gone, past its invitation's expires or
// malformed are removed from the set rather than returned.
func (s *Store) Claim(ctx context.Context, now int64, lease time.Duration, max int) ([]push.Job, error) {
	if max <= 0 {
		return nil, nil
	}
	const op = "claim push jobs"
	members, _, err := s.claim(ctx, s.pushQueueKey(), now, lease, max)
	if err != nil {
		return nil, queueUnavailable(op, err)
	}
	if len(members) == 0 {
		return nil, nil
	}

	type claimed struct {
		member string
		id     string
		key    []string // user, device, kind
		at     int      // index of its j field in its invitation's HMGET
	}
	var jobs []claimed
	var drop []any
	fields := map[string][]string{} // inviteID → the fields to read
	var ids []string                // the invitations, in order of first claim
	for _, m := range members {
		f, err := decodeList(m)
		if err != nil || len(f) != 4 {
			drop = append(drop, m)
			continue
		}
		id := f[0]
		if _, ok := fields[id]; !ok {
			fields[id] = []string{pfExpires}
			ids = append(ids, id)
		}
		k := encodeList(f[1:])
		jobs = append(jobs, claimed{member: m, id: id, key: f[1:], at: len(fields[id])})
		fields[id] = append(fields[id], pfJob+k, pfState+k, pfAttempts+k)
	}
	records := map[string]*redis.SliceCmd{}
	if len(ids) > 0 {
		pipe := s.c.Pipeline()
		for _, id := range ids {
			records[id] = pipe.HMGet(ctx, s.pushKey(id), fields[id]...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, queueUnavailable(op, err)
		}
	}
	var out []push.Job
	for _, c := range jobs {
		v := records[c.id].Val()
		str := func(i int) string { f, _ := v[i].(string); return f }
		if x, _ := strconv.ParseInt(str(0), 10, 64); x > 0 && now >= x {
			drop = append(drop, c.member) // the invitation expired
			continue
		}
		if str(c.at+1) != pushPending {
			drop = append(drop, c.member) // finished, or no record
			continue
		}
		j, err := decodeJob(c.id, c.key, str(c.at), str(c.at+2))
		if err != nil {
			drop = append(drop, c.member) // never to be sent: do not claim it again
			continue
		}
		out = append(out, j)
	}
	if len(drop) > 0 {
		// Tidying only: what is left comes back after the lease, and is
		// dropped then.
		_ = s.c.ZRem(ctx, s.pushQueueKey(), drop...).Err()
	}
	return out, nil
}

// Retry implements push.Queue: the attempts in the record, and the due
// set entry moved if it is still there (ZADD XX: a job finished meanwhile
// is not brought back), in one round trip. Either alone is harmless: the
// old attempts, or the job due at the end of its lease.
func (s *Store) Retry(ctx context.Context, j push.Job, at int64) error {
	op := "retry push job of " + j.InviteID
	keys := []string{s.pushKey(j.InviteID)}
	args := []any{jobKey(j), pushMarkAttempt, j.Attempts}
	pipe := s.c.Pipeline()
	mark := pipe.EvalSha(ctx, pushmarkScript.Hash(), keys, args...)
	move := pipe.ZAddXX(ctx, s.pushQueueKey(), redis.Z{Score: float64(at), Member: pushMember(j.InviteID, j)})
	_, _ = pipe.Exec(ctx)
	if redis.HasErrorPrefix(mark.Err(), "NOSCRIPT") {
		mark = pushmarkScript.Run(ctx, s.c, keys, args...)
	}
	if err := errors.Join(mark.Err(), move.Err()); err != nil {
		return queueUnavailable(op, err)
	}
	return nil
}

// Finish implements push.Queue: the record marked finished, then the due
// set entry removed. Not in one pipeline: were the entry removed and the
// mark lost, the job would be pending without an entry, which the next
// Add of it would enter again.
func (s *Store) Finish(ctx context.Context, j push.Job, outcome string) error {
	op := "finish push job of " + j.InviteID
	err := pushmarkScript.Run(ctx, s.c, []string{s.pushKey(j.InviteID)}, jobKey(j), pushMarkState, pushFinished+outcome).Err()
	if err != nil {
		return queueUnavailable(op, err)
	}
	if err := s.c.ZRem(ctx, s.pushQueueKey(), pushMember(j.InviteID, j)).Err(); err != nil {
		return queueUnavailable(op, err)
	}
	return nil
}
