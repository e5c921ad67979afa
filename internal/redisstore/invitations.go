package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/invite"
	"github.com/signald/signald/internal/redisscript"
)

// Fields of the invitation hash.
const (
	fInviter     = "inviter"
	fGroup       = "group"
	fInvitees    = "invitees"
	fData        = "data"
	fTimeout     = "timeout"
	fOnlineOnly  = "oo"
	fCreated     = "created"
	fDeadline    = "deadline"
	fExpires     = "expires"
	fEnded       = "ended"
	fPending     = "pending"
	fStatePrefix = "s:"
	// fSeq: how many announcements were recorded (Invitation.Seq).
	fSeq = "seq"
	// fPush: the offlinePushInfo as netstrings of title, desc, ext and
	// disablePush ("1" or "0"); absent when all are empty.
	fPush = "push"
	// fAnnouncePrefix + token: an outbox entry (Invitation.Unannounced), as
	// netstrings of seq, action, actor, data, origin node, session, device.
	fAnnouncePrefix = "a:"
	// fDonePrefix + token, empty: a change whose outbox entry was forgotten
	// (announced.lua, or forgetLua in its own step), so that the request
	// sent again is recognised as applied. Not part of the Invitation.
	fDonePrefix = "d:"
)

// Create implements invite.Store.
//
// The deadline entry and the per-invitee index entries are written before
// the invitation, in the same pipeline on a single Redis, so that a stored
// invitation always has them. A crash in between leaves only entries
// without an invitation: the deadline is forgotten when its timeout finds
// nothing, the index entry when its score (Expires) passes. Entries are added
// with NX, so a Create that fails with ErrExists never moves the entries of
// the invitation that holds the ID.
//
// On Redis Cluster the entries and the invitation are in different slots,
// and a pipeline to several nodes keeps no order between them, so there the
// entries take a round trip of their own before the script.
func (s *Store) Create(ctx context.Context, inv *invite.Invitation, announceBy int64) error {
	keys := []string{s.invKey(inv.ID)}
	args := createArgs(inv)

	pipe := s.c.Pipeline()
	if inv.Deadline > 0 {
		pipe.ZAddNX(ctx, s.deadlinesKey(), redis.Z{Score: float64(inv.Deadline), Member: inv.ID})
	}
	for token := range inv.Unannounced {
		pipe.ZAdd(ctx, s.announceKey(), redis.Z{Score: float64(announceBy), Member: inv.ID + "\n" + token})
	}
	score := math.Inf(1)
	if inv.Expires > 0 {
		score = float64(inv.Expires)
	}
	out := s.outgoingKey(inv.Inviter)
	pipe.ZAddNX(ctx, out, redis.Z{Score: score, Member: inv.ID})
	if inv.Expires > 0 {
		pipe.Do(ctx, "PEXPIREAT", out, inv.Expires, "NX")
		pipe.Do(ctx, "PEXPIREAT", out, inv.Expires, "GT")
	} else {
		pipe.Persist(ctx, out)
	}
	if !inv.OnlineUserOnly {
		for _, u := range inv.Invitees {
			k := s.pendingKey(u)
			pipe.ZAddNX(ctx, k, redis.Z{Score: score, Member: inv.ID})
			if inv.Expires > 0 {
				// The index lives as long as its longest-lived entry: NX gives
				// a new key its expiry, GT pushes an existing one later.
				pipe.Do(ctx, "PEXPIREAT", k, inv.Expires, "NX")
				pipe.Do(ctx, "PEXPIREAT", k, inv.Expires, "GT")
			} else {
				// Never dropped (the engine always sets Expires): keep the
				// index until a later Create gives it an expiry again.
				pipe.Persist(ctx, k)
			}
		}
	}
	var created *redis.Cmd
	if s.onePipeline {
		created = pipe.EvalSha(ctx, createScript.Hash(), keys, args...)
	}
	cmds, _ := pipe.Exec(ctx)
	for _, c := range cmds {
		if c == created {
			continue
		}
		if err := c.Err(); err != nil {
			return unavailable("create "+inv.ID, err)
		}
	}
	if created == nil || redis.HasErrorPrefix(created.Err(), "NOSCRIPT") {
		created = createScript.Run(ctx, s.c, keys, args...)
	}
	status, err := created.Int64()
	if err != nil {
		return unavailable("create "+inv.ID, err)
	}
	if status != statusOK {
		return fmt.Errorf("redisstore: create %s: %w", inv.ID, statusErr(status))
	}
	return nil
}

func createArgs(inv *invite.Invitation) []any {
	pending := 0
	for _, st := range inv.States {
		if st == invite.StatePending {
			pending++
		}
	}
	created := ""
	for token, a := range inv.Unannounced {
		if a.Action == invite.ActInvite {
			created = fAnnouncePrefix + token
		}
	}
	args := []any{
		inv.Expires, created,
		fInviter, inv.Inviter,
		fGroup, inv.GroupID,
		fData, inv.Data,
		fTimeout, inv.Timeout,
		fOnlineOnly, boolField(inv.OnlineUserOnly),
		fCreated, inv.CreatedAt,
		fDeadline, inv.Deadline,
		fExpires, inv.Expires,
		fEnded, inv.EndedAt,
		fPending, pending,
		fSeq, inv.Seq,
	}
	if inv.Invitees != nil {
		args = append(args, fInvitees, encodeList(inv.Invitees))
	}
	if inv.Push != (invite.PushInfo{}) {
		p := inv.Push
		args = append(args, fPush, encodeList([]string{p.Title, p.Desc, p.Ext, boolField(p.DisablePush)}))
	}
	for u, st := range inv.States {
		args = append(args, fStatePrefix+u, string(st))
	}
	for token, a := range inv.Unannounced {
		if a.Action == invite.ActInvite && a.Actor == inv.Inviter {
			// Implied by the inviter field. Every value of a small hash
			// must stay within hash-max-listpack-value (64 bytes by
			// default), or Redis stores the whole invitation as a
			// hashtable, for good: about 950 bytes instead of 370.
			a.Actor = ""
		}
		args = append(args, fAnnouncePrefix+token, encodeList([]string{strconv.FormatInt(a.Seq, 10)})+encodeAnnouncement(a))
	}
	return args
}

// encodeAnnouncement encodes a's fields but Seq, which transition.lua
// numbers itself: netstrings of action, actor, data, origin node, session
// and device. A stored entry is the netstring of its Seq followed by these.
func encodeAnnouncement(a invite.Announcement) string {
	return encodeList([]string{string(a.Action), a.Actor, a.Data, a.Origin.Node, strconv.FormatUint(a.Origin.Session, 10), a.Origin.Device})
}

func boolField(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Apply implements invite.Store.
func (s *Store) Apply(ctx context.Context, id string, ch invite.Change) (invite.Outcome, error) {
	out, _, _, err := s.apply(ctx, id, ch, nil, nil)
	return out, err
}

// ApplyPublishing implements invite.PublishingStore: on a single server,
// transition.lua joined with the publisher's part (ev.Payload, a
// redisscript.Part for the change's audience, which the script reads from
// the invitation), so that the change and its event are one round trip.
// The event is published in the step only when no earlier change of the
// invitation is still in its outbox (those go first, announced by the
// caller). Elsewhere, or for a payload it does not know, it is Apply, and
// the caller publishes.
func (s *Store) ApplyPublishing(ctx context.Context, id string, ch invite.Change, ev invite.PreparedEvent) (invite.Outcome, []any, bool, error) {
	part, ok := ev.Payload.(redisscript.Part)
	if !ok || !s.onePipeline || ch.Token == "" {
		out, err := s.Apply(ctx, id, ch)
		return out, nil, false, err
	}
	var after []any
	if ev.Complete {
		after = s.forgetEntry(id, ch.Token)
	}
	return s.apply(ctx, id, ch, &part, after)
}

// forgetEntry is the After arguments (forgetLua) that forget the outbox
// entry of token on invitation id.
func (s *Store) forgetEntry(id, token string) []any {
	return []any{s.announceKey(), id + "\n" + token, s.invKey(id), fAnnouncePrefix + token, fDonePrefix + token}
}

// apply is Apply, joined with part when it is not nil (after: the After
// arguments); published reports whether part ran for the whole audience.
func (s *Store) apply(ctx context.Context, id string, ch invite.Change, part *redisscript.Part, after []any) (out invite.Outcome, report []any, published bool, err error) {
	op := string(ch.Action) + " " + id
	keys := []string{s.invKey(id)}
	if s.onePipeline {
		keys = append(keys, s.deadlinesKey())
	}
	args := []any{string(ch.Action), ch.Actor, ch.Data, ch.Now, ch.Now + ch.Retention, ch.Token, "", id}
	if ch.Token != "" {
		args[6] = encodeAnnouncement(invite.Announcement{Action: ch.Action, Actor: ch.Actor, Data: ch.Data, Origin: ch.Origin})
	}
	script := transitionScript
	if part != nil {
		script = redisscript.Join(transitionMain, part.Body).Script()
		keys, args = redisscript.Args(keys, args, after, *part)
	}
	var cmd *redis.Cmd
	if ch.Token != "" {
		// The outbox entry's index goes first, in the same round trip on a
		// single server: a change recorded under the token always has one,
		// and an entry whose change failed is dropped when it is claimed.
		pipe := s.c.Pipeline()
		pipe.ZAdd(ctx, s.announceKey(), redis.Z{Score: float64(ch.AnnounceBy), Member: id + "\n" + ch.Token})
		if s.onePipeline {
			cmd = pipe.EvalSha(ctx, script.Hash(), keys, args...)
		}
		cmds, _ := pipe.Exec(ctx)
		if err := cmds[0].Err(); err != nil {
			return invite.Outcome{}, nil, false, unavailable(op, err)
		}
	}
	if cmd == nil || redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		cmd = script.Run(ctx, s.c, keys, args...)
	}
	v, err := cmd.Result()
	if err != nil {
		return invite.Outcome{}, nil, false, unavailable(op, err)
	}
	if part != nil {
		var ok bool
		if v, report, published, _, ok = redisscript.Reply(v); !ok {
			return invite.Outcome{}, nil, false, fmt.Errorf("redisstore: %s: malformed script reply %v", op, v)
		}
	}
	res, _ := v.([]any)
	var status int64 = -1
	if len(res) > 0 {
		status, _ = res[0].(int64)
	}
	if status < 0 {
		return invite.Outcome{}, nil, false, fmt.Errorf("redisstore: %s: malformed script reply %v", op, v)
	}
	if status != statusOK {
		return invite.Outcome{}, nil, false, fmt.Errorf("redisstore: %s: %w", op, statusErr(status))
	}
	out, err = decodeOutcome(id, res)
	if err != nil {
		return invite.Outcome{}, nil, false, fmt.Errorf("redisstore: %s: %w", op, err)
	}
	if out.Ended && ch.Action != invite.ActTimeout && !s.onePipeline && out.Invitation.Deadline > 0 {
		// On a cluster the deadline is in another slot than the script's:
		// forget it here. Failing that, it comes due and is found ended.
		_ = s.c.ZRem(ctx, s.deadlinesKey(), id).Err()
	}
	return out, report, published, nil
}

func decodeOutcome(id string, res []any) (invite.Outcome, error) {
	if len(res) != 4 {
		return invite.Outcome{}, fmt.Errorf("malformed script reply of %d elements", len(res))
	}
	ended, _ := res[1].(int64)
	changedRaw, _ := res[2].([]any)
	flat, _ := res[3].([]any)
	var changed []string
	for _, u := range changedRaw {
		s, ok := u.(string)
		if !ok {
			return invite.Outcome{}, fmt.Errorf("malformed script reply: changed %v", changedRaw)
		}
		changed = append(changed, s)
	}
	h := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, ok1 := flat[i].(string)
		v, ok2 := flat[i+1].(string)
		if !ok1 || !ok2 {
			return invite.Outcome{}, fmt.Errorf("malformed script reply: fields %v", flat)
		}
		h[k] = v
	}
	inv, err := decodeInvitation(id, h)
	if err != nil {
		return invite.Outcome{}, err
	}
	return invite.Outcome{Invitation: inv, Changed: changed, Ended: ended == 1}, nil
}

// Get implements invite.Store.
func (s *Store) Get(ctx context.Context, id string, now int64) (*invite.Invitation, error) {
	h, err := s.c.HGetAll(ctx, s.invKey(id)).Result()
	if err != nil {
		return nil, unavailable("get "+id, err)
	}
	if len(h) == 0 {
		return nil, fmt.Errorf("redisstore: get %s: %w", id, invite.ErrNotFound)
	}
	inv, err := decodeInvitation(id, h)
	if err != nil {
		return nil, fmt.Errorf("redisstore: get %s: %w", id, err)
	}
	if invite.Dropped(inv, now) {
		return nil, fmt.Errorf("redisstore: get %s: %w", id, invite.ErrNotFound)
	}
	return inv, nil
}

// PendingFor implements invite.Store. It costs two round trips, and a
// third when it finds index entries to drop.
func (s *Store) PendingFor(ctx context.Context, user string, now int64) ([]*invite.Invitation, error) {
	op := "pending for " + user
	key := s.pendingKey(user)
	pipe := s.c.Pipeline()
	// Scores are the invitations' Expires as created: at or before now an
	// invitation is dropped, or has ended (which moves its Expires).
	pipe.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(now, 10))
	idsCmd := pipe.ZRange(ctx, key, 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable(op, err)
	}
	ids := idsCmd.Val()
	if len(ids) == 0 {
		return nil, nil
	}

	pipe = s.c.Pipeline()
	gets := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		gets[i] = pipe.HGetAll(ctx, s.invKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable(op, err)
	}
	var out []*invite.Invitation
	var stale []any
	for i, id := range ids {
		h := gets[i].Val()
		if len(h) == 0 {
			// Not removed: its Create may be under way, the index entry
			// written and the invitation not yet. An entry whose Create
			// never finished leaves by its score.
			continue
		}
		inv, err := decodeInvitation(id, h)
		if err != nil {
			return nil, fmt.Errorf("redisstore: %s: %w", op, err)
		}
		if inv.OnlineUserOnly || invite.Dropped(inv, now) || !inv.Active() || inv.States[user] != invite.StatePending {
			stale = append(stale, id)
			continue
		}
		if inv.Deadline > 0 && now >= inv.Deadline {
			continue // timed out, though not yet fired: not to be rung
		}
		out = append(out, inv)
	}
	if len(stale) > 0 {
		// Tidying only: what is left is dropped by the next call.
		_ = s.c.ZRem(ctx, key, stale...).Err()
	}
	slices.SortFunc(out, func(a, b *invite.Invitation) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// ClaimUnannounced implements invite.Store with claim.lua, as ClaimDue.
func (s *Store) ClaimUnannounced(ctx context.Context, now int64, lease time.Duration, max int) ([]invite.Unannounced, error) {
	members, _, err := s.claim(ctx, s.announceKey(), now, lease, max)
	if err != nil {
		return nil, unavailable("claim unannounced", err)
	}
	out := make([]invite.Unannounced, 0, len(members))
	for _, m := range members {
		id, token, _ := strings.Cut(m, "\n")
		out = append(out, invite.Unannounced{ID: id, Token: token})
	}
	return out, nil
}

// Announced implements invite.Store: one pipeline for the whole batch.
func (s *Store) Announced(ctx context.Context, done []invite.Unannounced) error {
	if len(done) == 0 {
		return nil
	}
	// One announced.lua per invitation (its slot), and the outbox set's
	// members in one ZREM, all in one pipeline.
	tokens := make(map[string][]any)
	var order []string
	members := make([]any, 0, len(done))
	for _, d := range done {
		if _, ok := tokens[d.ID]; !ok {
			order = append(order, d.ID)
		}
		tokens[d.ID] = append(tokens[d.ID], d.Token)
		members = append(members, d.ID+"\n"+d.Token)
	}
	pipe := s.c.Pipeline()
	scripts := make([]*redis.Cmd, len(order))
	for i, id := range order {
		scripts[i] = pipe.EvalSha(ctx, announcedScript.Hash(), []string{s.invKey(id)}, tokens[id]...)
	}
	pipe.ZRem(ctx, s.announceKey(), members...)
	cmds, _ := pipe.Exec(ctx)
	for _, c := range cmds[len(order):] {
		if err := c.Err(); err != nil {
			return unavailable("announced", err)
		}
	}
	for i, c := range scripts {
		err := c.Err()
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			err = announcedScript.Run(ctx, s.c, []string{s.invKey(order[i])}, tokens[order[i]]...).Err()
		}
		if err != nil {
			return unavailable("announced", err)
		}
	}
	return nil
}

// ReleaseDeadlines implements invite.Store.
func (s *Store) ReleaseDeadlines(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	if err := s.c.ZRem(ctx, s.deadlinesKey(), members...).Err(); err != nil {
		return unavailable("release deadlines", err)
	}
	return nil
}

// ClaimDue implements invite.Store.
func (s *Store) ClaimDue(ctx context.Context, now int64, lease time.Duration, max int) ([]string, int64, error) {
	if max <= 0 {
		return nil, 0, nil
	}
	ids, next, err := s.claim(ctx, s.deadlinesKey(), now, lease, max)
	if err != nil {
		return nil, 0, unavailable("claim due", err)
	}
	return ids, next, nil
}

// claim runs claim.lua on key: the members claimed, and the earliest score
// left unclaimed (0 when none).
func (s *Store) claim(ctx context.Context, key string, now int64, lease time.Duration, max int) ([]string, int64, error) {
	res, err := claimScript.Run(ctx, s.c, []string{key}, now, now+lease.Milliseconds(), max).Slice()
	if err != nil {
		return nil, 0, err
	}
	if len(res) != 2 {
		return nil, 0, fmt.Errorf("malformed claim reply %v", res)
	}
	raw, _ := res[0].([]any)
	ids := make([]string, 0, len(raw))
	for _, r := range raw {
		id, ok := r.(string)
		if !ok {
			return nil, 0, fmt.Errorf("malformed claim reply %v", res)
		}
		ids = append(ids, id)
	}
	var next int64
	if n, ok := res[1].(string); ok && n != "" {
		f, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("malformed claim reply %v", res)
		}
		next = int64(f)
	}
	return ids, next, nil
}

// decodeInvitation rebuilds an invitation from its hash.
func decodeInvitation(id string, h map[string]string) (*invite.Invitation, error) {
	inv := &invite.Invitation{
		ID:             id,
		GroupID:        h[fGroup],
		Inviter:        h[fInviter],
		Data:           h[fData],
		OnlineUserOnly: h[fOnlineOnly] == "1",
		States:         make(map[string]invite.State),
	}
	var errs []error
	num := func(field string) int64 {
		n, err := strconv.ParseInt(h[field], 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", field, err))
		}
		return n
	}
	inv.Timeout = int(num(fTimeout))
	inv.CreatedAt = num(fCreated)
	inv.Deadline = num(fDeadline)
	inv.Expires = num(fExpires)
	inv.EndedAt = num(fEnded)
	if _, ok := h[fSeq]; ok {
		inv.Seq = num(fSeq)
	}
	if v, ok := h[fPush]; ok {
		p, err := decodeList(v)
		if err != nil || len(p) != 4 {
			errs = append(errs, fmt.Errorf("field %s: %q", fPush, v))
		} else {
			inv.Push = invite.PushInfo{Title: p[0], Desc: p[1], Ext: p[2], DisablePush: p[3] == "1"}
		}
	}
	if v, ok := h[fInvitees]; ok {
		var err error
		if inv.Invitees, err = decodeList(v); err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", fInvitees, err))
		}
	}
	for k, v := range h {
		if u, ok := strings.CutPrefix(k, fStatePrefix); ok {
			inv.States[u] = invite.State(v)
		} else if token, ok := strings.CutPrefix(k, fAnnouncePrefix); ok {
			a, err := decodeAnnouncement(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("field %s: %w", k, err))
				continue
			}
			if inv.Unannounced == nil {
				inv.Unannounced = make(map[string]invite.Announcement)
			}
			inv.Unannounced[token] = a
		}
	}
	for token, a := range inv.Unannounced {
		if a.Action == invite.ActInvite && a.Actor == "" {
			a.Actor = inv.Inviter // left implied by createArgs
			inv.Unannounced[token] = a
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("malformed invitation: %w", err)
	}
	return inv, nil
}

func decodeAnnouncement(v string) (invite.Announcement, error) {
	f, err := decodeList(v)
	if err != nil || len(f) != 7 {
		return invite.Announcement{}, fmt.Errorf("malformed announcement %q", v)
	}
	seq, err1 := strconv.ParseInt(f[0], 10, 64)
	session, err2 := strconv.ParseUint(f[5], 10, 64)
	if err1 != nil || err2 != nil {
		return invite.Announcement{}, fmt.Errorf("malformed announcement %q", v)
	}
	return invite.Announcement{Seq: seq, Action: invite.Action(f[1]), Actor: f[2], Data: f[3],
		Origin: invite.Origin{Node: f[4], Session: session, Device: f[6]}}, nil
}

// encodeList encodes a list of strings as netstrings ("3:bob,5:carol,"),
// which keep any byte, are easy to read in Lua, and tell an empty list ("")
// from none (no field).
func encodeList(list []string) string {
	var b strings.Builder
	for _, s := range list {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
		b.WriteByte(',')
	}
	return b.String()
}

func decodeList(s string) ([]string, error) {
	out := []string{}
	for len(s) > 0 {
		lenStr, rest, ok := strings.Cut(s, ":")
		n, err := strconv.Atoi(lenStr)
		if !ok || err != nil || n < 0 || len(rest) < n+1 || rest[n] != ',' {
			return nil, fmt.Errorf("bad netstring at %q", s)
		}
		out = append(out, rest[:n])
		s = rest[n+1:]
	}
	return out, nil
}
